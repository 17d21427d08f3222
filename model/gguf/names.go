package gguf

import (
	"fmt"

	"github.com/medassist/medassist/model"
)

// llama.cpp's tensor names for the Llama architecture (gguf-py constants.py MODEL_TENSORS) and
// the Hugging Face names they stand for. This table is the only place GGUF names are spelled.
const (
	ggufTokenEmbd  = "token_embd.weight"
	ggufOutputNorm = "output_norm.weight"
	ggufOutput     = "output.weight"
	ggufRopeFreqs  = "rope_freqs.weight"
)

// ggufBlockNames maps the per-layer GGUF suffix to a function giving the HF name of layer i.
var ggufBlockNames = map[string]func(i int) string{
	"attn_norm.weight":   model.InputNorm,
	"ffn_norm.weight":    model.PostAttentionNorm,
	"attn_q.weight":      projName(model.QProj),
	"attn_k.weight":      projName(model.KProj),
	"attn_v.weight":      projName(model.VProj),
	"attn_output.weight": projName(model.OProj),
	"ffn_gate.weight":    projName(model.GateProj),
	"ffn_up.weight":      projName(model.UpProj),
	"ffn_down.weight":    projName(model.DownProj),
}

func projName(p model.Projection) func(int) string {
	return func(i int) string { return model.ProjWeight(i, p) }
}

// hfNames maps every GGUF tensor name of a Llama with layers blocks to its HF name.
func hfNames(layers int) map[string]string {
	m := map[string]string{
		ggufTokenEmbd:  model.EmbedTokens,
		ggufOutputNorm: model.FinalNorm,
		ggufOutput:     model.LMHead,
	}
	for i := 0; i < layers; i++ {
		for suffix, hf := range ggufBlockNames {
			m[fmt.Sprintf("blk.%d.%s", i, suffix)] = hf(i)
		}
	}
	return m
}
