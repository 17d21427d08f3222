// Package serve is the HTTP front of medassist: an OpenAI-style chat API with streaming, a chat page,
// health and Prometheus metrics, in front of a shared generation engine and the guard.
package serve

import (
	"slices"
	"time"

	"github.com/medassist/medassist/export"
	"github.com/medassist/medassist/guard"
	"github.com/medassist/medassist/internal/config"
)

// Config is everything `medassist serve` can be told. Keys are the flag names.
type Config struct {
	Addr            string        `koanf:"addr"`
	Model           string        `koanf:"model"`      // an exported dir, served as is
	ModelID         string        `koanf:"model-id"`   // or: a Hub id, a local HF or exported folder, a GGUF file (see Loader)
	Revision        string        `koanf:"revision"`   // branch, tag or commit of a Hub model id
	ModelDir        string        `koanf:"model-dir"`  // where model-id is exported; "" → the user cache dir
	Quantize        string        `koanf:"quantize"`   // weights of that export: none, int8, int4
	ModelName       string        `koanf:"model-name"` // id shown by /v1/models; default: the model dir's base name
	MaxBodyBytes    int64         `koanf:"max-body-bytes"`
	MaxConcurrent   int           `koanf:"max-concurrent"` // sequences generating at once (each has its own KV cache)
	QueueSize       int           `koanf:"queue-size"`     // requests waiting for a slot before 429
	RequestTimeout  time.Duration `koanf:"request-timeout"`
	ShutdownTimeout time.Duration `koanf:"shutdown-timeout"`
	DefaultMaxTok   int           `koanf:"default-max-tokens"`
	MaxTokensLimit  int           `koanf:"max-tokens-limit"`
	Temperature     float64       `koanf:"temperature"` // default when a request sets none
	TopP            float64       `koanf:"top-p"`
	TopK            int           `koanf:"top-k"`
	RepetitionPen   float64       `koanf:"repetition-penalty"`
	SystemPrompt    string        `koanf:"system-prompt"`  // "" → the built-in system prompt
	LogContent      bool          `koanf:"log-content"`    // log message contents (health data: off by default)
	Device          string        `koanf:"device"`         // auto|cpu|cuda
	ORTLib          string        `koanf:"ort-lib"`        // ONNX Runtime shared library; "" → MEDASSIST_ORT_LIB or .cache/native
	Threads         int           `koanf:"threads"`        // intra-op threads per request; 0 → cores / max-concurrent
	AllowSpinning   bool          `koanf:"allow-spinning"` // ONNX Runtime threads spin while waiting (off: sequences share the cores)
	Guard           guard.Config  `koanf:"guard"`
}

// DefaultConfig returns defaults sane for a Hugging Face Space: port 7860, CPU-friendly limits.
func DefaultConfig() Config {
	return Config{
		Addr:            "0.0.0.0:7860",
		Revision:        "main",
		Quantize:        "int4",
		MaxBodyBytes:    1 << 20,
		MaxConcurrent:   2,
		QueueSize:       16,
		RequestTimeout:  5 * time.Minute,
		ShutdownTimeout: 30 * time.Second,
		DefaultMaxTok:   256,
		MaxTokensLimit:  1024,
		Temperature:     0.7,
		TopP:            0.9,
		TopK:            40,
		RepetitionPen:   1.1,
		Device:          "auto",
		Guard:           guard.DefaultConfig(),
	}
}

// Validate names each bad field and its allowed range.
func (c *Config) Validate() error {
	return config.Join(
		config.Check(c.Addr != "", "addr", c.Addr, "a HOST:PORT address"),
		config.Check(c.Revision != "", "revision", c.Revision, "a branch, tag or commit hash"),
		config.Check(slices.Contains([]export.Quantization{export.QuantNone, export.QuantInt8, export.QuantInt4}, export.Quantization(c.Quantize)), "quantize", c.Quantize, "one of none, int8, int4"),
		config.Check(c.MaxBodyBytes >= 1024, "max-body-bytes", c.MaxBodyBytes, ">= 1024"),
		config.Check(c.MaxConcurrent >= 1 && c.MaxConcurrent <= 64, "max-concurrent", c.MaxConcurrent, "between 1 and 64"),
		config.Check(c.QueueSize >= 0 && c.QueueSize <= 10000, "queue-size", c.QueueSize, "between 0 and 10000"),
		config.Check(c.RequestTimeout > 0, "request-timeout", c.RequestTimeout, "> 0"),
		config.Check(c.ShutdownTimeout > 0, "shutdown-timeout", c.ShutdownTimeout, "> 0"),
		config.Check(c.MaxTokensLimit >= 1, "max-tokens-limit", c.MaxTokensLimit, ">= 1"),
		config.Check(c.DefaultMaxTok >= 1 && c.DefaultMaxTok <= c.MaxTokensLimit, "default-max-tokens", c.DefaultMaxTok, "between 1 and max-tokens-limit"),
		config.Check(c.Temperature >= 0 && c.Temperature <= 2, "temperature", c.Temperature, "between 0 and 2"),
		config.Check(c.TopP > 0 && c.TopP <= 1, "top-p", c.TopP, "in (0, 1]"),
		config.Check(c.TopK >= 0, "top-k", c.TopK, ">= 0"),
		config.Check(c.RepetitionPen >= 1 && c.RepetitionPen <= 2, "repetition-penalty", c.RepetitionPen, "between 1 and 2"),
		config.Check(c.Device == "auto" || c.Device == "cpu" || c.Device == "cuda", "device", c.Device, "one of auto, cpu, cuda"),
		config.Check(c.Threads >= 0, "threads", c.Threads, ">= 0"),
		c.Guard.Validate(),
	)
}
