package gguf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Token types of tokenizer.ggml.token_type (llama.h's llama_token_type) that change how text is
// split; unused (5) and byte (6) tokens are plain vocabulary entries here.
const (
	tokenNormal      = 1
	tokenUnknown     = 2
	tokenControl     = 3
	tokenUserDefined = 4
)

// Vocab is the tokenizer a GGUF file describes (tokenizer.ggml.*).
type Vocab struct {
	Model  string // "gpt2" (byte-level BPE) or "llama" (SentencePiece BPE with byte fallback)
	Pre    string // tokenizer.ggml.pre (gpt2 models)
	Tokens []string
	Types  []int32   // nil: every token normal
	Scores []float32 // llama models: the SentencePiece score of each token
	Merges []string  // gpt2 models: "left right", highest priority first

	BOS, EOS, UNK, PAD, EOT int // -1 when absent
	AddBOS, AddEOS          bool
	AddSpacePrefix          bool // llama models: prepend "▁" to the text (SentencePiece's add_dummy_prefix)
	ChatTemplate            string
}

// ReadVocab reads the tokenizer.ggml.* metadata.
func (gf *File) ReadVocab() (*Vocab, error) {
	m := &meta{gf: gf}
	v := &Vocab{
		Model:        m.str("tokenizer.ggml.model", ""),
		Pre:          m.str("tokenizer.ggml.pre", "default"),
		Tokens:       m.strings("tokenizer.ggml.tokens"),
		Types:        m.int32s("tokenizer.ggml.token_type"),
		Scores:       m.float32s("tokenizer.ggml.scores"),
		Merges:       m.strings("tokenizer.ggml.merges"),
		BOS:          m.tokenID("tokenizer.ggml.bos_token_id"),
		EOS:          m.tokenID("tokenizer.ggml.eos_token_id"),
		UNK:          m.tokenID("tokenizer.ggml.unknown_token_id"),
		PAD:          m.tokenID("tokenizer.ggml.padding_token_id"),
		EOT:          m.tokenID("tokenizer.ggml.eot_token_id"),
		ChatTemplate: m.str("tokenizer.chat_template", ""),
	}
	// llama.cpp's defaults per tokenizer model (llama-vocab.cpp load), then the file's flags.
	switch v.Model {
	case "llama":
		v.AddBOS, v.AddSpacePrefix = true, true
	case "gpt2":
		v.AddBOS = isLlama3Pre(v.Pre)
	}
	v.AddBOS = m.boolean("tokenizer.ggml.add_bos_token", v.AddBOS)
	v.AddEOS = m.boolean("tokenizer.ggml.add_eos_token", false)
	v.AddSpacePrefix = m.boolean("tokenizer.ggml.add_space_prefix", v.AddSpacePrefix)
	if m.err != nil {
		return nil, fmt.Errorf("gguf: %w", m.err)
	}
	return v, v.validate()
}

func (v *Vocab) validate() error {
	switch v.Model {
	case "gpt2", "llama":
	case "":
		return fmt.Errorf("gguf: no tokenizer.ggml.model: the file holds no tokenizer (medassist needs one to import a model)")
	default:
		return fmt.Errorf("gguf: tokenizer.ggml.model %q is not supported (supported: gpt2 byte-level BPE, llama SentencePiece BPE)", v.Model)
	}
	n := len(v.Tokens)
	if n == 0 {
		return fmt.Errorf("gguf: tokenizer.ggml.tokens is missing or empty")
	}
	if v.Types != nil && len(v.Types) != n {
		return fmt.Errorf("gguf: tokenizer.ggml.token_type has %d entries for %d tokens", len(v.Types), n)
	}
	if v.Model == "llama" && len(v.Scores) != n {
		return fmt.Errorf("gguf: a llama (SentencePiece) tokenizer needs tokenizer.ggml.scores for each of its %d tokens, got %d", n, len(v.Scores))
	}
	if v.Model == "gpt2" && len(v.Merges) == 0 {
		return fmt.Errorf("gguf: a gpt2 (byte-level BPE) tokenizer needs tokenizer.ggml.merges")
	}
	for name, id := range map[string]int{"bos": v.BOS, "eos": v.EOS, "unknown": v.UNK, "padding": v.PAD, "eot": v.EOT} {
		if id >= n || id < -1 {
			return fmt.Errorf("gguf: tokenizer.ggml.%s_token_id = %d is outside the vocabulary (%d tokens)", name, id, n)
		}
	}
	if v.AddBOS && v.BOS < 0 {
		return fmt.Errorf("gguf: tokenizer.ggml.add_bos_token is set but there is no bos_token_id")
	}
	if v.Model == "gpt2" {
		if _, err := preTokenizer(v.Pre); err != nil {
			return err
		}
	}
	return nil
}

func (v *Vocab) tokenType(id int) int32 {
	if v.Types == nil {
		return tokenNormal
	}
	return v.Types[id]
}

// The regular expressions llama.cpp splits text with before byte-level BPE (llama-vocab.cpp,
// llm_tokenizer_bpe), spelled as llama.cpp spells them (case-insensitive groups written out).
const (
	regexGPT2   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
	regexLlama3 = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	regexQwen2  = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// preFamilies maps tokenizer.ggml.pre values to llama.cpp's pre-tokenizer families.
var preFamilies = map[string]string{
	"default": "default",
	"gpt-2":   "gpt2", "phi-2": "gpt2", "mpt": "gpt2", "olmo": "gpt2",
	"llama-bpe": "llama3", "llama3": "llama3", "llama-v3": "llama3", "falcon3": "llama3", "pixtral": "llama3",
	"qwen2": "qwen2", "deepseek-r1-qwen": "qwen2", "stablelm2": "qwen2", "megrez": "qwen2",
	"smollm": "smollm", "starcoder": "smollm", "refact": "smollm", "codeshell": "smollm",
}

func isLlama3Pre(pre string) bool { return preFamilies[pre] == "llama3" }

// preTokenizer is the tokenizer.json pre_tokenizer that splits text as llama.cpp does for pre:
// each of llama.cpp's regexes becomes an isolating Split, then the byte-level mapping.
func preTokenizer(pre string) (any, error) {
	byteLevel := func(useRegex bool) obj {
		return obj{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": useRegex}
	}
	split := func(re string) obj {
		return obj{"type": "Split", "pattern": obj{"Regex": re}, "behavior": "Isolated", "invert": false}
	}
	seq := func(steps ...obj) obj { return obj{"type": "Sequence", "pretokenizers": steps} }
	switch preFamilies[pre] {
	case "gpt2":
		return byteLevel(true), nil // ByteLevel's own regex is GPT-2's
	case "default":
		return seq(split(`[\p{P}\$\+<=>\^~\|]+`), split(regexGPT2), split(`\p{N}+`), split(`[0-9][0-9][0-9]`), byteLevel(false)), nil
	case "smollm":
		return seq(split(`\p{N}`), byteLevel(true)), nil
	case "llama3":
		return seq(split(regexLlama3), byteLevel(false)), nil
	case "qwen2":
		return seq(split(regexQwen2), byteLevel(false)), nil
	}
	known := make([]string, 0, len(preFamilies))
	for k := range preFamilies {
		known = append(known, k)
	}
	sort.Strings(known)
	return nil, fmt.Errorf("gguf: tokenizer.ggml.pre %q is not supported: its pre-tokenizer splits text in a way medassist cannot reproduce exactly (supported: %s)",
		pre, strings.Join(known, ", "))
}

// obj is a JSON object; the tokenizers library reads keys in any order.
type obj = map[string]any

// addedToken is an entry of tokenizer.json's added_tokens.
type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// addedTokens are the tokens llama.cpp matches in text before tokenizing: control and unknown
// tokens (special: matched only when special tokens are parsed) and user-defined ones (always).
func (v *Vocab) addedTokens() []addedToken {
	var out []addedToken
	for id, s := range v.Tokens {
		switch v.tokenType(id) {
		case tokenControl, tokenUnknown:
			out = append(out, addedToken{ID: id, Content: s, Special: true})
		case tokenUserDefined:
			out = append(out, addedToken{ID: id, Content: s})
		}
	}
	return out
}

// vocabMap is token → id; a token text that repeats keeps its first id, as llama.cpp's
// token_to_id does.
func (v *Vocab) vocabMap() map[string]int {
	m := make(map[string]int, len(v.Tokens))
	for id, s := range v.Tokens {
		if _, dup := m[s]; !dup {
			m[s] = id
		}
	}
	return m
}

// TokenizerJSON builds a Hugging Face tokenizer.json that encodes as llama.cpp does.
func (v *Vocab) TokenizerJSON() ([]byte, error) {
	tj := obj{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens": v.addedTokens(),
	}
	switch v.Model {
	case "gpt2":
		pre, err := preTokenizer(v.Pre)
		if err != nil {
			return nil, err
		}
		tj["normalizer"] = nil
		tj["pre_tokenizer"] = pre
		tj["decoder"] = obj{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}
		tj["post_processor"] = v.postProcessor(obj{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true})
		tj["model"] = obj{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false,
			"ignore_merges": isLlama3Pre(v.Pre), // llama.cpp: a word that is a token is not merged
			"vocab":         v.vocabMap(), "merges": v.Merges,
		}
	case "llama":
		norm := []obj{{"type": "Replace", "pattern": obj{"String": " "}, "content": "▁"}}
		dec := []obj{{"type": "Replace", "pattern": obj{"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}}
		if v.AddSpacePrefix {
			norm = append([]obj{{"type": "Prepend", "prepend": "▁"}}, norm...)
			dec = append(dec, obj{"type": "Strip", "content": " ", "start": 1, "stop": 0})
		}
		var unk any
		if v.UNK >= 0 {
			unk = v.Tokens[v.UNK]
		}
		tj["normalizer"] = obj{"type": "Sequence", "normalizers": norm}
		tj["pre_tokenizer"] = nil
		tj["decoder"] = obj{"type": "Sequence", "decoders": dec}
		tj["post_processor"] = v.postProcessor(nil)
		tj["model"] = obj{
			"type": "BPE", "dropout": nil, "unk_token": unk, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
			"vocab": v.vocabMap(), "merges": v.spmMerges(),
		}
	}
	return marshalJSON(tj, "")
}

// marshalJSON encodes v without escaping <, > and & (special tokens and templates are full of
// them), indented when indent is not empty, without a trailing newline.
func marshalJSON(v any, indent string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// postProcessor adds BOS/EOS around a sequence as the add_bos/add_eos flags say; base (may be nil)
// runs first.
func (v *Vocab) postProcessor(base obj) any {
	if !v.AddBOS && !v.AddEOS {
		if base == nil {
			return nil
		}
		return base
	}
	special := func(id, typeID int) obj { return obj{"SpecialToken": obj{"id": v.Tokens[id], "type_id": typeID}} }
	seq := func(name string, typeID int) obj { return obj{"Sequence": obj{"id": name, "type_id": typeID}} }
	tokens := obj{}
	var single, pair []obj
	for _, part := range []struct {
		name   string
		typeID int
	}{{"A", 0}, {"B", 1}} {
		var steps []obj
		if v.AddBOS {
			steps = append(steps, special(v.BOS, part.typeID))
			tokens[v.Tokens[v.BOS]] = obj{"id": v.Tokens[v.BOS], "ids": []int{v.BOS}, "tokens": []string{v.Tokens[v.BOS]}}
		}
		steps = append(steps, seq(part.name, part.typeID))
		if v.AddEOS {
			steps = append(steps, special(v.EOS, part.typeID))
			tokens[v.Tokens[v.EOS]] = obj{"id": v.Tokens[v.EOS], "ids": []int{v.EOS}, "tokens": []string{v.Tokens[v.EOS]}}
		}
		if part.name == "A" {
			single = steps
		}
		pair = append(pair, steps...)
	}
	tp := obj{"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": tokens}
	if base == nil {
		return tp
	}
	return obj{"type": "Sequence", "processors": []obj{base, tp}}
}

// spmMerges derives BPE merges from SentencePiece scores as Hugging Face's SentencePieceExtractor
// does (the merges of every Llama tokenizer.json): every split of a token into two tokens is a
// merge, ranked by the merged token's score (highest first), ties in vocabulary order.
func (v *Vocab) spmMerges() []string {
	ids := v.vocabMap()
	type merge struct {
		l, r  string
		score float32
	}
	var merges []merge
	for id, tok := range v.Tokens {
		if ids[tok] != id {
			continue
		}
		var local []merge
		for i := range tok {
			if i == 0 {
				continue
			}
			l, r := tok[:i], tok[i:]
			if _, ok := ids[l]; !ok {
				continue
			}
			if _, ok := ids[r]; ok {
				local = append(local, merge{l, r, v.Scores[id]})
			}
		}
		sort.SliceStable(local, func(a, b int) bool {
			if ids[local[a].l] != ids[local[b].l] {
				return ids[local[a].l] < ids[local[b].l]
			}
			return ids[local[a].r] < ids[local[b].r]
		})
		merges = append(merges, local...)
	}
	sort.SliceStable(merges, func(a, b int) bool { return merges[a].score > merges[b].score })
	out := make([]string, len(merges))
	for i, m := range merges {
		out[i] = m.l + " " + m.r
	}
	return out
}

// TokenizerConfigJSON builds tokenizer_config.json: the special tokens, the add-BOS/EOS flags and
// the chat template (omitted when the file has none).
func (v *Vocab) TokenizerConfigJSON(maxLength int) ([]byte, error) {
	tc := obj{
		"tokenizer_class":              "PreTrainedTokenizerFast",
		"add_bos_token":                v.AddBOS,
		"add_eos_token":                v.AddEOS,
		"clean_up_tokenization_spaces": false,
		"model_max_length":             maxLength,
	}
	for key, id := range map[string]int{"bos_token": v.BOS, "eos_token": v.EOS, "unk_token": v.UNK, "pad_token": v.PAD} {
		if id >= 0 {
			tc[key] = v.Tokens[id]
		}
	}
	decoder := obj{}
	for _, t := range v.addedTokens() {
		decoder[fmt.Sprint(t.ID)] = obj{
			"content": t.Content, "lstrip": false, "rstrip": false, "normalized": false,
			"single_word": false, "special": t.Special,
		}
	}
	tc["added_tokens_decoder"] = decoder
	if v.ChatTemplate != "" {
		tc["chat_template"] = v.ChatTemplate
	}
	return marshalJSON(tc, "  ")
}
