package model

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// TokenizerFiles are the files beside the weights that tokenizing, templating and generating need;
// every stage that writes a model dir copies them from its source.
var TokenizerFiles = []string{"tokenizer.json", "tokenizer.model", TokenizerConfigFile, ChatTemplateFile, "special_tokens_map.json", GenerationConfigFile}

// CopyModelFiles copies each named file that exists in srcDir into dstDir (created if needed);
// names absent from srcDir are skipped.
func CopyModelFiles(srcDir, dstDir string, names []string) error {
	if err := os.MkdirAll(dstDir, 0o755); err != nil {
		return fmt.Errorf("copy model files: %w", err)
	}
	for _, n := range names {
		err := copyFile(filepath.Join(srcDir, n), filepath.Join(dstDir, n))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("copy model files: %s: %w", n, err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if same, err := sameFile(src, dst); err == nil && same {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil { // names may hold a folder (1_Pooling/config.json)
		return err
	}
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}

func sameFile(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}

// OnnxModelFile is the exported decoder in a model dir (DESIGN.md's layout); its presence is what
// marks a dir as exported. OnnxDataFile holds its large tensors when they are stored outside it.
const (
	OnnxModelFile = "model.onnx"
	OnnxDataFile  = OnnxModelFile + ".data"
)

// The engines that run a model dir: the values of generate's and eval's --engine.
const (
	EngineAuto  = "auto"  // EngineONNX when the dir holds OnnxModelFile, else EngineGoMLX
	EngineONNX  = "onnx"  // an exported dir on ONNX Runtime
	EngineGoMLX = "gomlx" // a Hugging Face-layout dir on GoMLX
)

// ResolveEngine applies EngineAuto's rule to dir; any other kind is returned as it is.
func ResolveEngine(kind, dir string) string {
	if kind != EngineAuto {
		return kind
	}
	if _, err := os.Stat(filepath.Join(dir, OnnxModelFile)); err == nil {
		return EngineONNX
	}
	return EngineGoMLX
}
