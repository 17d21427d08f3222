package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// GenerationConfigFile holds a model's default decoding settings.
const GenerationConfigFile = "generation_config.json"

// GenerationConfig mirrors generation_config.json. Fields absent from the file take Hugging Face's
// defaults (temperature 1, top_p 1, top_k 50, repetition_penalty 1, greedy), token ids come from
// config.json when the file lacks them, and MaxLength defaults to max_position_embeddings.
// PadTokenID falls back to the first EOS id (as transformers' generate does), -1 when there is none.
type GenerationConfig struct {
	BOSTokenID        int
	EOSTokenIDs       []int
	PadTokenID        int
	MaxLength         int
	MaxNewTokens      int // 0 when unset
	Temperature       float64
	TopP              float64
	TopK              int
	RepetitionPenalty float64
	DoSample          bool
}

// generationFile is the JSON form; pointers tell absent keys from zeros.
type generationFile struct {
	BOSTokenID        *int     `json:"bos_token_id"`
	EOSTokenID        any      `json:"eos_token_id"`
	PadTokenID        *int     `json:"pad_token_id"`
	MaxLength         *int     `json:"max_length"`
	MaxNewTokens      *int     `json:"max_new_tokens"`
	Temperature       *float64 `json:"temperature"`
	TopP              *float64 `json:"top_p"`
	TopK              *int     `json:"top_k"`
	RepetitionPenalty *float64 `json:"repetition_penalty"`
	DoSample          *bool    `json:"do_sample"`
}

// LoadGenerationConfig reads DIR/generation_config.json, filling what it lacks from DIR/config.json
// and Hugging Face's defaults. A missing generation_config.json (or config.json) is not an error.
func LoadGenerationConfig(dir string) (*GenerationConfig, error) {
	cfg := &Config{}
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err == nil {
		if cfg, err = LoadConfig(dir); err != nil {
			return nil, fmt.Errorf("generation config: %w", err)
		}
	}
	var f generationFile
	path := filepath.Join(dir, GenerationConfigFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("generation config: %w", err)
	default:
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("generation config: %s: bad JSON: %w", path, err)
		}
	}
	g, err := f.resolve(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return g, nil
}

// StopIDs returns the token ids that end generation with the model in dir, from the first source
// that names any: generation_config.json's eos_token_id, then config.json's, then tokenizerEOS
// (the tokenizer's EOS id; -1 when there is none or no tokenizer is at hand). This is
// transformers' order: generate() reads generation_config.json, which save_pretrained fills from
// config.json. A missing file is fine; a malformed one is an error naming it, and so is finding no
// EOS id at all (generation would never stop).
func StopIDs(dir string, tokenizerEOS int) ([]int, error) {
	g, err := LoadGenerationConfig(dir)
	if err != nil {
		return nil, err
	}
	if len(g.EOSTokenIDs) > 0 {
		return g.EOSTokenIDs, nil
	}
	if tokenizerEOS >= 0 {
		return []int{tokenizerEOS}, nil
	}
	return nil, fmt.Errorf("%s: no eos_token_id in %s, %s or the tokenizer; generation would never stop", dir, GenerationConfigFile, ConfigFile)
}

func (f *generationFile) resolve(cfg *Config) (*GenerationConfig, error) {
	g := &GenerationConfig{
		BOSTokenID: -1, PadTokenID: -1, MaxLength: cfg.MaxPositionEmbeddings,
		Temperature: 1, TopP: 1, TopK: 50, RepetitionPenalty: 1,
	}
	if cfg.BOSTokenID != nil {
		g.BOSTokenID = *cfg.BOSTokenID
	}
	g.EOSTokenIDs = cfg.EOSTokenIDs()
	setInt(&g.BOSTokenID, f.BOSTokenID)
	if f.EOSTokenID != nil {
		ids, err := tokenIDs(f.EOSTokenID)
		if err != nil {
			return nil, fmt.Errorf("eos_token_id: %w", err)
		}
		g.EOSTokenIDs = ids
	}
	if len(g.EOSTokenIDs) > 0 {
		g.PadTokenID = g.EOSTokenIDs[0]
	}
	setInt(&g.PadTokenID, f.PadTokenID)
	setInt(&g.MaxLength, f.MaxLength)
	setInt(&g.MaxNewTokens, f.MaxNewTokens)
	setInt(&g.TopK, f.TopK)
	setFloat(&g.Temperature, f.Temperature)
	setFloat(&g.TopP, f.TopP)
	setFloat(&g.RepetitionPenalty, f.RepetitionPenalty)
	if f.DoSample != nil {
		g.DoSample = *f.DoSample
	}
	return g, g.Validate()
}

// Validate checks the ranges a sampler relies on.
func (g *GenerationConfig) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(g.Temperature >= 0, "generation config: temperature must be >= 0, got %g", g.Temperature)
	check(g.TopP > 0 && g.TopP <= 1, "generation config: top_p must be in (0, 1], got %g", g.TopP)
	check(g.TopK >= 0, "generation config: top_k must be >= 0, got %d", g.TopK)
	check(g.RepetitionPenalty > 0, "generation config: repetition_penalty must be > 0, got %g", g.RepetitionPenalty)
	check(g.MaxLength >= 0 && g.MaxNewTokens >= 0, "generation config: max_length/max_new_tokens must be >= 0")
	return errors.Join(errs...)
}

// IsEOS reports whether id ends generation.
func (g *GenerationConfig) IsEOS(id int) bool {
	for _, e := range g.EOSTokenIDs {
		if e == id {
			return true
		}
	}
	return false
}

func setInt(dst *int, v *int) {
	if v != nil {
		*dst = *v
	}
}

func setFloat(dst *float64, v *float64) {
	if v != nil {
		*dst = *v
	}
}
