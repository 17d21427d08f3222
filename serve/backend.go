package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"

	"github.com/medassist/medassist/engine"
	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/tokenizer"
)

// OpenBackend loads an exported model dir (model.onnx + config + tokenizer files) into an ONNX Runtime engine.
func OpenBackend(ctx context.Context, cfg Config, log *slog.Logger) (*Backend, error) {
	if cfg.Model == "" {
		return nil, errors.New("no model: pass --model DIR (an exported dir with model.onnx) or set MEDASSIST_MODEL")
	}
	if _, err := model.LoadConfig(cfg.Model); err != nil {
		return nil, fmt.Errorf("model %s: %w (--model must be an exported dir: medassist export --model HF_DIR --out DIR)", cfg.Model, err)
	}
	tok, err := tokenizer.Load(cfg.Model)
	if err != nil {
		return nil, err
	}
	tpl, err := model.LoadChatTemplate(cfg.Model)
	if err != nil {
		tok.Close()
		return nil, err
	}
	stop, err := model.StopIDs(cfg.Model, tok.EOS())
	if err != nil {
		tok.Close()
		return nil, err
	}
	ecfg := engine.Config{ModelDir: cfg.Model, ORTLib: cfg.ORTLib, Device: cfg.Device, IntraOpThreads: threads(cfg), AllowSpinning: cfg.AllowSpinning}
	if err := ctx.Err(); err != nil {
		tok.Close()
		return nil, err
	}
	eng, err := engine.Open(ecfg, log)
	if err != nil {
		tok.Close()
		return nil, fmt.Errorf("open engine: %w", err)
	}
	return &Backend{
		Gen: eng, Tok: tok, Template: tpl, StopIDs: stop,
		MaxPositions: eng.MaxPositions(), Device: eng.Device(),
		Close: func() error { return errors.Join(eng.Close(), tok.Close()) },
	}, nil
}

// threads is the intra-op thread count: as configured, or the cores shared out among the sequences
// that may run at once (sequences × threads ≤ cores keeps them from fighting over the CPU).
func threads(cfg Config) int {
	if cfg.Threads > 0 {
		return cfg.Threads
	}
	return max(1, runtime.NumCPU()/cfg.MaxConcurrent)
}
