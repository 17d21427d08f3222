package tokenizer

import (
	"fmt"

	"github.com/daulet/tokenizers"
)

// engine is the part of Hugging Face tokenizers (Rust, through cgo) that this package uses.
// Every call into the native library is in this file.
//
// The native API passes strings as C strings: text must not contain NUL bytes (the caller
// substitutes them, see nul.go) and a decoded string holding a NUL comes back empty.
type engine interface {
	encode(text string, addSpecial bool) []int
	decode(ids []int, skipSpecial bool) string
	vocabSize() int // with added tokens
	close() error
}

// nativeEngine wraps one daulet/tokenizers instance.
type nativeEngine struct{ tk *tokenizers.Tokenizer }

// openEngine builds a tokenizer from the contents of tokenizer.json. With textOnly set, added
// special tokens are not extracted from the input: "</s>" in the text is encoded as the
// characters '<', '/', 's', '>' (HF's encode_special_tokens=True).
func openEngine(tokenizerJSON []byte, textOnly bool) (engine, error) {
	var opts []tokenizers.TokenizerOption
	if textOnly {
		opts = append(opts, tokenizers.WithEncodeSpecialTokens())
	}
	tk, err := tokenizers.FromBytes(tokenizerJSON, opts...)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	return &nativeEngine{tk: tk}, nil
}

func (e *nativeEngine) encode(text string, addSpecial bool) []int {
	ids, _ := e.tk.Encode(text, addSpecial)
	out := make([]int, len(ids)) // never nil: an empty encoding prints as []
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}

func (e *nativeEngine) decode(ids []int, skipSpecial bool) string {
	u := make([]uint32, len(ids))
	for i, id := range ids {
		u[i] = uint32(id)
	}
	return e.tk.Decode(u, skipSpecial)
}

func (e *nativeEngine) close() error {
	if e.tk == nil {
		return nil
	}
	err := e.tk.Close()
	e.tk = nil
	return err
}

func (e *nativeEngine) vocabSize() int { return int(e.tk.VocabSize()) }
