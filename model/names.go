package model

import "fmt"

// Hugging Face tensor names of a Llama model (model.safetensors). Every package that reads or
// writes weights uses these functions; no tensor name is spelled anywhere else.
const (
	EmbedTokens = "model.embed_tokens.weight"
	FinalNorm   = "model.norm.weight"
	LMHead      = "lm_head.weight"
)

// Projection is one linear layer inside a decoder block; these are also the LoRA target names.
type Projection string

const (
	QProj    Projection = "q_proj"
	KProj    Projection = "k_proj"
	VProj    Projection = "v_proj"
	OProj    Projection = "o_proj"
	GateProj Projection = "gate_proj"
	UpProj   Projection = "up_proj"
	DownProj Projection = "down_proj"
)

// Projections lists every linear layer of a block, attention first.
var Projections = []Projection{QProj, KProj, VProj, OProj, GateProj, UpProj, DownProj}

// Module is the sub-module holding p: "self_attn" or "mlp".
func (p Projection) Module() string {
	switch p {
	case QProj, KProj, VProj, OProj:
		return "self_attn"
	}
	return "mlp"
}

// ParseProjection checks a LoRA target name.
func ParseProjection(s string) (Projection, error) {
	for _, p := range Projections {
		if string(p) == s {
			return p, nil
		}
	}
	return "", fmt.Errorf("unknown projection %q (allowed: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)", s)
}

// Shape is the [out, in] shape of projection p's weight in HF layout (y = x·Wᵀ).
func (c *Config) ProjShape(p Projection) (out, in int) {
	h, kv := c.HiddenSize, c.NumKeyValueHeads*c.HeadDim()
	switch p {
	case QProj:
		return c.NumAttentionHeads * c.HeadDim(), h
	case KProj, VProj:
		return kv, h
	case OProj:
		return h, c.NumAttentionHeads * c.HeadDim()
	case GateProj, UpProj:
		return c.IntermediateSize, h
	case DownProj:
		return h, c.IntermediateSize
	}
	panic("unknown projection " + string(p))
}

// LayerPrefix is "model.layers.{i}".
func LayerPrefix(layer int) string { return fmt.Sprintf("model.layers.%d", layer) }

// ProjWeight is the HF name of a projection weight, e.g. model.layers.0.self_attn.q_proj.weight.
func ProjWeight(layer int, p Projection) string {
	return fmt.Sprintf("%s.%s.%s.weight", LayerPrefix(layer), p.Module(), p)
}

// InputNorm is the RMSNorm before attention: model.layers.{i}.input_layernorm.weight.
func InputNorm(layer int) string { return LayerPrefix(layer) + ".input_layernorm.weight" }

// PostAttentionNorm is the RMSNorm before the MLP: model.layers.{i}.post_attention_layernorm.weight.
func PostAttentionNorm(layer int) string {
	return LayerPrefix(layer) + ".post_attention_layernorm.weight"
}

// PEFT LoRA adapter tensor names (adapter_model.safetensors):
// base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight [r, in] and lora_B.weight [out, r].
const peftPrefix = "base_model.model."

// LoraA is the PEFT name of the A matrix ([r, in]) for a projection.
func LoraA(layer int, p Projection) string {
	return fmt.Sprintf("%s%s.%s.%s.lora_A.weight", peftPrefix, LayerPrefix(layer), p.Module(), p)
}

// LoraB is the PEFT name of the B matrix ([out, r]) for a projection.
func LoraB(layer int, p Projection) string {
	return fmt.Sprintf("%s%s.%s.%s.lora_B.weight", peftPrefix, LayerPrefix(layer), p.Module(), p)
}

// ONNX decoder graph I/O names (Hugging Face Optimum / transformers.js layout).
const (
	OnnxInputIDs      = "input_ids"
	OnnxAttentionMask = "attention_mask"
	OnnxPositionIDs   = "position_ids"
	OnnxLogits        = "logits"
)

// OnnxPastKey is past_key_values.{i}.key, the input KV cache [b, kv_heads, past, head_dim].
func OnnxPastKey(layer int) string { return fmt.Sprintf("past_key_values.%d.key", layer) }

// OnnxPastValue is past_key_values.{i}.value.
func OnnxPastValue(layer int) string { return fmt.Sprintf("past_key_values.%d.value", layer) }

// OnnxPresentKey is present.{i}.key, the output KV cache [b, kv_heads, past+s, head_dim].
func OnnxPresentKey(layer int) string { return fmt.Sprintf("present.%d.key", layer) }

// OnnxPresentValue is present.{i}.value.
func OnnxPresentValue(layer int) string { return fmt.Sprintf("present.%d.value", layer) }

// TensorNames lists every HF tensor a Llama with config c has, in a stable order.
func (c *Config) TensorNames() []string {
	names := []string{EmbedTokens}
	for i := 0; i < c.NumHiddenLayers; i++ {
		names = append(names, InputNorm(i))
		for _, p := range Projections {
			names = append(names, ProjWeight(i, p))
		}
		names = append(names, PostAttentionNorm(i))
	}
	names = append(names, FinalNorm)
	if !c.TieWordEmbeddings {
		names = append(names, LMHead)
	}
	return names
}

// TensorShape is the HF shape of a tensor named by TensorNames.
func (c *Config) TensorShape(name string) ([]int, error) {
	switch name {
	case EmbedTokens, LMHead:
		return []int{c.VocabSize, c.HiddenSize}, nil
	case FinalNorm:
		return []int{c.HiddenSize}, nil
	}
	for i := 0; i < c.NumHiddenLayers; i++ {
		if name == InputNorm(i) || name == PostAttentionNorm(i) {
			return []int{c.HiddenSize}, nil
		}
		for _, p := range Projections {
			if name == ProjWeight(i, p) {
				o, in := c.ProjShape(p)
				return []int{o, in}, nil
			}
		}
	}
	return nil, fmt.Errorf("unknown tensor %q", name)
}
