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
var TokenizerFiles = []string{"tokenizer.json", "tokenizer.model", TokenizerConfigFile, "special_tokens_map.json", GenerationConfigFile}

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
