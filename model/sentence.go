package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Files of a sentence-transformers model dir, beside the Hugging Face ones.
const (
	SentenceModulesFile = "modules.json"
	SentenceBertFile    = "sentence_bert_config.json"
	SentenceConfigFile  = "config_sentence_transformers.json"
	poolingConfigFile   = "config.json" // inside the Pooling module's folder
)

// Pooling modes of a sentence-transformers Pooling module that export supports.
const (
	PoolMean = "mean" // average of the token embeddings under the attention mask
	PoolCLS  = "cls"  // the first token's embedding
)

// SentenceConfig is what a sentence-transformers dir (modules.json: Transformer → Pooling →
// optional Normalize) says about turning token embeddings into one vector per text.
type SentenceConfig struct {
	// MaxSeqLength is the longest input in tokens, [CLS] and [SEP] included; longer texts are
	// truncated (sentence_bert_config.json max_seq_length).
	MaxSeqLength int
	Pooling      string // PoolMean or PoolCLS
	Normalize    bool   // L2-normalise the pooled vector
	Dim          int    // word_embedding_dimension of the Pooling module
	// Files are the sentence-transformers files of the dir (relative paths), for copying.
	Files []string
}

type stModule struct {
	Path string `json:"path"`
	Type string `json:"type"`
}

// LoadSentenceConfig reads DIR/modules.json and the configs it points to. A dir without
// modules.json is not a sentence-transformers model: the error wraps os.ErrNotExist.
func LoadSentenceConfig(dir string) (*SentenceConfig, error) {
	var mods []stModule
	if err := readJSON(filepath.Join(dir, SentenceModulesFile), &mods); err != nil {
		return nil, fmt.Errorf("sentence-transformers config: %w", err)
	}
	sc := &SentenceConfig{Files: []string{SentenceModulesFile}}
	var errs []error
	seen := map[string]bool{}
	for _, m := range mods {
		kind := m.Type[strings.LastIndex(m.Type, ".")+1:]
		seen[kind] = true
		switch kind {
		case "Transformer":
			errs = append(errs, sc.readTransformer(dir, m.Path))
		case "Pooling":
			errs = append(errs, sc.readPooling(dir, m.Path))
		case "Normalize":
			sc.Normalize = true
		default:
			errs = append(errs, fmt.Errorf("module %s is not supported (supported: Transformer, Pooling, Normalize)", m.Type))
		}
	}
	if !seen["Transformer"] || !seen["Pooling"] {
		errs = append(errs, fmt.Errorf("%s needs a Transformer and a Pooling module", SentenceModulesFile))
	}
	for _, f := range []string{SentenceConfigFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			sc.Files = append(sc.Files, f)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("sentence-transformers config in %s: %w", dir, err)
	}
	return sc, nil
}

func (sc *SentenceConfig) readTransformer(dir, path string) error {
	if path != "" {
		return fmt.Errorf("a Transformer module in a subfolder (%q) is not supported", path)
	}
	var c struct {
		MaxSeqLength int `json:"max_seq_length"`
	}
	rel := SentenceBertFile
	if err := readJSON(filepath.Join(dir, rel), &c); err != nil {
		return err
	}
	if c.MaxSeqLength <= 0 {
		return fmt.Errorf("%s: max_seq_length must be > 0, got %d", rel, c.MaxSeqLength)
	}
	sc.MaxSeqLength = c.MaxSeqLength
	sc.Files = append(sc.Files, rel)
	return nil
}

func (sc *SentenceConfig) readPooling(dir, path string) error {
	var c struct {
		Dim  int  `json:"word_embedding_dimension"`
		CLS  bool `json:"pooling_mode_cls_token"`
		Mean bool `json:"pooling_mode_mean_tokens"`
		Max  bool `json:"pooling_mode_max_tokens"`
		Sqrt bool `json:"pooling_mode_mean_sqrt_len_tokens"`
	}
	rel := filepath.ToSlash(filepath.Join(path, poolingConfigFile))
	if err := readJSON(filepath.Join(dir, rel), &c); err != nil {
		return err
	}
	switch {
	case c.Mean && !c.CLS && !c.Max && !c.Sqrt:
		sc.Pooling = PoolMean
	case c.CLS && !c.Mean && !c.Max && !c.Sqrt:
		sc.Pooling = PoolCLS
	default:
		return fmt.Errorf("%s: only mean or CLS pooling alone is supported", rel)
	}
	sc.Dim = c.Dim
	sc.Files = append(sc.Files, rel)
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}
