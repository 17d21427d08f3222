package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const peftConfigJSON = `{
  "alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
  "bias": "none", "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true,
  "layers_pattern": null, "layers_to_transform": null, "lora_alpha": 32, "lora_dropout": 0.05,
  "modules_to_save": null, "peft_type": "LORA", "r": 16, "rank_pattern": {}, "revision": null,
  "target_modules": ["v_proj", "q_proj", "o_proj", "k_proj"], "task_type": "CAUSAL_LM", "use_dora": false, "use_rslora": false
}`

func TestAdapterConfigRoundTripKeepsUnknownKeys(t *testing.T) {
	dir := t.TempDir()
	writeModelJSON(t, dir, AdapterConfigFile, peftConfigJSON)
	c, err := ReadAdapterConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.R != 16 || c.LoraAlpha != 32 || c.Scale() != 2 || c.TaskType != "CAUSAL_LM" || len(c.TargetModules) != 4 {
		t.Fatalf("%+v", c)
	}
	ps, err := c.Projections()
	if err != nil || ps[0] != VProj {
		t.Fatalf("%v %v", ps, err)
	}
	c.R, c.LoraAlpha = 8, 16
	out := t.TempDir()
	if err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(out, AdapterConfigFile))
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["r"] != 8.0 || m["lora_alpha"] != 16.0 || m["init_lora_weights"] != true || m["revision"] != nil {
		t.Fatalf("rewritten: %s", b)
	}
	if _, ok := m["rank_pattern"]; !ok {
		t.Fatalf("unknown key dropped: %s", b)
	}
	c.UseRSLoRA = true
	if got := c.Scale(); math.Abs(got-16/math.Sqrt(8)) > 1e-12 {
		t.Fatalf("rslora scale %v", got)
	}
}

func TestAdapterConfigRejectsUnsupported(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ edit, want string }{
		{`"peft_type": "LORA"→"peft_type": "IA3"`, "peft_type"},
		{`"r": 16→"r": 0`, "r must be"},
		{`["v_proj", "q_proj", "o_proj", "k_proj"]→".*_proj"`, `".*_proj" is a pattern`},
		{`"v_proj", "q_proj"→"v_proj", "lm_head"`, "unknown projection"},
		{`"bias": "none"→"bias": "all"`, "bias"},
	} {
		from, to, _ := strings.Cut(c.edit, "→")
		writeModelJSON(t, dir, AdapterConfigFile, strings.Replace(peftConfigJSON, from, to, 1))
		ac, err := ReadAdapterConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := ac.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.edit, err, c.want)
		}
	}
}

func TestNewLoraAdapterConfigIsValid(t *testing.T) {
	c := NewLoraAdapterConfig(8, 16, 0.05, []Projection{QProj, VProj}, "base")
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := c.Write(dir); err != nil {
		t.Fatal(err)
	}
	back, err := ReadAdapterConfig(dir)
	if err == nil {
		err = back.Validate()
	}
	if err != nil || back.Scale() != 2 || back.TargetModules[1] != "v_proj" || back.PeftType != "LORA" {
		t.Fatalf("%+v %v", back, err)
	}
}
