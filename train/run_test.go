package train

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/train/data"
)

// synthDataset builds a learnable toy task for the tiny test model (vocab 64): BOS, a "question" of
// random tokens, a separator, then the answer — the question reversed — and EOS. Only the answer
// and EOS are labelled. Every example fits in 32 tokens (one padded width).
func synthDataset(seed uint64, nTrain, nVal int) *data.Dataset {
	rng := rand.New(rand.NewPCG(seed, 7))
	mk := func() data.Example {
		n := 4 + rng.IntN(9)
		q := make([]int32, n)
		for i := range q {
			q[i] = int32(4 + rng.IntN(60))
		}
		ids := append([]int32{1}, q...)
		ids = append(ids, 3)
		labels := make([]int32, len(ids))
		for i := range labels {
			labels[i] = data.IgnoreIndex
		}
		for i := n - 1; i >= 0; i-- {
			ids = append(ids, q[i])
			labels = append(labels, q[i])
		}
		ids = append(ids, 2)
		labels = append(labels, 2)
		return data.Example{IDs: ids, Labels: labels}
	}
	ds := &data.Dataset{}
	for range nTrain {
		ds.Train = append(ds.Train, mk())
	}
	for range nVal {
		ds.Val = append(ds.Val, mk())
	}
	return ds
}

func tinyConfig(out string) Config {
	cfg := DefaultConfig()
	cfg.Base = trainTestdata("tiny")
	cfg.Out = out
	cfg.Rank, cfg.Alpha, cfg.Dropout = 4, 8, 0.1
	cfg.LR, cfg.WarmupSteps, cfg.WeightDecay = 1e-2, 2, 0.01
	cfg.BatchSize, cfg.GradAccum, cfg.Epochs = 2, 2, 2
	cfg.CheckpointEvery = 3
	cfg.Progress = io.Discard
	cfg.Backend = BackendGo // the same backend whatever make setup installed
	return cfg
}

func TestConfigValidateNamesBadFields(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Base, cfg.Out = "b", "o"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	cfg.Rank, cfg.Schedule, cfg.Targets, cfg.Backend = 0, "step", []string{"q_proj", "q_proj"}, "xla:relative.so"
	err := cfg.Validate()
	for _, field := range []string{"rank", "schedule", "targets", "backend"} {
		if err == nil || !strings.Contains(err.Error(), field+" =") {
			t.Errorf("error %v does not name %s", err, field)
		}
	}
}

// TestRunTrainsAndWritesOutputs trains the tiny model on the toy task and checks that validation
// perplexity falls, that the outputs are complete, and that the PEFT adapter it wrote scores the
// same perplexity when folded into the base weights.
func TestRunTrainsAndWritesOutputs(t *testing.T) {
	out := t.TempDir()
	cfg := tinyConfig(out)
	cfg.Epochs = 3
	ds := synthDataset(1, 96, 16)
	res, err := Run(context.Background(), cfg, ds, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("val perplexity %.3f → %v (best epoch %d), %d steps, %.0f tokens/s, %v",
		res.BaseValPerplexity, res.ValPerplexity, res.Best+1, res.Steps, res.TokensPerSecond, res.WallTime.Round(time.Millisecond))
	if len(res.ValPerplexity) != cfg.Epochs || res.Steps != cfg.Epochs*24 {
		t.Fatalf("result %+v: want %d epochs of 24 steps", res, cfg.Epochs)
	}
	if last := res.ValPerplexity[len(res.ValPerplexity)-1]; last > 0.8*res.BaseValPerplexity {
		t.Errorf("validation perplexity %.3f → %.3f: training did not learn the toy task", res.BaseValPerplexity, last)
	}

	ac, err := model.ReadAdapterConfig(filepath.Join(out, AdapterDir))
	if err != nil {
		t.Fatal(err)
	}
	if ac.R != 4 || ac.LoraAlpha != 8 || len(ac.TargetModules) != 7 || ac.PeftType != "LORA" || ac.TaskType != "CAUSAL_LM" {
		t.Errorf("adapter config %+v", ac)
	}
	w, err := model.OpenSafetensors(filepath.Join(out, AdapterDir, model.AdapterWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got := len(w.Names()); got != 2*7*2 {
		t.Errorf("adapter has %d tensors, want 28", got)
	}
	if info, ok := w.Info(model.LoraB(1, model.DownProj)); !ok || !slices.Equal(info.Shape, []int{32, 4}) {
		t.Errorf("%s: %+v", model.LoraB(1, model.DownProj), info)
	}

	rows := readMetrics(t, filepath.Join(out, MetricsFile))
	if len(rows) != res.Steps {
		t.Errorf("metrics.csv has %d rows, want %d", len(rows), res.Steps)
	}
	if rows[len(rows)-1][6] == "" || rows[0][6] != "" {
		t.Errorf("val_perplexity column: first %q, last %q", rows[0][6], rows[len(rows)-1][6])
	}

	ppl, err := Perplexity(context.Background(), cfg.Base, filepath.Join(out, AdapterDir), ds.Val, "")
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(ppl-res.BestPerplexity) > 1e-4*res.BestPerplexity {
		t.Errorf("perplexity of the written adapter %.6f, training measured %.6f", ppl, res.BestPerplexity)
	}
	base, err := Perplexity(context.Background(), cfg.Base, "", ds.Val, "")
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(base-res.BaseValPerplexity) > 1e-4*base {
		t.Errorf("base perplexity %.6f, training measured %.6f", base, res.BaseValPerplexity)
	}
}

func readMetrics(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	if sc.Text() != metricsHeader {
		t.Fatalf("metrics header %q", sc.Text())
	}
	var rows [][]string
	for sc.Scan() {
		rows = append(rows, strings.Split(sc.Text(), ","))
	}
	return rows
}

// The resume test runs training in a child process (this test binary, re-executed), kills it with
// SIGKILL after a mid-epoch checkpoint, runs the same training again to the end, and compares the
// outcome with an uninterrupted run.
const helperEnv = "MEDASSIST_TRAIN_HELPER_OUT"

func resumeJob(out string) (Config, *data.Dataset) {
	cfg := tinyConfig(out)
	return cfg, synthDataset(2, 400, 16)
}

func TestTrainHelperProcess(t *testing.T) {
	out := os.Getenv(helperEnv)
	if out == "" {
		t.Skip("helper process for TestResumeAfterKill")
	}
	cfg, ds := resumeJob(out)
	if _, err := Run(context.Background(), cfg, ds, nil); err != nil {
		t.Fatal(err)
	}
}

func startHelper(t *testing.T, out string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestTrainHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+out)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestResumeAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three trainings")
	}
	out := t.TempDir()
	ckDir := filepath.Join(out, checkpointsDir)

	// 1. Start, wait for the first checkpoint, kill -9.
	child := startHelper(t, out)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if latest, _ := latestCheckpoint(ckDir); latest != "" {
			break
		}
		if time.Now().After(deadline) {
			child.Process.Kill()
			t.Fatal("no checkpoint after 2 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := child.Wait()
	if ws, ok := child.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed by SIGKILL (it finished first?): %v", err)
	}
	latest, err := latestCheckpoint(ckDir)
	if err != nil || latest == "" {
		t.Fatalf("no checkpoint survived the kill: %v", err)
	}
	var st trainState
	b, _ := os.ReadFile(filepath.Join(latest, stateJSONFile))
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	cfg, ds := resumeJob(out)
	total := ((len(ds.Train)+cfg.BatchSize-1)/cfg.BatchSize + cfg.GradAccum - 1) / cfg.GradAccum * cfg.Epochs
	t.Logf("killed; newest checkpoint: step %d of %d (epoch %d, step %d in it)", st.Step, total, st.Epoch+1, st.EpochStep)
	if st.EpochStep == 0 || st.Step >= total {
		t.Fatalf("the kill did not land mid-epoch (checkpoint at epoch %d step %d)", st.Epoch+1, st.EpochStep)
	}

	// 2. The same command again: resumes and finishes.
	child = startHelper(t, out)
	if err := child.Wait(); err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	rows := readMetrics(t, filepath.Join(out, MetricsFile))
	for i, row := range rows {
		if row[0] != strconv.Itoa(i+1) {
			t.Fatalf("metrics.csv row %d is step %s: steps lost or repeated across the resume", i+1, row[0])
		}
	}

	// 3. Uninterrupted, in this process.
	ref := t.TempDir()
	cfgRef, dsRef := resumeJob(ref)
	res, err := Run(context.Background(), cfgRef, dsRef, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != total || len(rows) != total {
		t.Fatalf("reference ran %d steps, resumed metrics have %d rows, want %d", res.Steps, len(rows), total)
	}
	for _, pair := range [][2]string{
		{filepath.Join(out, AdapterDir, model.AdapterWeightsFile), filepath.Join(ref, AdapterDir, model.AdapterWeightsFile)},
		{lastStateFile(t, out), lastStateFile(t, ref)},
	} {
		worst, n := compareSafetensors(t, pair[0], pair[1])
		t.Logf("%s: max |Δ| resumed vs uninterrupted = %g over %d tensors", filepath.Base(pair[0]), worst, n)
		if worst > 1e-6 {
			t.Errorf("%s differs from the uninterrupted run by %g", pair[0], worst)
		}
	}
}

func lastStateFile(t *testing.T, out string) string {
	t.Helper()
	latest, err := latestCheckpoint(filepath.Join(out, checkpointsDir))
	if err != nil || latest == "" {
		t.Fatalf("no checkpoint in %s: %v", out, err)
	}
	return filepath.Join(latest, stateTensorsFile)
}

// compareSafetensors returns the largest absolute difference between same-named float tensors of
// two files (integer tensors, like the random-number state, must match exactly) and the count.
func compareSafetensors(t *testing.T, pathA, pathB string) (float64, int) {
	t.Helper()
	a, err := model.OpenSafetensors(pathA)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := model.OpenSafetensors(pathB)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if len(a.Names()) != len(b.Names()) {
		t.Fatalf("%s has %d tensors, %s %d", pathA, len(a.Names()), pathB, len(b.Names()))
	}
	worst := 0.0
	for _, name := range b.Names() {
		ia, ok := a.Info(name)
		ib, _ := b.Info(name)
		if !ok || ia.DType != ib.DType || !slices.Equal(ia.Shape, ib.Shape) {
			t.Fatalf("%s: %s is %+v in one file, %+v in the other", filepath.Base(pathA), name, ia, ib)
		}
		if !ia.DType.IsFloat() {
			ra, _ := a.Bytes(name)
			rb, _ := b.Bytes(name)
			if string(ra) != string(rb) {
				t.Errorf("%s differs", name)
			}
			continue
		}
		fa, _ := a.Float32(name)
		fb, _ := b.Float32(name)
		worst = math.Max(worst, testutil.MaxAbsDiff(fa, fb))
	}
	return worst, len(b.Names())
}
