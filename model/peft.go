package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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
	// TargetPattern is target_modules when the file gives a pattern (a regular expression over the
	// base model's module names) instead of a list; TargetModules is then empty until it is resolved
	// against the base model (train/merge does).
	TargetPattern string `json:"-"`

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

// ReadAdapterConfig reads DIR/adapter_config.json as PEFT or medassist wrote it. Keys it does not
// model are kept (Raw; Write writes them back). It does not validate: a target_modules pattern must
// be resolved first (TargetPattern), and the caller decides which unmodelled keys it can apply.
func ReadAdapterConfig(dir string) (*AdapterConfig, error) {
	path := filepath.Join(dir, AdapterConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("adapter config: %w", err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("adapter config: %s: bad JSON: %w", path, err)
	}
	pattern, isPattern := raw["target_modules"].(string)
	if isPattern {
		typed := maps.Clone(raw)
		delete(typed, "target_modules")
		if b, err = json.Marshal(typed); err != nil {
			return nil, err
		}
	}
	c := &AdapterConfig{TargetPattern: pattern}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("adapter config: %s: %w", path, err)
	}
	c.raw = raw
	return c, nil
}

// Raw is the value of key as the file holds it (nil when absent).
func (c *AdapterConfig) Raw(key string) any { return c.raw[key] }

// Validate checks that the config is a LoRA adapter medassist can apply.
func (c *AdapterConfig) Validate() error {
	var errs []error
	if c.PeftType != "LORA" {
		errs = append(errs, fmt.Errorf("peft_type %q is not supported (only LORA)", c.PeftType))
	}
	if c.R <= 0 {
		errs = append(errs, fmt.Errorf("r must be > 0, got %d", c.R))
	}
	if c.TargetPattern != "" {
		errs = append(errs, fmt.Errorf("target_modules %q is a pattern, not resolved against a base model", c.TargetPattern))
	} else if len(c.TargetModules) == 0 {
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
	return errors.Join(errs...)
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
