//go:build unix

package export

import (
	"os"
	"syscall"
	"unsafe"

	"github.com/medassist/medassist/model"
)

// releasePages drops the resident pages of a memory-mapped source tensor once it has been
// converted and written, so that exporting a model larger than memory keeps only the tensor at
// hand resident. The mapping stays valid: a later read faults the pages back in from the file.
// Only whole pages inside the tensor are released; errors are ignored (it is only a hint).
func releasePages(src *model.Weights, name string) {
	b, err := src.Bytes(name)
	if err != nil || len(b) == 0 {
		return
	}
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	first := (start + page - 1) &^ (page - 1)
	last := (start + uintptr(len(b))) &^ (page - 1)
	if last <= first {
		return
	}
	_ = syscall.Madvise(b[first-start:last-start], syscall.MADV_DONTNEED)
}
