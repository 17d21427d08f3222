package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// PEFT adapter file names.
const (
	AdapterConfigFile  = "adapter_config.json"
	AdapterWeightsFile = "adapter_model.safetensors"
)

// AdapterConfig mirrors PEFT's adapter_config.json for LoRA. Keys it does not model are kept and
// written back unchanged.
type AdapterConfig struct {
	PeftType            string   `json:"peft_type"`
	TaskType            string   `json:"task_type"`
	R                   int      `json:"r"`
	LoraAlpha           float64  `json:"lora_alpha"`
	LoraDropout         float64  `json:"lora_dropout"`
	TargetModules       []string `json:"target_modules"`
	BaseModelNameOrPath string   `json:"base_model_name_or_path"`
	Bias                string   `json:"bias"`
	FanInFanOut         bool     `json:"fan_in_fan_out"`
	InferenceMode       bool     `json:"inference_mode"`
	UseRSLoRA           bool     `json:"use_rslora"`

	raw map[string]any
}

// NewLoraAdapterConfig is a PEFT LoRA config for a causal LM with the usual defaults.
func NewLoraAdapterConfig(r int, alpha, dropout float64, targets []Projection, base string) *AdapterConfig {
	mods := make([]string, len(targets))
	for i, p := range targets {
		mods[i] = string(p)
	}
	return &AdapterConfig{
		PeftType: "LORA", TaskType: "CAUSAL_LM", R: r, LoraAlpha: alpha, LoraDropout: dropout,
		TargetModules: mods, BaseModelNameOrPath: base, Bias: "none", InferenceMode: true,
	}
}

// LoadAdapterConfig reads and validates DIR/adapter_config.json.
func LoadAdapterConfig(dir string) (*AdapterConfig, error) {
	path := filepath.Join(dir, AdapterConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("adapter config: %w", err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("adapter config: %s: bad JSON: %w", path, err)
	}
	if s, ok := raw["target_modules"].(string); ok {
		return nil, fmt.Errorf("adapter config: %s: target_modules %q is a pattern; medassist needs a list of module names (q_proj, v_proj, ...)", path, s)
	}
	c := &AdapterConfig{}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("adapter config: %s: %w", path, err)
	}
	c.raw = raw
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("adapter config: %s: %w", path, err)
	}
	return c, nil
}

// Validate checks that the config is a LoRA adapter medassist can apply.
func (c *AdapterConfig) Validate() error {
	var errs []error
	if c.PeftType != "LORA" {
		errs = append(errs, fmt.Errorf("peft_type %q is not supported (only LORA)", c.PeftType))
	}
	if c.R <= 0 {
		errs = append(errs, fmt.Errorf("r must be > 0, got %d", c.R))
	}
	if len(c.TargetModules) == 0 {
		errs = append(errs, errors.New("target_modules is empty"))
	}
	if _, err := c.Projections(); err != nil {
		errs = append(errs, err)
	}
	if c.Bias != "" && c.Bias != "none" {
		errs = append(errs, fmt.Errorf("bias %q is not supported (only none)", c.Bias))
	}
	if c.FanInFanOut {
		errs = append(errs, errors.New("fan_in_fan_out adapters are not supported"))
	}
	if v, _ := c.raw["use_dora"].(bool); v {
		errs = append(errs, errors.New("use_dora adapters are not supported"))
	}
	// Options that make some layers or modules differ from the rest are not modelled.
	for _, k := range []string{"layers_to_transform", "rank_pattern", "alpha_pattern", "modules_to_save"} {
		if set(c.raw[k]) {
			errs = append(errs, fmt.Errorf("%s is not supported (every target layer must share r and lora_alpha)", k))
		}
	}
	return errors.Join(errs...)
}

// set reports whether a JSON value is present and non-empty.
func set(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case map[string]any:
		return len(x) > 0
	case []any:
		return len(x) > 0
	}
	return true
}

// Projections are the target modules as typed projection names.
func (c *AdapterConfig) Projections() ([]Projection, error) {
	out := make([]Projection, 0, len(c.TargetModules))
	for _, m := range c.TargetModules {
		p, err := ParseProjection(m)
		if err != nil {
			return nil, fmt.Errorf("target_modules: %w", err)
		}
		out = append(out, p)
	}
	return out, nil
}

// Scale is the factor LoRA's update B·A is multiplied by: lora_alpha / r, or lora_alpha / √r
// with use_rslora.
func (c *AdapterConfig) Scale() float64 {
	if c.UseRSLoRA {
		return c.LoraAlpha / math.Sqrt(float64(c.R))
	}
	return c.LoraAlpha / float64(c.R)
}

// Marshal returns adapter_config.json bytes: the keys as read, with the typed fields applied.
func (c *AdapterConfig) Marshal() ([]byte, error) {
	typed, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(typed, &m); err != nil {
		return nil, err
	}
	out := map[string]any{}
	for k, v := range c.raw {
		out[k] = v
	}
	for k, v := range m {
		out[k] = v
	}
	return json.MarshalIndent(out, "", "  ")
}

// Write writes DIR/adapter_config.json (DIR is created if needed).
func (c *AdapterConfig) Write(dir string) error {
	b, err := c.Marshal()
	if err != nil {
		return fmt.Errorf("adapter config: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("adapter config: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, AdapterConfigFile), append(b, '\n'))
}
