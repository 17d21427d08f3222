//go:build !unix

package export

import "github.com/medassist/medassist/model"

// releasePages is a no-op where madvise is not available.
func releasePages(*model.Weights, string) {}
