// Package tokenizer encodes and decodes text exactly as Hugging Face tokenizers does with a
// model's tokenizer.json (through github.com/daulet/tokenizers, the same Rust core), and adds
// what a chat server needs on top: prompts whose message contents are never parsed for special
// tokens, and streaming decode.
package tokenizer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// Tokenizer is a loaded tokenizer.json. It is safe for concurrent use; Close it once when done.
type Tokenizer struct {
	full engine // HF encode: special-token strings in the text become special tokens
	text engine // special-token strings stay text (HF's encode_special_tokens=True)
	v    *vocab
	nul  nulCodec
	st   specialTokens
	// prefix and suffix are the ids HF's post-processor adds around one sequence
	// (Llama: prefix [BOS], no suffix).
	prefix, suffix []int
	size           int
}

// Load reads DIR/tokenizer.json, and DIR/tokenizer_config.json for the bos/eos/unk tokens when
// it is present.
func Load(dir string) (*Tokenizer, error) {
	path := filepath.Join(dir, "tokenizer.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w (a model dir needs the tokenizer.json of its Hugging Face repository)", err)
	}
	v, err := parseVocab(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	st, err := readSpecialTokens(dir, v)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if data, err = plainJSON(data); err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	t := &Tokenizer{v: v, st: st}
	if t.full, err = openEngine(data, false); err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	if t.text, err = openEngine(data, true); err != nil {
		t.full.close()
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	t.nul = newNulCodec(v, t.text)
	t.size = t.full.vocabSize()
	t.prefix, t.suffix = postProcessorIDs(t.full, t.text)
	return t, nil
}

// postProcessorIDs finds what the post-processor adds around a sequence by encoding one word
// with and without special tokens.
func postProcessorIDs(full, text engine) (prefix, suffix []int) {
	with, without := full.encode("a", true), text.encode("a", false)
	for i := 0; i+len(without) <= len(with); i++ {
		if slices.Equal(with[i:i+len(without)], without) {
			return with[:i], with[i+len(without):]
		}
	}
	return nil, nil
}

// Close frees the native tokenizers.
func (t *Tokenizer) Close() error {
	var errs []error
	for _, e := range []engine{t.full, t.text} {
		if e != nil {
			errs = append(errs, e.close())
		}
	}
	return errors.Join(errs...)
}

// Encode is HF's encode(text, add_special_tokens=addSpecial): special-token strings in text
// ("</s>") become their ids, and with addSpecial the post-processor adds BOS (Llama).
func (t *Tokenizer) Encode(text string, addSpecial bool) []int {
	return t.nul.encode(t.full, text, addSpecial)
}

// EncodeText encodes untrusted plain text: special-token strings in it stay text ("</s>" is
// never EOS) and no BOS is added.
func (t *Tokenizer) EncodeText(text string) []int {
	return t.nul.encode(t.text, text, false)
}

// Decode is HF's decode(ids, skip_special_tokens=skipSpecial). Unknown ids are ignored.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) string {
	if len(ids) == 0 {
		return ""
	}
	return t.nul.decode(t.full, ids, skipSpecial)
}

// VocabSize counts every id, added tokens included.
func (t *Tokenizer) VocabSize() int { return t.size }

// BOS is the beginning-of-sequence id (-1 when the tokenizer has none).
func (t *Tokenizer) BOS() int { return t.st.bos }

// EOS is the end-of-sequence id (-1 when the tokenizer has none).
func (t *Tokenizer) EOS() int { return t.st.eos }

// UNK is the unknown-token id (-1 when the tokenizer has none).
func (t *Tokenizer) UNK() int { return t.st.unk }

// IsSpecial reports whether id is an added token marked special (those Decode skips).
func (t *Tokenizer) IsSpecial(id int) bool {
	return id >= 0 && id < len(t.v.special) && t.v.special[id]
}

// isByte reports whether id is a byte-fallback token "<0xNN>".
func (t *Tokenizer) isByte(id int) bool {
	return id >= 0 && id < len(t.v.byteVal) && t.v.byteVal[id] >= 0
}
