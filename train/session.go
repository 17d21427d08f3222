package train

import (
	"fmt"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/medassist/medassist/model"
)

// session is a base model loaded into a GoMLX store on a backend, optionally with LoRA adapters.
type session struct {
	backend compute.Backend
	store   *mlmodel.Store
	cfg     *model.Config
	adapter *Adapter // nil: the base model alone
	eval    *mlmodel.Exec
}

// openSession loads the model in dir (config.json + safetensors) into a fresh store.
func openSession(backend compute.Backend, dir string) (*session, error) {
	cfg, err := model.LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	w, err := model.OpenWeights(dir)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	s := &session{backend: backend, store: mlmodel.NewStore(), cfg: cfg}
	if err := loadBase(s.store, backend, w, cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return s, nil
}

// evalGraph: ids, labels → (summed next-token loss over labelled positions, their count).
func (s *session) evalGraph(_ *mlmodel.Scope, ids, labels *graph.Node) (*graph.Node, *graph.Node) {
	defer releaseVJPs(ids.Graph())
	m := buildLlama(s.store, ids.Graph(), s.cfg, s.adapter, nil)
	return tokenLoss(m.Forward(ids), labels)
}

// Eval returns the summed token loss of b and its token count.
func (s *session) Eval(b *batch) (float64, int, error) {
	if s.eval == nil {
		e, err := mlmodel.NewExec(s.backend, s.store, s.evalGraph)
		if err != nil {
			return 0, 0, err
		}
		s.eval = e.SetMaxCache(256)
	}
	sum, count, err := s.eval.Call2(b.ids, b.labels)
	if err != nil {
		return 0, 0, err
	}
	return float64(tensors.ToScalar[float32](sum)), int(tensors.ToScalar[float32](count)), nil
}
