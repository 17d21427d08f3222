package model

import "testing"

// transformers ≥ 5 writes rope_theta and the scaling kind inside rope_parameters.
func TestRopeParameters(t *testing.T) {
	base := `"hidden_size":64,"intermediate_size":128,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":32`
	c, err := ParseConfig([]byte(`{` + base + `,"rope_parameters":{"rope_type":"default","rope_theta":500000.0}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.RopeTheta != 500000 || c.RopeScaling != nil {
		t.Fatalf("theta %v scaling %+v", c.RopeTheta, c.RopeScaling)
	}
	c, err = ParseConfig([]byte(`{` + base + `,"rope_parameters":{"rope_type":"linear","factor":2.0,"rope_theta":10000.0}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.RopeScaling == nil || c.RopeScaling.Kind() != "linear" || c.RopeScaling.Factor != 2 {
		t.Fatalf("scaling %+v", c.RopeScaling)
	}
	if _, err := ParseConfig([]byte(`{` + base + `,"rope_parameters":{"rope_type":"yarn","factor":4.0,"rope_theta":10000.0}}`)); err == nil {
		t.Fatal("unsupported rope_type must be rejected")
	}
}
