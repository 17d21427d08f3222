package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// vocab is what the package reads from tokenizer.json itself (the native library does the
// encoding): token strings by id, which ids are special, and which are byte-fallback tokens.
type vocab struct {
	pieces   []string       // token string by id ("" for unused ids)
	ids      map[string]int // token string → id, added tokens included
	special  []bool         // by id: an added token marked "special" (skipped by skip_special_tokens)
	specials []addedToken   // the special added tokens, for splitting rendered prompts
	byteVal  []int16        // by id: the byte of a "<0xNN>" byte-fallback token, -1 otherwise
}

type addedToken struct {
	ID      int    `json:"id"`
	Content string `json:"content"`
	Special bool   `json:"special"`
}

type tokenizerFile struct {
	AddedTokens []addedToken `json:"added_tokens"`
	Model       struct {
		Vocab json.RawMessage `json:"vocab"`
	} `json:"model"`
}

func parseVocab(data []byte) (*vocab, error) {
	var f tokenizerFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("parse tokenizer.json: %w", err)
	}
	ids, err := modelVocab(f.Model.Vocab)
	if err != nil {
		return nil, fmt.Errorf("parse tokenizer.json model.vocab: %w", err)
	}
	for _, t := range f.AddedTokens {
		ids[t.Content] = t.ID
	}
	n := 0
	for _, id := range ids {
		n = max(n, id+1)
	}
	v := &vocab{pieces: make([]string, n), ids: ids, special: make([]bool, n), byteVal: make([]int16, n)}
	for s, id := range ids {
		if id >= 0 {
			v.pieces[id] = s
		}
	}
	for _, t := range f.AddedTokens {
		if t.Special && t.ID >= 0 {
			v.special[t.ID] = true
			v.specials = append(v.specials, t)
		}
	}
	for id, s := range v.pieces {
		v.byteVal[id] = byteToken(s)
	}
	return v, nil
}

// modelVocab reads a BPE/WordPiece/WordLevel vocab ({"piece": id}) or a Unigram one ([["piece", score], ...]).
func modelVocab(raw json.RawMessage) (map[string]int, error) {
	ids := map[string]int{}
	if err := json.Unmarshal(raw, &ids); err == nil {
		return ids, nil
	}
	var list [][]any
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("neither a {piece: id} map nor a [[piece, score]] list: %w", err)
	}
	for id, e := range list {
		if len(e) > 0 {
			if s, ok := e[0].(string); ok {
				ids[s] = id
			}
		}
	}
	return ids, nil
}

// byteToken returns the byte of a byte-fallback token "<0xNN>" (as HF's ByteFallback decoder
// reads it), or -1.
func byteToken(s string) int16 {
	if len(s) != 6 || s[:3] != "<0x" || s[5] != '>' {
		return -1
	}
	hi, lo := hexDigit(s[3]), hexDigit(s[4])
	if hi < 0 || lo < 0 {
		return -1
	}
	return int16(hi<<4 | lo)
}

func hexDigit(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func (v *vocab) id(piece string) int {
	if id, ok := v.ids[piece]; ok {
		return id
	}
	return -1
}

// byteID is the id of the byte-fallback token for b, or -1.
func (v *vocab) byteID(b byte) int { return v.id(fmt.Sprintf("<0x%02X>", b)) }

// soloByte is the token byte b becomes on its own, and the text that marks the vocabulary entries
// it could merge into: the byte-fallback token <0xNN> and the raw byte, or in a byte-level BPE
// vocabulary b's character in GPT-2's byte mapping (both). id is -1 when the vocabulary has neither.
func (v *vocab) soloByte(b byte) (id int, mark string) {
	if id := v.byteID(b); id >= 0 {
		return id, string([]byte{b})
	}
	r := string(byteLevelRune(b))
	return v.id(r), r
}

// byteLevelRune is GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the
// others (controls, space, 0x7F–0xA0, soft hyphen) take U+0100 onwards in byte order.
func byteLevelRune(b byte) rune {
	switch {
	case b <= 0x20:
		return 0x100 + rune(b)
	case b >= 0x7F && b <= 0xA0:
		return 0x100 + 0x21 + rune(b-0x7F)
	case b == 0xAD:
		return 0x100 + 0x43
	}
	return rune(b)
}

// specialTokens are the bos/eos/unk token ids named by tokenizer_config.json, -1 when absent.
type specialTokens struct{ bos, eos, unk int }

type tokenizerConfig struct {
	BOS json.RawMessage `json:"bos_token"`
	EOS json.RawMessage `json:"eos_token"`
	UNK json.RawMessage `json:"unk_token"`
}

// readSpecialTokens resolves bos/eos/unk from DIR/tokenizer_config.json. Without that file the
// conventional SentencePiece names <s>, </s>, <unk> are used when the vocabulary has them.
func readSpecialTokens(dir string, v *vocab) (specialTokens, error) {
	data, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return specialTokens{bos: v.id("<s>"), eos: v.id("</s>"), unk: v.id("<unk>")}, nil
	}
	if err != nil {
		return specialTokens{}, err
	}
	var c tokenizerConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return specialTokens{}, fmt.Errorf("parse %s: %w", filepath.Join(dir, "tokenizer_config.json"), err)
	}
	var st specialTokens
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		out  *int
	}{{"bos_token", c.BOS, &st.bos}, {"eos_token", c.EOS, &st.eos}, {"unk_token", c.UNK, &st.unk}} {
		s, err := tokenName(f.raw)
		if err != nil {
			return specialTokens{}, fmt.Errorf("tokenizer_config.json %s: %w", f.name, err)
		}
		*f.out = -1
		if s != "" {
			if *f.out = v.id(s); *f.out < 0 {
				return specialTokens{}, fmt.Errorf("tokenizer_config.json %s %q is not in tokenizer.json's vocabulary", f.name, s)
			}
		}
	}
	return st, nil
}

// tokenName reads a token given as "text", {"content": "text", ...} or null.
func tokenName(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", fmt.Errorf("want a string or {\"content\": ...}, got %s", raw)
	}
	return obj.Content, nil
}
