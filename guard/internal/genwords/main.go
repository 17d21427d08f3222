// Command genwords writes assets/guard/words_en.txt, the English words the guard's typo correction
// must never change, from the SCOWL word lists of the Debian packages wamerican and wbritish:
//
//	apt-get install wamerican wbritish
//	go generate ./guard/
//
// Only lower-case words of 5 to 16 letters are kept (shorter words are never corrected).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
)

const header = `# English words that typo correction never changes (lower case, 5 to 16 letters), from SCOWL
# via the Debian packages wamerican and wbritish; regenerate with: go generate ./guard/
#
# Copyright 2000-2011 by Kevin Atkinson
#
# Permission to use, copy, modify, distribute and sell these word lists, the associated scripts,
# the output created from the scripts, and its documentation for any purpose is hereby granted
# without fee, provided that the above copyright notice appears in all copies and that both that
# copyright notice and this permission notice appear in supporting documentation. Kevin Atkinson
# makes no representations about the suitability of this array for any purpose. It is provided
# "as is" without express or implied warranty.
`

func main() {
	out := flag.String("out", "../assets/guard/words_en.txt", "file to write (relative to the guard package, where go generate runs)")
	flag.Parse()
	inputs := flag.Args()
	if len(inputs) == 0 {
		inputs = []string{"/usr/share/dict/american-english", "/usr/share/dict/british-english"}
	}
	words := map[string]bool{}
	for _, in := range inputs {
		if err := read(in, words); err != nil {
			fmt.Fprintf(os.Stderr, "genwords: %v (install the Debian packages wamerican and wbritish)\n", err)
			os.Exit(1)
		}
	}
	list := make([]string, 0, len(words))
	for w := range words {
		list = append(list, w)
	}
	sort.Strings(list)
	var b strings.Builder
	b.WriteString(header)
	for _, w := range list {
		b.WriteString(w)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(*out, []byte(b.String()), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "genwords: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("genwords: %d words → %s\n", len(list), *out)
}

func read(path string, words map[string]bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w := sc.Text()
		if len(w) < 5 || len(w) > 16 || !lowerASCII(w) {
			continue
		}
		words[w] = true
	}
	return sc.Err()
}

func lowerASCII(w string) bool {
	for i := 0; i < len(w); i++ {
		if w[i] < 'a' || w[i] > 'z' {
			return false
		}
	}
	return true
}
