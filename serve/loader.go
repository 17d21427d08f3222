package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/medassist/medassist/engine"
	"github.com/medassist/medassist/export"
	"github.com/medassist/medassist/hub"
)

// SourceKind is what a model id names.
type SourceKind string

// Kinds of model id.
const (
	SourceHub      SourceKind = "hub"      // a Hugging Face Hub repository id (org/name)
	SourceHFDir    SourceKind = "hf-dir"   // a local folder in the Hugging Face layout (config.json + safetensors)
	SourceExported SourceKind = "exported" // a local folder that medassist export wrote (model.onnx)
	SourceGGUF     SourceKind = "gguf"     // a local GGUF file
)

// ClassifyModelID tells what id names: a local GGUF file, exported folder or Hugging Face folder when
// it exists on disk (or looks like a path), else a Hub repository id.
func ClassifyModelID(id string) (SourceKind, error) {
	if id == "" {
		return "", errors.New("no model id")
	}
	st, err := os.Stat(id)
	looksLocal := filepath.IsAbs(id) || strings.HasPrefix(id, ".") || strings.HasPrefix(id, "~") ||
		strings.HasSuffix(strings.ToLower(id), ".gguf")
	switch {
	case err != nil && looksLocal:
		return "", fmt.Errorf("model %s: %w (a local model must be a GGUF file, an exported folder or a Hugging Face model folder)", id, err)
	case err != nil:
		return SourceHub, nil
	case !st.IsDir() && strings.HasSuffix(strings.ToLower(id), ".gguf"):
		return SourceGGUF, nil
	case !st.IsDir():
		return "", fmt.Errorf("model %s is a file but not a .gguf file: give a GGUF file, an exported folder or a Hugging Face model folder", id)
	case fileExists(filepath.Join(id, export.ModelFile)):
		return SourceExported, nil
	case fileExists(filepath.Join(id, "config.json")):
		return SourceHFDir, nil
	}
	return "", fmt.Errorf("model folder %s has neither %s (an export) nor config.json (a Hugging Face model)", id, export.ModelFile)
}

// ImportFunc converts a GGUF file into a Hugging Face layout folder outDir.
type ImportFunc func(ctx context.Context, ggufFile, outDir string) error

// Loader turns Config's model settings into an exported folder the engine can open: a Hub id is
// pulled into the Hugging Face cache, a GGUF file imported, and either (or a Hugging Face folder) is
// exported into ModelDir, unless ModelDir already holds that export (its stamp says so).
type Loader struct {
	Hub    hub.Config // where pulls come from and go (Endpoint, CacheDir, Token, Offline)
	Import ImportFunc // nil: GGUF files are refused with a clear error
	Log    *slog.Logger
	// Status receives a one-line description of each stage (pulling, exporting, loading); nil ignores.
	Status func(string)
}

func (l *Loader) status(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.Log.Info(msg)
	if l.Status != nil {
		l.Status(msg)
	}
}

// Prepare returns the exported folder to serve for cfg: cfg.Model when set, else cfg.ModelID resolved
// (and exported into cfg.ModelDir when needed).
func (l *Loader) Prepare(ctx context.Context, cfg Config) (string, error) {
	switch {
	case cfg.Model != "" && cfg.ModelID != "":
		return "", errors.New("both model and model-id are set: give one (model: an exported folder; model-id: a Hub id, a local folder or a GGUF file)")
	case cfg.Model != "":
		return cfg.Model, nil
	case cfg.ModelID == "":
		return "", errors.New("no model: set model-id (env MEDASSIST_MODEL_ID, or MODEL_ID in the container) to a Hub id, a local folder or a GGUF file, or pass --model DIR (an exported folder)")
	}
	kind, err := ClassifyModelID(cfg.ModelID)
	if err != nil {
		return "", err
	}
	if kind == SourceExported {
		return cfg.ModelID, nil
	}
	if cfg.ModelDir == "" {
		if cfg.ModelDir, err = DefaultModelDir(cfg.ModelID, cfg.Quantize); err != nil {
			return "", err
		}
	}
	want := Stamp{ModelID: cfg.ModelID, Quantize: cfg.Quantize, Format: StampFormat}
	var src string
	switch kind {
	case SourceHub:
		want.Revision = cfg.Revision
		if src, want.Commit, err = l.pull(ctx, cfg); err != nil {
			return l.offlineFallback(cfg.ModelDir, want, err)
		}
	case SourceHFDir:
		src = cfg.ModelID
		want.Commit, err = fingerprint(src)
	case SourceGGUF:
		want.Commit, err = fingerprint(cfg.ModelID)
	}
	if err != nil {
		return "", err
	}
	if have, err := ReadStamp(cfg.ModelDir); err == nil && have == want {
		l.Log.Info("export up to date", "dir", cfg.ModelDir, "model_id", want.ModelID, "revision", want.Commit, "quantize", want.Quantize)
		return cfg.ModelDir, nil
	}
	err = ReplaceExport(cfg.ModelDir, want, func(out, scratch string) error {
		if kind == SourceGGUF {
			if src, err = l.importGGUF(ctx, cfg.ModelID, scratch); err != nil {
				return err
			}
		}
		l.status("exporting %s (quantize %s) into %s", cfg.ModelID, cfg.Quantize, cfg.ModelDir)
		opt := export.DefaultOptions()
		opt.Quantize = export.Quantization(cfg.Quantize)
		_, err := export.Export(ctx, src, out, opt, l.Log, nil)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("export %s: %w", cfg.ModelID, err)
	}
	return cfg.ModelDir, nil
}

// Open prepares the model (Prepare) and opens it on the device DeviceFor picks: the load function
// Server.Run calls in the background.
func (l *Loader) Open(ctx context.Context, cfg Config) (*Backend, error) {
	dir, err := l.Prepare(ctx, cfg)
	if err != nil {
		return nil, err
	}
	cfg.Model, cfg.Device = dir, DeviceFor(cfg.Device, cfg.ORTLib)
	l.status("loading %s on %s", dir, cfg.Device)
	return OpenBackend(ctx, cfg, l.Log)
}

// pull fetches a Hub repository into the cache and returns its snapshot folder and commit.
func (l *Loader) pull(ctx context.Context, cfg Config) (dir, commit string, err error) {
	l.status("pulling %s (revision %s) from %s", cfg.ModelID, cfg.Revision, l.Hub.Endpoint)
	hc := l.Hub
	if hc.Logger == nil {
		hc.Logger = l.Log
	}
	c, err := hub.New(hc)
	if err != nil {
		return "", "", err
	}
	dir, err = c.Snapshot(ctx, cfg.ModelID, hub.Model, cfg.Revision, nil)
	if err != nil {
		return "", "", fmt.Errorf("pull %s: %w", cfg.ModelID, err)
	}
	return dir, filepath.Base(dir), nil
}

// offlineFallback serves an export of the same model, revision and quantization when the Hub cannot
// be reached (a baked or persistent export on a machine without network); otherwise it returns err.
func (l *Loader) offlineFallback(dir string, want Stamp, err error) (string, error) {
	have, serr := ReadStamp(dir)
	if serr != nil || have.ModelID != want.ModelID || have.Revision != want.Revision || have.Quantize != want.Quantize || have.Format != want.Format {
		return "", err
	}
	l.Log.Warn("the Hub is unreachable: serving the export already in the model dir", "dir", dir, "commit", have.Commit, "err", err)
	return dir, nil
}

// importGGUF converts a GGUF file into a Hugging Face folder under scratch and returns that folder.
func (l *Loader) importGGUF(ctx context.Context, file, scratch string) (string, error) {
	if l.Import == nil {
		return "", fmt.Errorf("%s is a GGUF file and this build cannot import GGUF: convert it to a Hugging Face folder (config.json + safetensors) and set the model id to that folder", file)
	}
	l.status("importing %s", file)
	out := filepath.Join(scratch, "hf")
	if err := l.Import(ctx, file, out); err != nil {
		return "", fmt.Errorf("import %s: %w", file, err)
	}
	return out, nil
}

// DefaultModelDir is where a model id is exported when no model dir is set: a folder per model id
// and quantization in the user's cache dir.
func DefaultModelDir(modelID, quantize string) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no model dir set and no user cache dir (%w): set model-dir", err)
	}
	name := strings.Trim(strings.NewReplacer("/", "--", "\\", "--", ":", "-").Replace(filepath.Clean(modelID)), "-.")
	return filepath.Join(cache, "medassist", "exports", name+"-"+quantize), nil
}

// modelIDName is the model name /v1/models reports for a model id: a Hub id as is, a local path's base name.
func modelIDName(id string) string {
	if kind, err := ClassifyModelID(id); err == nil && kind == SourceHub {
		return id
	}
	return strings.TrimSuffix(filepath.Base(filepath.Clean(id)), ".gguf")
}

// DeviceFor is the device to open the engine on: "auto" becomes "cpu" when the ONNX Runtime library
// ortLib (or the file it links to) is a CPU build, with no CUDA provider library beside it, so a CPU
// build never tries, and warns about, CUDA; any other setting is kept.
func DeviceFor(device, ortLib string) string {
	if device != engine.DeviceAuto {
		return device
	}
	lib, err := engine.ResolveORTLib(ortLib)
	if err == nil {
		lib, err = filepath.EvalSymlinks(lib) // a link to a GPU build: its providers sit beside the target
	}
	if err != nil {
		return device // the engine reports the missing library
	}
	if fileExists(filepath.Join(filepath.Dir(lib), "libonnxruntime_providers_cuda.so")) {
		return device
	}
	return engine.DeviceCPU
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
