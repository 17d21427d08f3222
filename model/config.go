// Package model is the shared vocabulary of medassist: the Llama-family configuration, tensor names
// (Hugging Face, PEFT and ONNX), safetensors files, generation settings and chat templates.
// It knows nothing of GoMLX, ONNX Runtime or HTTP.
package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Config mirrors a Llama-family config.json.
type Config struct {
	Architectures         []string     `json:"architectures,omitempty"`
	ModelType             string       `json:"model_type"`
	HiddenSize            int          `json:"hidden_size"`
	IntermediateSize      int          `json:"intermediate_size"`
	NumHiddenLayers       int          `json:"num_hidden_layers"`
	NumAttentionHeads     int          `json:"num_attention_heads"`
	NumKeyValueHeads      int          `json:"num_key_value_heads"`
	HeadDimOverride       int          `json:"head_dim,omitempty"`
	VocabSize             int          `json:"vocab_size"`
	MaxPositionEmbeddings int          `json:"max_position_embeddings"`
	RMSNormEps            float64      `json:"rms_norm_eps"`
	RopeTheta             float64      `json:"rope_theta"`
	RopeScaling           *RopeScaling `json:"rope_scaling"`
	RopeParameters        *RopeParams  `json:"rope_parameters,omitempty"` // transformers ≥ 5 spelling of rope_theta + rope_scaling
	TieWordEmbeddings     bool         `json:"tie_word_embeddings"`
	HiddenAct             string       `json:"hidden_act"`
	AttentionBias         bool         `json:"attention_bias"`
	MLPBias               bool         `json:"mlp_bias"`
	BOSTokenID            *int         `json:"bos_token_id,omitempty"`
	EOSTokenID            any          `json:"eos_token_id,omitempty"` // int or []int
	TorchDtype            string       `json:"torch_dtype,omitempty"`

	raw map[string]any // every field as read, so WriteConfig keeps unknown keys
}

// RopeScaling is config.json's rope_scaling. The kinds medassist runs are RopeDefault, RopeLinear
// and RopeLlama3 (see Config.RopeInvFreq).
type RopeScaling struct {
	Type                          string  `json:"type,omitempty"`
	RopeType                      string  `json:"rope_type,omitempty"`
	Factor                        float64 `json:"factor"`
	LowFreqFactor                 float64 `json:"low_freq_factor,omitempty"`
	HighFreqFactor                float64 `json:"high_freq_factor,omitempty"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings,omitempty"`
}

// RopeParams is transformers 5's rope_parameters: rope_theta and the scaling fields in one object.
type RopeParams struct {
	RopeTheta float64 `json:"rope_theta"`
	RopeScaling
}

// Kind is the scaling kind, whichever of the two keys a config uses.
func (r *RopeScaling) Kind() string {
	if r.RopeType != "" {
		return r.RopeType
	}
	return r.Type
}

// ConfigFile is the name of the model configuration inside a model dir.
const ConfigFile = "config.json"

// LoadConfig reads and validates DIR/config.json.
func LoadConfig(dir string) (*Config, error) {
	path := filepath.Join(dir, ConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig parses and validates config.json bytes.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	if err := json.Unmarshal(b, &c.raw); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	if rp := c.RopeParameters; rp != nil {
		if c.RopeTheta == 0 {
			c.RopeTheta = rp.RopeTheta
		}
		if c.RopeScaling == nil {
			sc := rp.RopeScaling
			c.RopeScaling = &sc
		}
	}
	if rs := c.RopeScaling; rs != nil && (rs.Kind() == "" || rs.Kind() == RopeDefault) {
		c.RopeScaling = nil // transformers' "default": no scaling
	}
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.RopeTheta == 0 {
		c.RopeTheta = 10000
	}
	if c.RMSNormEps == 0 {
		c.RMSNormEps = 1e-6
	}
	if c.HiddenAct == "" {
		c.HiddenAct = "silu"
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	return &c, nil
}

// problems collects a validation's failures, so that one error names them all.
type problems []error

func (p *problems) check(ok bool, format string, args ...any) {
	if !ok {
		*p = append(*p, fmt.Errorf(format, args...))
	}
}

// Validate checks that the config describes a Llama-family model medassist can run.
func (c *Config) Validate() error {
	var errs problems
	check := errs.check
	check(c.ModelType == "" || c.ModelType == "llama", "model_type %q is not supported (only llama)", c.ModelType)
	check(c.HiddenSize > 0, "hidden_size must be > 0, got %d", c.HiddenSize)
	check(c.IntermediateSize > 0, "intermediate_size must be > 0, got %d", c.IntermediateSize)
	check(c.NumHiddenLayers > 0, "num_hidden_layers must be > 0, got %d", c.NumHiddenLayers)
	check(c.NumAttentionHeads > 0, "num_attention_heads must be > 0, got %d", c.NumAttentionHeads)
	check(c.VocabSize > 0, "vocab_size must be > 0, got %d", c.VocabSize)
	if c.NumAttentionHeads > 0 {
		check(c.HeadDimOverride != 0 || c.HiddenSize%c.NumAttentionHeads == 0,
			"hidden_size (%d) must be divisible by num_attention_heads (%d)", c.HiddenSize, c.NumAttentionHeads)
	}
	if c.NumKeyValueHeads > 0 {
		check(c.NumAttentionHeads%c.NumKeyValueHeads == 0,
			"num_attention_heads (%d) must be divisible by num_key_value_heads (%d)", c.NumAttentionHeads, c.NumKeyValueHeads)
	}
	check(c.HiddenAct == "silu", "hidden_act %q is not supported (only silu)", c.HiddenAct)
	check(!c.AttentionBias && !c.MLPBias, "attention_bias/mlp_bias are not supported")
	if _, err := tokenIDs(c.EOSTokenID); err != nil {
		errs = append(errs, fmt.Errorf("eos_token_id: %w", err))
	}
	if c.RopeScaling != nil {
		errs = append(errs, c.RopeScaling.validate())
	}
	return errors.Join(errs...)
}

// HeadDim is the size of one attention head.
func (c *Config) HeadDim() int {
	if c.HeadDimOverride > 0 {
		return c.HeadDimOverride
	}
	return c.HiddenSize / c.NumAttentionHeads
}

// EOSTokenIDs returns eos_token_id as a list (configs use an int or a list; Validate has checked
// which).
func (c *Config) EOSTokenIDs() []int {
	ids, _ := tokenIDs(c.EOSTokenID)
	return ids
}

// tokenIDs reads a JSON token id or list of ids (nil: none); anything else is an error.
func tokenIDs(v any) ([]int, error) {
	bad := fmt.Errorf("want a token id or a list of ids, got %v", v)
	id := func(e any) (int, bool) {
		switch x := e.(type) {
		case float64:
			return int(x), x == float64(int(x))
		case int:
			return x, true
		}
		return 0, false
	}
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []any:
		out := make([]int, 0, len(x))
		for _, e := range x {
			i, ok := id(e)
			if !ok {
				return nil, bad
			}
			out = append(out, i)
		}
		return out, nil
	case []int:
		return x, nil
	}
	if i, ok := id(v); ok {
		return []int{i}, nil
	}
	return nil, bad
}

// Marshal returns config.json bytes: the fields as read (unknown keys kept), with typed fields applied.
func (c *Config) Marshal() ([]byte, error) {
	typed, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for k, v := range c.raw {
		out[k] = v
	}
	var m map[string]any
	if err := json.Unmarshal(typed, &m); err != nil {
		return nil, err
	}
	for k, v := range m {
		out[k] = v
	}
	return json.MarshalIndent(out, "", "  ")
}

// WriteConfig writes c to DIR/config.json.
func (c *Config) WriteConfig(dir string) error {
	b, err := c.Marshal()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ConfigFile), append(b, '\n'), 0o644)
}
