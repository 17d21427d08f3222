package assets

import (
	"embed"
	"io/fs"
)

//go:embed guard
var guardFiles embed.FS

// GuardFiles holds the guard's lexicons (emergency.txt, cues.txt, injection.txt, medical_terms.txt),
// its messages (messages.json) and the training examples of its out-of-domain classifier
// (examples/medical.txt, examples/non_medical.txt, examples/emergency.txt), and the weights of its
// learned emergency detector (emergency_model.bin.gz, written by go generate ./guard/).
func GuardFiles() fs.FS {
	sub, err := fs.Sub(guardFiles, "guard")
	if err != nil {
		panic(err) // the embedded folder always exists
	}
	return sub
}
