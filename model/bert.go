package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Architecture is the family of a model dir, read from its config.json.
type Architecture string

// Architectures medassist can export.
const (
	ArchLlama Architecture = "llama" // decoder-only chat model (LlamaForCausalLM)
	ArchBert  Architecture = "bert"  // BERT-style encoder (BertModel, e.g. a sentence-transformers model)
)

// DetectArchitecture reads DIR/config.json and names its family from model_type, else from
// architectures. A config that names neither is taken for a Llama (as older exports write it).
func DetectArchitecture(dir string) (Architecture, error) {
	b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return "", fmt.Errorf("read config: %w (a model dir holds the config.json of its Hugging Face repository)", err)
	}
	var c struct {
		ModelType     string   `json:"model_type"`
		Architectures []string `json:"architectures"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", fmt.Errorf("parse config: %w", err)
	}
	switch c.ModelType {
	case "llama":
		return ArchLlama, nil
	case "bert":
		return ArchBert, nil
	case "":
	default:
		return "", fmt.Errorf("model_type %q is not supported (supported: llama, bert)", c.ModelType)
	}
	for _, a := range c.Architectures {
		if strings.HasPrefix(a, "Bert") {
			return ArchBert, nil
		}
	}
	return ArchLlama, nil
}

// BertConfig mirrors the config.json of a BERT encoder (BertModel).
type BertConfig struct {
	Architectures         []string `json:"architectures,omitempty"`
	ModelType             string   `json:"model_type"`
	HiddenSize            int      `json:"hidden_size"`
	IntermediateSize      int      `json:"intermediate_size"`
	NumHiddenLayers       int      `json:"num_hidden_layers"`
	NumAttentionHeads     int      `json:"num_attention_heads"`
	VocabSize             int      `json:"vocab_size"`
	MaxPositionEmbeddings int      `json:"max_position_embeddings"`
	TypeVocabSize         int      `json:"type_vocab_size"`
	LayerNormEps          float64  `json:"layer_norm_eps"`
	HiddenAct             string   `json:"hidden_act"`
	PositionEmbeddingType string   `json:"position_embedding_type"`
}

// LoadBertConfig reads and validates DIR/config.json of a BERT encoder.
func LoadBertConfig(dir string) (*BertConfig, error) {
	b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	var c BertConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	if c.LayerNormEps == 0 {
		c.LayerNormEps = 1e-12
	}
	if c.TypeVocabSize == 0 {
		c.TypeVocabSize = 2
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	return &c, nil
}

// Validate checks that the config describes a BERT encoder medassist can export.
func (c *BertConfig) Validate() error {
	var errs problems
	check := errs.check
	check(c.ModelType == "bert", "model_type %q is not a BERT encoder", c.ModelType)
	check(c.HiddenSize > 0, "hidden_size must be > 0, got %d", c.HiddenSize)
	check(c.IntermediateSize > 0, "intermediate_size must be > 0, got %d", c.IntermediateSize)
	check(c.NumHiddenLayers > 0, "num_hidden_layers must be > 0, got %d", c.NumHiddenLayers)
	check(c.NumAttentionHeads > 0 && c.HiddenSize%max(c.NumAttentionHeads, 1) == 0,
		"hidden_size (%d) must be divisible by num_attention_heads (%d)", c.HiddenSize, c.NumAttentionHeads)
	check(c.VocabSize > 0, "vocab_size must be > 0, got %d", c.VocabSize)
	check(c.MaxPositionEmbeddings > 0, "max_position_embeddings must be > 0, got %d", c.MaxPositionEmbeddings)
	check(c.HiddenAct == "gelu", "hidden_act %q is not supported (only gelu, the exact erf form)", c.HiddenAct)
	check(c.PositionEmbeddingType == "" || c.PositionEmbeddingType == "absolute",
		"position_embedding_type %q is not supported (only absolute)", c.PositionEmbeddingType)
	return errors.Join(errs...)
}

// HeadDim is the size of one attention head.
func (c *BertConfig) HeadDim() int { return c.HiddenSize / c.NumAttentionHeads }

// Hugging Face tensor names of a BertModel (model.safetensors of a sentence-transformers repo;
// BertFor* checkpoints add a "bert." prefix, which export does not accept).
const (
	BertWordEmbeddings      = "embeddings.word_embeddings.weight"
	BertPositionEmbeddings  = "embeddings.position_embeddings.weight"
	BertTokenTypeEmbeddings = "embeddings.token_type_embeddings.weight"
	BertEmbeddingsNorm      = "embeddings.LayerNorm"
)

// BertLinear is one dense layer inside a BERT block.
type BertLinear string

// The dense layers of a BERT block, in the order they are applied.
const (
	BertQuery        BertLinear = "attention.self.query"
	BertKey          BertLinear = "attention.self.key"
	BertValue        BertLinear = "attention.self.value"
	BertAttnOutput   BertLinear = "attention.output.dense"
	BertIntermediate BertLinear = "intermediate.dense"
	BertOutput       BertLinear = "output.dense"
)

// BertLinears lists every dense layer of a block.
var BertLinears = []BertLinear{BertQuery, BertKey, BertValue, BertAttnOutput, BertIntermediate, BertOutput}

// The LayerNorms of a BERT block: after attention and after the feed-forward layer.
const (
	BertAttnNorm   = "attention.output.LayerNorm"
	BertOutputNorm = "output.LayerNorm"
)

// BertLayerPrefix is "encoder.layer.{i}".
func BertLayerPrefix(layer int) string { return fmt.Sprintf("encoder.layer.%d", layer) }

// BertLinearName is the module name of dense layer l of block i, e.g. encoder.layer.0.attention.self.query;
// its tensors are NAME.weight ([out, in]) and NAME.bias.
func BertLinearName(layer int, l BertLinear) string {
	return BertLayerPrefix(layer) + "." + string(l)
}

// BertNormName is the module name of a block's LayerNorm (BertAttnNorm or BertOutputNorm);
// its tensors are NAME.weight and NAME.bias.
func BertNormName(layer int, norm string) string { return BertLayerPrefix(layer) + "." + norm }

// Weight is the weight tensor of a module: NAME.weight.
func Weight(module string) string { return module + ".weight" }

// Bias is the bias tensor of a module: NAME.bias.
func Bias(module string) string { return module + ".bias" }

// Shape is the [out, in] shape of dense layer l's weight.
func (c *BertConfig) Shape(l BertLinear) (out, in int) {
	h := c.HiddenSize
	switch l {
	case BertIntermediate:
		return c.IntermediateSize, h
	case BertOutput:
		return h, c.IntermediateSize
	}
	return h, h
}

// TensorShapes lists every tensor an exported BertModel needs with its HF shape (the pooler is
// not used by sentence embeddings and not listed).
func (c *BertConfig) TensorShapes() map[string][]int {
	h := c.HiddenSize
	m := map[string][]int{
		BertWordEmbeddings:         {c.VocabSize, h},
		BertPositionEmbeddings:     {c.MaxPositionEmbeddings, h},
		BertTokenTypeEmbeddings:    {c.TypeVocabSize, h},
		Weight(BertEmbeddingsNorm): {h},
		Bias(BertEmbeddingsNorm):   {h},
	}
	for i := 0; i < c.NumHiddenLayers; i++ {
		for _, l := range BertLinears {
			out, in := c.Shape(l)
			m[Weight(BertLinearName(i, l))] = []int{out, in}
			m[Bias(BertLinearName(i, l))] = []int{out}
		}
		for _, n := range []string{BertAttnNorm, BertOutputNorm} {
			m[Weight(BertNormName(i, n))] = []int{h}
			m[Bias(BertNormName(i, n))] = []int{h}
		}
	}
	return m
}

// TensorNames is the keys of TensorShapes, sorted.
func (c *BertConfig) TensorNames() []string {
	m := c.TensorShapes()
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ONNX encoder graph I/O names (the Optimum feature-extraction layout, plus the pooled sentence
// embedding of a sentence-transformers model). input_ids and attention_mask are OnnxInputIDs and
// OnnxAttentionMask.
const (
	OnnxTokenTypeIDs      = "token_type_ids"
	OnnxLastHiddenState   = "last_hidden_state"
	OnnxSentenceEmbedding = "sentence_embedding"
)
