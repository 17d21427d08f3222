package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
)

// ropeGolden is testdata/model/rope.json, written by tools/oracle/rope_golden.py: for each
// rope_scaling kind, transformers' inverse frequencies, or the error it raises for the config.
type ropeGolden struct {
	Base  map[string]any `json:"base"`
	Cases []struct {
		Name             string         `json:"name"`
		Config           map[string]any `json:"config"`
		InvFreq          []float64      `json:"inv_freq"`
		AttentionScaling float64        `json:"attention_scaling"`
		Error            string         `json:"error"`
	} `json:"cases"`
}

func TestRopeInvFreqMatchesTransformers(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "testdata", "model", "rope.json"))
	if err != nil {
		t.Fatalf("%v (make it with tools/oracle/rope_golden.py)", err)
	}
	var g ropeGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			fields := map[string]any{}
			for k, v := range g.Base {
				fields[k] = v
			}
			for k, v := range c.Config {
				fields[k] = v
			}
			raw, err := json.Marshal(fields)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := ParseConfig(raw)
			if c.Error != "" {
				if err == nil || !strings.Contains(err.Error(), "rope_scaling") {
					t.Fatalf("transformers refuses this config (%s); ParseConfig returned %v", c.Error, err)
				}
				t.Logf("refused as transformers does: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.AttentionScaling != 1 {
				t.Fatalf("attention scaling %g: only 1 is implemented", c.AttentionScaling)
			}
			kind := RopeDefault
			if cfg.RopeScaling != nil {
				kind = cfg.RopeScaling.Kind()
			}
			kinds[kind] = true
			got := cfg.RopeInvFreq()
			if len(got) != len(c.InvFreq) {
				t.Fatalf("%d frequencies, want %d", len(got), len(c.InvFreq))
			}
			worst := 0.0
			for j, want := range c.InvFreq {
				worst = max(worst, math.Abs(float64(got[j])-want)/want)
			}
			t.Logf("%s: max relative |Δinv_freq| = %.2g", kind, worst)
			if worst > 1e-6 {
				t.Errorf("inverse frequencies differ from transformers by up to %g (relative)", worst)
			}
		})
	}
	for _, k := range []string{RopeDefault, RopeLinear, RopeLlama3} {
		if !kinds[k] {
			t.Errorf("no golden case of rope kind %q", k)
		}
	}
}

func TestRopeScalingRefused(t *testing.T) {
	base := `"hidden_size":64,"intermediate_size":128,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":32`
	for _, rs := range []string{
		`{"rope_type":"llama3","factor":8,"low_freq_factor":4,"high_freq_factor":4,"original_max_position_embeddings":64}`,
		`{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4}`,
		`{"rope_type":"linear"}`,
		`{"rope_type":"dynamic","factor":2}`,
	} {
		if _, err := ParseConfig([]byte(`{` + base + `,"rope_scaling":` + rs + `}`)); err == nil {
			t.Errorf("rope_scaling %s accepted", rs)
		}
	}
}
