package model

import (
	"fmt"
	"math"
)

// Rotary position embedding (RoPE) kinds of rope_scaling / rope_parameters that medassist runs.
const (
	RopeDefault = "default" // no scaling (also an absent or null rope_scaling)
	RopeLinear  = "linear"  // inverse frequencies divided by factor
	RopeLlama3  = "llama3"  // Llama 3.1's wavelength-dependent scaling
)

// validate checks rope_scaling the way transformers' rope validation does for the supported
// kinds. transformers raises KeyError for a llama3 rope_scaling without low_freq_factor or
// high_freq_factor, so those are refused here too rather than given defaults.
func (r *RopeScaling) validate() error {
	switch k := r.Kind(); k {
	case "", RopeDefault:
		return nil
	case RopeLinear:
		if r.Factor <= 0 {
			return fmt.Errorf("rope_scaling linear: factor must be > 0, got %g", r.Factor)
		}
		return nil
	case RopeLlama3:
		if r.Factor <= 0 || r.OriginalMaxPositionEmbeddings <= 0 {
			return fmt.Errorf("rope_scaling llama3 needs factor > 0 and original_max_position_embeddings > 0")
		}
		if r.LowFreqFactor <= 0 || r.HighFreqFactor <= 0 {
			return fmt.Errorf("rope_scaling llama3 needs low_freq_factor and high_freq_factor (> 0; Llama 3.1 uses 1 and 4), as transformers does")
		}
		if r.HighFreqFactor <= r.LowFreqFactor {
			return fmt.Errorf("rope_scaling llama3: high_freq_factor (%g) must be greater than low_freq_factor (%g)", r.HighFreqFactor, r.LowFreqFactor)
		}
		return nil
	default:
		return fmt.Errorf("rope_scaling type %q is not supported (supported: %s, %s, %s); remove it or convert the model", k, RopeDefault, RopeLinear, RopeLlama3)
	}
}

// RopeInvFreq returns the rotary inverse frequencies [HeadDim/2] as transformers computes them, in
// float32: inv_freq[j] = 1 / rope_theta^(2j / head_dim), then scaled by rope_scaling ("linear":
// divided by factor; "llama3": long wavelengths divided by factor, short ones kept, those in between
// interpolated). The angle of position p and frequency j is p · inv_freq[j]; every supported kind
// has an attention scaling of 1 (cos and sin are not rescaled).
func (c *Config) RopeInvFreq() []float32 {
	d := c.HeadDim()
	inv := make([]float32, d/2)
	for j := range inv {
		e := float32(2*j) / float32(d) // the exponent is a float32 tensor in transformers
		inv[j] = 1 / float32(math.Pow(c.RopeTheta, float64(e)))
	}
	r := c.RopeScaling
	if r == nil {
		return inv
	}
	switch r.Kind() {
	case RopeLinear:
		for j := range inv {
			inv[j] = float32(inv[j] / float32(r.Factor))
		}
	case RopeLlama3:
		llama3Scale(inv, r)
	}
	return inv
}

// llama3Scale is transformers' _compute_llama3_parameters on float32 inverse frequencies.
func llama3Scale(inv []float32, r *RopeScaling) {
	factor, low, high := float32(r.Factor), float32(r.LowFreqFactor), float32(r.HighFreqFactor)
	orig := float32(r.OriginalMaxPositionEmbeddings)
	lowWavelen, highWavelen := orig/low, orig/high
	for j, f := range inv {
		wavelen := float32(2*math.Pi) / f
		switch {
		case wavelen < highWavelen: // high frequency: kept
		case wavelen > lowWavelen: // low frequency: divided by factor
			inv[j] = float32(f / factor)
		default: // in between: interpolated
			smooth := float32(float32(orig/wavelen-low) / float32(high-low))
			inv[j] = float32(float32(1-smooth)*f/factor) + float32(smooth*f)
		}
	}
}
