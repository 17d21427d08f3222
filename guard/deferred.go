package guard

import (
	"fmt"
	"sync"

	"github.com/medassist/medassist/assets"
	"github.com/medassist/medassist/encoder"
)

// NewDeferred builds the guard without opening its sentence encoder yet: the encoder opens on
// Open (a server calls it in its background load, so that it listens at once) or, at the latest, on
// the first check that needs it. The rules and the head are read here, so configuration errors still
// surface at once. Close releases the encoder when it was opened.
func NewDeferred(cfg Config) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("guard config: %w", err)
	}
	head, err := loadHead(assets.GuardFiles(), cfg.Head)
	if err != nil {
		return nil, err
	}
	l := &deferredEncoder{cfg: cfg, dim: head.Dim}
	g, err := NewWithEmbedder(cfg, l)
	if err != nil {
		return nil, err
	}
	g.openEmb, g.closeEmb = l.open, l.Close
	return g, nil
}

// Open opens a deferred sentence encoder now and reports why it cannot be used; for a guard built
// by New or NewWithEmbedder it does nothing.
func (g *Guard) Open() error {
	if g.openEmb == nil {
		return nil
	}
	return g.openEmb()
}

// deferredEncoder opens the encoder once, on first use.
type deferredEncoder struct {
	cfg  Config
	dim  int // what the head reads; the encoder must give the same
	once sync.Once
	enc  *encoder.Encoder
	err  error
	mu   sync.Mutex
	done bool // closed
}

func (d *deferredEncoder) open() error {
	d.once.Do(func() {
		enc, err := OpenEncoder(d.cfg)
		if err == nil && enc.Dim() != d.dim {
			err = fmt.Errorf("guard: the head reads %d-dimensional embeddings, the encoder gives %d: retrain it with `medassist guard train` for this encoder", d.dim, enc.Dim())
			enc.Close()
			enc = nil
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.done && enc != nil { // closed while opening
			enc.Close()
			enc, err = nil, encoder.ErrClosed
		}
		d.enc, d.err = enc, err
	})
	return d.err
}

func (d *deferredEncoder) Embed(texts []string) ([][]float32, error) {
	if err := d.open(); err != nil {
		return nil, err
	}
	return d.enc.Embed(texts)
}

func (d *deferredEncoder) Dim() int { return d.dim }

// Close releases the encoder if it was opened; later checks fail with encoder.ErrClosed.
func (d *deferredEncoder) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.done = true
	if d.enc == nil {
		return nil
	}
	return d.enc.Close()
}
