package gguf

import (
	"fmt"

	"github.com/medassist/medassist/model"
)

// LlamaConfig builds config.json from the {arch}.* metadata of a Llama-architecture file.
func (gf *File) LlamaConfig(v *Vocab) (*model.Config, error) {
	m := &meta{gf: gf}
	arch := m.str("general.architecture", "")
	if m.err == nil && arch != "llama" {
		return nil, fmt.Errorf("gguf: general.architecture %q is not supported (medassist imports the llama architecture: Llama, SmolLM, TinyLlama, Mistral-style files converted as llama)", arch)
	}
	k := func(s string) string { return arch + "." + s }
	c := &model.Config{
		Architectures:         []string{"LlamaForCausalLM"},
		ModelType:             "llama",
		HiddenSize:            m.required(k("embedding_length")),
		IntermediateSize:      m.required(k("feed_forward_length")),
		NumHiddenLayers:       m.required(k("block_count")),
		NumAttentionHeads:     m.required(k("attention.head_count")),
		MaxPositionEmbeddings: int(m.integer(k("context_length"), 2048)),
		RMSNormEps:            m.float(k("attention.layer_norm_rms_epsilon"), 1e-5),
		RopeTheta:             m.float(k("rope.freq_base"), 10000),
		VocabSize:             int(m.integer(k("vocab_size"), int64(len(v.Tokens)))),
		HiddenAct:             "silu",
		TorchDtype:            "float32",
	}
	c.NumKeyValueHeads = int(m.integer(k("attention.head_count_kv"), int64(c.NumAttentionHeads)))
	headDim := 0
	if c.NumAttentionHeads > 0 {
		headDim = c.HiddenSize / c.NumAttentionHeads
	}
	if kl := int(m.integer(k("attention.key_length"), int64(headDim))); kl != headDim {
		c.HeadDimOverride, headDim = kl, kl
	}
	if vl := int(m.integer(k("attention.value_length"), int64(headDim))); vl != headDim {
		return nil, fmt.Errorf("gguf: %s = %d differs from the key length %d (not a Llama layout)", k("attention.value_length"), vl, headDim)
	}
	if rd := int(m.integer(k("rope.dimension_count"), int64(headDim))); rd != headDim {
		return nil, fmt.Errorf("gguf: %s = %d: partial rotary embeddings (head dim %d) are not supported", k("rope.dimension_count"), rd, headDim)
	}
	switch st := m.str(k("rope.scaling.type"), "none"); st {
	case "none", "":
	case "linear":
		c.RopeScaling = &model.RopeScaling{Type: "linear", Factor: m.float(k("rope.scaling.factor"), 1)}
	default:
		return nil, fmt.Errorf("gguf: %s %q is not supported (only linear)", k("rope.scaling.type"), st)
	}
	if m.err != nil {
		return nil, fmt.Errorf("gguf: %w", m.err)
	}
	if v.BOS >= 0 {
		bos := v.BOS
		c.BOSTokenID = &bos
	}
	if eos := v.eosIDs(); len(eos) == 1 {
		c.EOSTokenID = eos[0]
	} else if len(eos) > 1 {
		c.EOSTokenID = eos
	}
	_, hasOutput := gf.Tensor(ggufOutput)
	c.TieWordEmbeddings = !hasOutput
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	return c, nil
}

// eosIDs are the ids that end generation: EOS, then the end-of-turn token when it differs.
func (v *Vocab) eosIDs() []int {
	var ids []int
	if v.EOS >= 0 {
		ids = append(ids, v.EOS)
	}
	if v.EOT >= 0 && v.EOT != v.EOS {
		ids = append(ids, v.EOT)
	}
	return ids
}

// GenerationConfigJSON is generation_config.json: the token ids (a GGUF file holds no sampling
// defaults).
func (v *Vocab) GenerationConfigJSON() obj {
	g := obj{}
	if v.BOS >= 0 {
		g["bos_token_id"] = v.BOS
	}
	if eos := v.eosIDs(); len(eos) == 1 {
		g["eos_token_id"] = eos[0]
	} else if len(eos) > 1 {
		g["eos_token_id"] = eos
	}
	if v.PAD >= 0 {
		g["pad_token_id"] = v.PAD
	}
	return g
}
