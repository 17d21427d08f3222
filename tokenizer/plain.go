package tokenizer

import (
	"bytes"
	"encoding/json"
	"slices"
)

// plainJSON returns tokenizer.json with its "truncation" and "padding" settings removed.
// transformers ignores them in encode() and tokenizer(text) unless truncation or padding is asked
// for; the native library would apply them to every encoding (all-MiniLM-L6-v2's file pads and
// truncates everything to 128 tokens).
func plainJSON(data []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	changed := false
	for _, k := range []string{"truncation", "padding"} {
		if v, ok := m[k]; ok && !bytes.Equal(v, []byte("null")) {
			m[k] = json.RawMessage("null")
			changed = true
		}
	}
	if !changed {
		return data, nil
	}
	return json.Marshal(m)
}

// SpecialAround returns copies of the ids the post-processor adds around one sequence
// (BERT: [CLS] before, [SEP] after; Llama: BOS before, nothing after), for callers that truncate
// the text's ids themselves and then add them.
func (t *Tokenizer) SpecialAround() (prefix, suffix []int) {
	return slices.Clone(t.prefix), slices.Clone(t.suffix)
}
