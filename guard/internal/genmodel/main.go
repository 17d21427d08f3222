// Command genmodel trains the guard's learned emergency detector from the embedded lexicons,
// examples and generated messages and writes assets/guard/emergency_model.bin.gz, which the guard
// embeds so that building a guard does not train it (go generate ./guard/). Run it again whenever
// a lexicon, an example, the dictionary or guard/internal/gen changes: the guard trains at
// construction (about 1.5 s of CPU) while the embedded model's digest does not match.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/medassist/medassist/guard"
)

func main() {
	out := flag.String("out", "../assets/guard/emergency_model.bin.gz", "file to write")
	flag.Parse()
	var b bytes.Buffer
	if err := guard.LearnedModel(&b); err != nil {
		fmt.Fprintln(os.Stderr, "genmodel:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, b.Bytes(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "genmodel:", err)
		os.Exit(1)
	}
	fmt.Printf("genmodel: wrote %s (%d bytes)\n", *out, b.Len())
}
