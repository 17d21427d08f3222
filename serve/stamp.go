package serve

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/medassist/medassist/export"
)

// StampFile, in a model dir, records which model the export in it was made from. It is written last,
// so a dir without it (or with another model's) is re-exported.
const StampFile = "medassist-export.json"

// StampFormat changes when exports made by older versions must be redone.
const StampFormat = 1

// partialPrefix names the scratch folder an export is written into before it replaces the dir's contents.
const partialPrefix = ".partial-"

// Stamp identifies an export: the model id it came from, the revision asked for, what that resolved to
// (a Hub commit, or a fingerprint of a local folder or file) and the quantization.
type Stamp struct {
	ModelID  string `json:"model_id"`
	Revision string `json:"revision,omitempty"`
	Commit   string `json:"commit"`
	Quantize string `json:"quantize"`
	Format   int    `json:"format"`
}

// ReadStamp reads dir's stamp.
func ReadStamp(dir string) (Stamp, error) {
	var s Stamp
	b, err := os.ReadFile(filepath.Join(dir, StampFile))
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %w", filepath.Join(dir, StampFile), err)
	}
	return s, nil
}

func writeStamp(dir string, s Stamp) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, StampFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, StampFile))
}

// ReplaceExport makes dir hold a fresh export stamped s: write fills out (an empty folder) and may use
// scratch for intermediate files; both live in a temporary folder inside dir, so the finished files are
// renamed into place on the same file system (dir may be a mount point). The stamp goes first and comes
// back last: an interrupted replacement leaves a dir that Prepare re-exports. A non-empty dir that holds
// neither an export nor a partial one is refused rather than emptied.
func ReplaceExport(dir string, s Stamp, write func(out, scratch string) error) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := checkReplaceable(dir); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, StampFile)); err != nil && !os.IsNotExist(err) {
		return err
	}
	scratch, err := os.MkdirTemp(dir, partialPrefix)
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	out := filepath.Join(scratch, "export")
	if err := write(out, scratch); err != nil {
		return err
	}
	if err := clearExcept(dir, filepath.Base(scratch)); err != nil {
		return err
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.Rename(filepath.Join(out, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return writeStamp(dir, s)
}

// checkReplaceable refuses to empty a dir that is not an export: no stamp, no model.onnx, no partial export.
func checkReplaceable(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		return err
	}
	for _, e := range entries {
		if n := e.Name(); n == StampFile || n == export.ModelFile || strings.HasPrefix(n, partialPrefix) {
			return nil
		}
	}
	return fmt.Errorf("model dir %s is not empty and holds no medassist export: point the model dir at an empty folder (or one medassist exported into)", dir)
}

func clearExcept(dir, keep string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() != keep {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// fingerprint identifies the contents of a local model folder or file by the names, sizes and
// modification times of its files (a changed or replaced file changes it), without reading them.
func fingerprint(path string) (string, error) {
	path, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("model %s: %w", path, err)
	}
	var lines []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := os.Stat(p) // follows links, as Hugging Face cache snapshots are links to blobs
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(path, p)
		lines = append(lines, fmt.Sprintf("%s %d %d", rel, info.Size(), info.ModTime().UnixNano()))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("model %s: %w", path, err)
	}
	sort.Strings(lines)
	h := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return "local-" + hex.EncodeToString(h[:8]), nil
}
