package train

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/medassist/medassist/train/data"
)

// Result summarises a training run.
type Result struct {
	ValPerplexity     []float64 // answer-token perplexity on the validation set after each epoch
	BaseValPerplexity float64   // the same before training (the base model)
	Best              int       // epoch (0-based) of the best validation; its adapter is OUT/adapter
	BestPerplexity    float64
	WallTime          time.Duration // the whole run, validation and checkpoints included, across resumptions
	TokensPerSecond   float64       // real (non-padding) tokens through optimizer steps per second of them
	Steps             int           // optimizer steps
	Resumed           bool          // started from a checkpoint
	Backend           string        // the GoMLX backend that ran: "go", "xla:cpu", "xla:cuda" or "xla:/path"
}

// AdapterDir is where Run keeps the best adapter, in PEFT format.
const AdapterDir = "adapter"

// Run fine-tunes cfg.Base on ds with LoRA and writes OUT/adapter (the best adapter by validation
// perplexity, PEFT format), OUT/metrics.csv and OUT/checkpoints/. Run again with the same
// configuration and data, it resumes from the newest checkpoint and ends exactly where an
// uninterrupted run would. Cancelling ctx saves a checkpoint at the next step boundary.
func Run(ctx context.Context, cfg Config, ds *data.Dataset, log *slog.Logger) (*Result, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if ds == nil || len(ds.Train) == 0 || len(ds.Val) == 0 {
		return nil, errors.New("train: the dataset needs training and validation examples")
	}
	r, err := newRunner(cfg, ds, log)
	if err != nil {
		return nil, err
	}
	return r.run(ctx)
}

// runner is one Run: the session, the optimizer, the plan of steps and the state.
type runner struct {
	cfg           Config
	ds            *data.Dataset
	log           *slog.Logger
	s             *session
	opt           *optimizer
	st            *trainState
	stepsPerEpoch int
	totalSteps    int
	start         time.Time
	elapsed0      time.Duration // Elapsed of the checkpoint resumed from
	resumed       bool
	metrics       *metricsWriter
	bar           *progressbar.ProgressBar
	backend       string // the backend choice's name ("go", "xla:cpu", ...)
}

func newRunner(cfg Config, ds *data.Dataset, log *slog.Logger) (*runner, error) {
	r := &runner{cfg: cfg, ds: ds, log: log, start: time.Now()}
	batches := (len(ds.Train) + cfg.BatchSize - 1) / cfg.BatchSize
	r.stepsPerEpoch = (batches + cfg.GradAccum - 1) / cfg.GradAccum
	r.totalSteps = r.stepsPerEpoch * cfg.Epochs

	backend, choice, err := OpenBackend(cfg.Backend, log)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if r.s, err = openSession(backend, cfg.Base); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	r.backend = choice.Name
	r.s.adapter = cfg.adapter()
	if err := initAdapters(r.s.store, r.s.cfg, r.s.adapter, cfg.Seed); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if err := r.s.store.SetRNGStateFromSeed(cfg.Seed); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if r.opt, err = newOptimizer(r.s, cfg.Dropout, cfg.WeightDecay, cfg.ClipNorm); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	log.Info("training", "base", cfg.Base, "backend", choice.Name, "train", len(ds.Train), "val", len(ds.Val),
		"steps", r.totalSteps, "steps_per_epoch", r.stepsPerEpoch, "adapter_params", r.adapterParams())
	return r, nil
}

func (r *runner) adapterParams() int {
	n := 0
	for _, name := range r.opt.names {
		n += r.s.store.GetVariable(loraPath(name)).Shape().Size()
	}
	return n
}

func (r *runner) fingerprint() string {
	c := r.s.cfg
	return fmt.Sprintf("%s base=%dx%d/%d/%d", r.cfg.fingerprint(fingerprintData(r.ds)),
		c.NumHiddenLayers, c.HiddenSize, c.IntermediateSize, c.VocabSize)
}

// restore resumes from the newest checkpoint, or starts fresh with the base model's perplexity.
func (r *runner) restore(ckDir string) error {
	if err := removeStaleTemps(ckDir); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	latest, err := latestCheckpoint(ckDir)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	fp := r.fingerprint()
	if latest == "" {
		ppl, err := r.validate()
		if err != nil {
			return err
		}
		r.log.Info("base model", "val_perplexity", ppl)
		r.st = &trainState{Version: checkpointVersion, Fingerprint: fp, BaseValPerplexity: ppl}
		return nil
	}
	st, err := loadCheckpoint(latest, r.s.store)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if st.Fingerprint != fp {
		return fmt.Errorf("train: %s was made by a different configuration or dataset:\n  checkpoint: %s\n  now:        %s\nuse another --out, or delete %s to start over",
			latest, st.Fingerprint, fp, ckDir)
	}
	r.st, r.resumed, r.elapsed0 = st, true, st.Elapsed
	r.log.Info("resuming", "checkpoint", latest, "step", st.Step, "of", r.totalSteps, "epoch", st.Epoch+1)
	return nil
}

func (r *runner) run(ctx context.Context) (*Result, error) {
	ckDir := filepath.Join(r.cfg.Out, checkpointsDir)
	if err := os.MkdirAll(ckDir, 0o755); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if err := r.restore(ckDir); err != nil {
		return nil, err
	}
	var err error
	if r.metrics, err = openMetrics(filepath.Join(r.cfg.Out, MetricsFile), r.st.Step); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer r.metrics.Close()
	r.bar = r.newBar()
	for r.st.Epoch < r.cfg.Epochs {
		batches := r.epochBatches(r.st.Epoch)
		for r.st.EpochStep < r.stepsPerEpoch {
			if err := ctx.Err(); err != nil {
				if serr := r.checkpoint(ckDir); serr != nil {
					return nil, errors.Join(err, serr)
				}
				return nil, fmt.Errorf("train: stopped at step %d (checkpoint saved; run the same command to resume): %w", r.st.Step, err)
			}
			lo := r.st.EpochStep * r.cfg.GradAccum
			if err := r.step(batches[lo:min(lo+r.cfg.GradAccum, len(batches))]); err != nil {
				return nil, err
			}
			if r.st.EpochStep < r.stepsPerEpoch && r.cfg.CheckpointEvery > 0 && r.st.Step%r.cfg.CheckpointEvery == 0 {
				if err := r.checkpoint(ckDir); err != nil {
					return nil, err
				}
			}
		}
		r.st.Epoch++
		r.st.EpochStep = 0
		if err := r.checkpoint(ckDir); err != nil {
			return nil, err
		}
	}
	_ = r.bar.Finish()
	return r.result(), nil
}

// step runs one optimizer step over micro-batches of example indices, then validates when due.
func (r *runner) step(micro [][]int) error {
	t0 := time.Now()
	bs := make([]*batch, len(micro))
	targets, tokens := 0, 0
	for i, idx := range micro {
		exs := make([]data.Example, len(idx))
		for j, k := range idx {
			exs[j] = r.ds.Train[k]
		}
		bs[i] = makeBatch(exs, seqBucket)
		targets += bs[i].targets
		tokens += bs[i].tokens
	}
	inv := float32(0)
	if targets > 0 {
		inv = float32(1 / float64(targets))
	}
	lossSum := 0.0
	for _, b := range bs {
		l, err := r.opt.Step(b, inv)
		if err != nil {
			return fmt.Errorf("train: step %d: %w", r.st.Step+1, err)
		}
		lossSum += l
	}
	lr := r.cfg.LR * lrMultiplier(r.cfg.Schedule, r.st.Step, r.cfg.WarmupSteps, r.totalSteps)
	norm, err := r.opt.Apply(r.st.Step+1, lr)
	if err != nil {
		return fmt.Errorf("train: step %d: %w", r.st.Step+1, err)
	}
	dt := time.Since(t0)
	r.st.Step++
	r.st.EpochStep++
	r.st.TrainTime += dt
	r.st.TrainTokens += int64(tokens)
	loss := lossSum / float64(max(targets, 1))
	if math.IsNaN(loss) || math.IsNaN(norm) {
		return fmt.Errorf("train: step %d: loss is NaN (lower --lr or set --clip-norm)", r.st.Step)
	}

	row := metricsRow{Step: r.st.Step, Epoch: r.st.Epoch + 1, Loss: loss, LR: lr, GradNorm: norm,
		TokensPerSecond: float64(tokens) / dt.Seconds()}
	epochEnd := r.st.EpochStep == r.stepsPerEpoch
	if epochEnd || (r.cfg.EvalEvery > 0 && r.st.Step%r.cfg.EvalEvery == 0) {
		ppl, err := r.validate()
		if err != nil {
			return err
		}
		row.ValPerplexity = ppl
		if epochEnd {
			r.st.ValPerplexity = append(r.st.ValPerplexity, ppl)
			r.log.Info("epoch done", "epoch", r.st.Epoch+1, "step", r.st.Step, "val_perplexity", ppl,
				"base_val_perplexity", r.st.BaseValPerplexity, "train_loss", loss)
		}
		if r.st.BestPerplexity == 0 || ppl < r.st.BestPerplexity {
			r.st.BestPerplexity, r.st.BestEpoch, r.st.BestStep = ppl, r.st.Epoch, r.st.Step
			if err := writeAdapter(filepath.Join(r.cfg.Out, AdapterDir), r.s.store, r.s.cfg, r.s.adapter, r.cfg.Base); err != nil {
				return fmt.Errorf("train: %w", err)
			}
		}
	}
	if err := r.metrics.Write(row); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	r.bar.Describe(fmt.Sprintf("epoch %d/%d loss %.4f %.0f tok/s", r.st.Epoch+1, r.cfg.Epochs, loss,
		float64(r.st.TrainTokens)/r.st.TrainTime.Seconds()))
	_ = r.bar.Set(r.st.Step)
	return nil
}

func (r *runner) checkpoint(ckDir string) error {
	r.st.Elapsed = r.elapsed0 + time.Since(r.start)
	if err := saveCheckpoint(ckDir, r.s.store, r.st); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if err := pruneCheckpoints(ckDir, r.cfg.KeepCheckpoints); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return nil
}

// epochBatches is epoch e's order of training examples (a permutation seeded by the seed and the
// epoch), cut into micro-batches.
func (r *runner) epochBatches(e int) [][]int {
	perm := rand.New(rand.NewPCG(uint64(r.cfg.Seed), uint64(e)+1)).Perm(len(r.ds.Train))
	var out [][]int
	for lo := 0; lo < len(perm); lo += r.cfg.BatchSize {
		out = append(out, perm[lo:min(lo+r.cfg.BatchSize, len(perm))])
	}
	return out
}

// validate is the answer-token perplexity of the validation set under the current adapters.
func (r *runner) validate() (float64, error) {
	ppl, err := perplexity(r.s, r.ds.Val, evalRows)
	if err != nil {
		return 0, fmt.Errorf("train: validation: %w", err)
	}
	return ppl, nil
}

func (r *runner) newBar() *progressbar.ProgressBar {
	w := r.cfg.Progress
	if w == nil {
		w = os.Stderr
	}
	bar := progressbar.NewOptions(r.totalSteps,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("training"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(250*time.Millisecond),
		progressbar.OptionSetWidth(20),
		progressbar.OptionOnCompletion(func() { _, _ = io.WriteString(w, "\n") }),
	)
	_ = bar.Set(r.st.Step)
	return bar
}

func (r *runner) result() *Result {
	r.st.Elapsed = r.elapsed0 + time.Since(r.start)
	res := &Result{
		ValPerplexity:     append([]float64(nil), r.st.ValPerplexity...),
		BaseValPerplexity: r.st.BaseValPerplexity,
		Best:              r.st.BestEpoch,
		BestPerplexity:    r.st.BestPerplexity,
		WallTime:          r.st.Elapsed,
		Steps:             r.st.Step,
		Resumed:           r.resumed,
		Backend:           r.backend,
	}
	if r.st.TrainTime > 0 {
		res.TokensPerSecond = float64(r.st.TrainTokens) / r.st.TrainTime.Seconds()
	}
	return res
}

// evalRows is the number of sequences per validation batch.
const evalRows = 4

// perplexity is exp(mean next-token loss) over the labelled tokens of examples, in batches of
// similar lengths.
func perplexity(s *session, examples []data.Example, rows int) (float64, error) {
	order := make([]int, len(examples))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return len(examples[order[a]].IDs) < len(examples[order[b]].IDs) })
	sum, count := 0.0, 0
	for lo := 0; lo < len(order); lo += rows {
		var exs []data.Example
		for _, k := range order[lo:min(lo+rows, len(order))] {
			exs = append(exs, examples[k])
		}
		ls, c, err := s.Eval(makeBatch(exs, seqBucket))
		if err != nil {
			return 0, err
		}
		sum += ls
		count += c
	}
	if count == 0 {
		return 0, errors.New("no labelled tokens to score")
	}
	return math.Exp(sum / float64(count)), nil
}

// dataFingerprint is a short hash of a dataset's examples, in order.
type dataFingerprint string

func fingerprintData(ds *data.Dataset) dataFingerprint {
	h := sha256.New()
	var buf [8]byte
	for _, set := range [][]data.Example{ds.Train, ds.Val} {
		binary.LittleEndian.PutUint64(buf[:], uint64(len(set)))
		h.Write(buf[:])
		for _, ex := range set {
			binary.LittleEndian.PutUint64(buf[:], uint64(len(ex.IDs)))
			h.Write(buf[:])
			_ = binary.Write(h, binary.LittleEndian, ex.IDs)
			_ = binary.Write(h, binary.LittleEndian, ex.Labels)
		}
	}
	return dataFingerprint(hex.EncodeToString(h.Sum(nil))[:16])
}
