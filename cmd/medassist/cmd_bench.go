package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/medassist/medassist/engine"
	"github.com/medassist/medassist/generation"
	"github.com/medassist/medassist/internal/config"
	"github.com/medassist/medassist/model"
)

// benchConfig is the configuration of `medassist bench`.
type benchConfig struct {
	Model        string    `koanf:"model" help:"exported model dir (model.onnx)"`
	PromptTokens int       `koanf:"prompt-tokens" help:"prompt length in tokens"`
	NewTokens    int       `koanf:"new-tokens" help:"tokens generated per run (greedy, EOS ignored)"`
	Runs         int       `koanf:"runs" help:"measured runs after one warm-up; medians are reported"`
	JSON         bool      `koanf:"json" help:"print one JSON object"`
	Profile      string    `koanf:"ort-profile" help:"write an ONNX Runtime per-operator profile to files starting with this path"`
	ORT          ortConfig `koanf:",squash"`
}

func defaultBenchConfig() benchConfig {
	return benchConfig{PromptTokens: 128, NewTokens: 64, Runs: 3, ORT: defaultORTConfig()}
}

// Validate names every bad field.
func (c benchConfig) Validate() error {
	return config.Join(
		config.Check(c.Model != "", "model", c.Model, "an exported model dir (model.onnx)"),
		config.Check(c.PromptTokens >= 1, "prompt-tokens", c.PromptTokens, ">= 1"),
		config.Check(c.NewTokens >= 2, "new-tokens", c.NewTokens, ">= 2 (the first comes from the prefill)"),
		config.Check(c.Runs >= 1, "runs", c.Runs, ">= 1"),
		c.ORT.validate(),
	)
}

func init() {
	register(&command{
		name:    "bench",
		summary: "prefill and decode speed, time to first token and peak memory of an exported model (batch 1)",
		usage:   "--model DIR [--prompt-tokens N] [--new-tokens M] [--runs R] [--json]",
		flags:   structFlags(defaultBenchConfig()),
		run: flagsOnly("bench", "", defaultBenchConfig, func(ctx context.Context, env *cmdEnv, cfg benchConfig) error {
			rep, err := runBench(ctx, cfg, env)
			if err != nil {
				return err
			}
			if cfg.JSON {
				return json.NewEncoder(env.stdout).Encode(rep)
			}
			return rep.print(env.stdout)
		}),
	})
}

// benchReport is what `medassist bench --json` prints.
type benchReport struct {
	Model        string `json:"model"`
	Device       string `json:"device"`
	KVCache      string `json:"kv_cache"`
	Threads      int    `json:"threads"`
	Spinning     bool   `json:"allow_spinning"`
	KVDType      string `json:"kv_dtype"`
	PromptTokens int    `json:"prompt_tokens"`
	NewTokens    int    `json:"new_tokens"`
	Runs         int    `json:"runs"`

	PrefillTokensPerS float64 `json:"prefill_tokens_per_s"` // prompt tokens ÷ time to first token
	DecodeTokensPerS  float64 `json:"decode_tokens_per_s"`  // tokens after the first ÷ their time
	TTFTMs            float64 `json:"ttft_ms"`
	DecodeMsPerToken  float64 `json:"decode_ms_per_token"`
	LoadS             float64 `json:"load_s"`

	// Weights on disk (model.onnx and its external data), and what one decode step must read of
	// them: everything but the embedding table, of which a step gathers one row.
	WeightBytes         int64   `json:"weight_bytes"`
	WeightBytesPerToken int64   `json:"weight_bytes_per_token"`
	PeakRSSBytes        int64   `json:"peak_rss_bytes"`
	PeakRSSOverWeights  float64 `json:"peak_rss_over_weights"`
	RSSAfterLoadBytes   int64   `json:"rss_after_load_bytes"`

	RunDecodeTokensPerS []float64 `json:"run_decode_tokens_per_s"`
	RunTTFTMs           []float64 `json:"run_ttft_ms"`
}

func runBench(ctx context.Context, cfg benchConfig, env *cmdEnv) (*benchReport, error) {
	mc, err := model.LoadConfig(cfg.Model)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	ecfg := cfg.ORT.engineConfig(cfg.Model)
	ecfg.Profile = cfg.Profile
	e, err := engine.Open(ecfg, env.log)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	info := e.Info()
	rep := &benchReport{Model: cfg.Model, Device: info.Device, Threads: info.IntraOpThreads, Spinning: cfg.ORT.Spin, KVDType: info.KVDType,
		PromptTokens: cfg.PromptTokens, NewTokens: cfg.NewTokens, Runs: cfg.Runs, LoadS: time.Since(start).Seconds()}
	rep.RSSAfterLoadBytes, _ = procStatusBytes("VmRSS")
	if rep.WeightBytes, err = modelBytes(cfg.Model); err != nil {
		return nil, err
	}
	embedBytes := int64(mc.VocabSize) * int64(mc.HiddenSize) * 4
	if info.KVDType == "float16" {
		embedBytes /= 2
	}
	rep.WeightBytesPerToken = rep.WeightBytes - embedBytes

	req := generation.Request{PromptIDs: benchPrompt(mc, cfg.PromptTokens), MaxNewTokens: cfg.NewTokens} // no stop ids: always M tokens
	if cfg.PromptTokens+cfg.NewTokens > e.MaxPositions() {
		return nil, usageError{fmt.Sprintf("prompt-tokens + new-tokens = %d exceeds the model's %d positions", cfg.PromptTokens+cfg.NewTokens, e.MaxPositions())}
	}
	warm := req
	warm.MaxNewTokens = 4
	if _, err := e.Generate(ctx, warm, nil); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	var ttft, decode []float64
	for run := range cfg.Runs {
		res, err := e.Generate(ctx, req, nil)
		if err != nil {
			return nil, err
		}
		rate := float64(len(res.IDs)-1) / (res.Duration - res.TTFT).Seconds()
		ttft = append(ttft, float64(res.TTFT.Microseconds())/1000)
		decode = append(decode, rate)
		env.log.Debug("bench run", "run", run, "ttft_ms", ttft[run], "decode_tokens_per_s", rate)
	}
	rep.RunTTFTMs, rep.RunDecodeTokensPerS = ttft, decode
	rep.TTFTMs = median(ttft)
	rep.DecodeTokensPerS = median(decode)
	rep.DecodeMsPerToken = 1000 / rep.DecodeTokensPerS
	rep.PrefillTokensPerS = float64(cfg.PromptTokens) / (rep.TTFTMs / 1000)
	rep.PeakRSSBytes, _ = procStatusBytes("VmHWM")
	rep.PeakRSSOverWeights = float64(rep.PeakRSSBytes) / float64(rep.WeightBytes)
	return rep, nil
}

// benchPrompt is BOS and then a fixed pseudo-random walk over ordinary token ids (speed does not
// depend on the text, and the same ids every run keep runs comparable).
func benchPrompt(mc *model.Config, n int) []int {
	bos := 1
	if mc.BOSTokenID != nil {
		bos = *mc.BOSTokenID
	}
	ids := []int{bos}
	x := uint32(12345)
	for len(ids) < n {
		x = x*1664525 + 1013904223
		ids = append(ids, 3+int(x>>8)%(mc.VocabSize-3))
	}
	return ids[:n]
}

// modelBytes is the size of model.onnx and its external data files.
func modelBytes(dir string) (int64, error) {
	matches, err := filepath.Glob(filepath.Join(dir, engine.ModelFile+"*"))
	if err != nil || len(matches) == 0 {
		return 0, fmt.Errorf("%s: no %s", dir, engine.ModelFile)
	}
	var total int64
	for _, m := range matches {
		st, err := os.Stat(m)
		if err != nil {
			return 0, err
		}
		total += st.Size()
	}
	return total, nil
}

// procStatusBytes reads a "kB" field of /proc/self/status (VmRSS, VmHWM = peak resident set).
func procStatusBytes(field string) (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		return kb * 1024, err
	}
	return 0, fmt.Errorf("/proc/self/status has no %s", field)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r *benchReport) print(w io.Writer) error {
	gib := func(b int64) string { return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30)) }
	_, err := fmt.Fprintf(w, `model        %s (%s, %s KV cache on the %s, %d threads)
prompt       %d tokens, %d new tokens, median of %d runs
prefill      %.1f tokens/s (time to first token %.1f ms)
decode       %.2f tokens/s (%.1f ms/token)
weights      %s on disk, %s read per decode step
peak RSS     %s (%.2f× the weights; %s after load)
load         %.1f s
`, r.Model, r.Device, r.KVDType, r.KVCache, r.Threads, r.PromptTokens, r.NewTokens, r.Runs,
		r.PrefillTokensPerS, r.TTFTMs, r.DecodeTokensPerS, r.DecodeMsPerToken,
		gib(r.WeightBytes), gib(r.WeightBytesPerToken), gib(r.PeakRSSBytes), r.PeakRSSOverWeights, gib(r.RSSAfterLoadBytes), r.LoadS)
	return err
}
