package assets

import (
	"embed"
	"io/fs"
)

//go:embed guard/*.txt guard/*.json guard/head.bin
var guardFiles embed.FS

// GuardFiles holds the guard's lexicons (emergency.txt, cues.txt, injection.txt), its messages
// (messages.json) and its trained head (head.bin, written by `medassist guard train` from the
// corpus in assets/guard/corpus, which is not embedded).
func GuardFiles() fs.FS {
	sub, err := fs.Sub(guardFiles, "guard")
	if err != nil {
		panic(err) // the embedded folder always exists
	}
	return sub
}
