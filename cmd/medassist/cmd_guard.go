package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"github.com/medassist/medassist/guard"
	"github.com/medassist/medassist/model"
	"github.com/spf13/pflag"
)

// guardCmdConfig is the guard's configuration plus the command's own switches.
type guardCmdConfig struct {
	guard.Config `koanf:",squash"`
	Details      bool   `koanf:"details"`
	Data         string `koanf:"data"`   // guard eval: the labelled file
	Misses       bool   `koanf:"misses"` // guard eval: list the items the guard got wrong
	Corpus       string `koanf:"corpus"` // guard train: the corpus folder
	Out          string `koanf:"out"`    // guard train: the head file to write
}

// maxGuardLine bounds one input line; longer lines get an invalid verdict.
const maxGuardLine = 4 << 20

func init() {
	register(&command{
		name:    "guard",
		summary: "check messages or conversations: allow, emergency, out_of_domain or invalid (JSON Lines in and out); guard eval --data FILE; guard train",
		usage:   "[eval --data FILE | train [--corpus DIR] [--out FILE]] < messages.jsonl",
		flags: func(fs *pflag.FlagSet) {
			d := guard.DefaultConfig()
			fs.Int("max-chars", d.MaxChars, "longest message accepted, in characters")
			fs.StringToString("locales", d.Locales, "detected language → locale for emergency numbers (en=en-US,es=es-ES,...)")
			fs.StringToString("emergency-numbers", d.EmergencyNumbers, "region → emergency number (US=911,GB=999,default=112,...)")
			fs.StringToString("crisis-lines", d.CrisisLines, "region → suicide and crisis line")
			fs.String("lexicon-dir", "", "folder whose emergency.txt, cues.txt, injection.txt, messages.json replace the embedded ones")
			fs.String("encoder", d.Encoder, "sentence encoder: a sentence-transformers folder or a Hub repo id in the Hugging Face cache")
			fs.Int("encoder-threads", 0, "ONNX Runtime threads for the encoder (0: one per core)")
			fs.String("head", "", "head file from `guard train` replacing the embedded one")
			fs.String("client-system", d.ClientSystem, "client system/developer messages: append (screened) or reject")
			fs.String("data", "", "guard eval: labelled JSON Lines (text or messages, and label)")
			fs.Bool("misses", false, "guard eval: also list the items the guard got wrong")
			fs.String("corpus", "assets/guard/corpus", "guard train: folder of the training corpus (*.jsonl)")
			fs.String("out", "assets/guard/head.bin", "guard train: head file to write")
			fs.String("disclaimer", d.Disclaimer, "disclaimer appended to allowed answers")
			fs.String("seek-care", d.SeekCare, "\"When to seek care\" text used when an answer has none")
			fs.Bool("details", false, "also print message, locale, score and code")
		},
		run: runGuard,
	})
}

// guardIn is one input line: a message or a conversation.
type guardIn struct {
	Text     *string `json:"text"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
}

// guardOut is one output line; the detail fields only with --details.
type guardOut struct {
	Verdict  string   `json:"verdict"`
	Reason   string   `json:"reason"`
	Message  string   `json:"message,omitempty"`
	Locale   string   `json:"locale,omitempty"`
	Score    *float64 `json:"score,omitempty"`
	Code     string   `json:"code,omitempty"`
	Guidance string   `json:"guidance,omitempty"`
}

func runGuard(ctx context.Context, env *cmdEnv, args []string) error {
	sub := ""
	if len(args) > 0 {
		sub = args[0]
	}
	if len(args) > 1 || (sub != "" && sub != "eval" && sub != "train") {
		return usageError{fmt.Sprintf("guard takes no argument (check stdin), eval or train; got %q", args)}
	}
	var cfg guardCmdConfig
	if err := env.loadConfig(&cfg, "guard"); err != nil {
		return err
	}
	if sub == "train" {
		return runGuardTrain(env, cfg)
	}
	g, err := guard.New(cfg.Config)
	if err != nil {
		return err
	}
	defer g.Close()
	h := g.Head()
	env.log.Debug("guard ready", "emergency_threshold", h.EmergencyThreshold, "off_topic_threshold", h.OffTopicThreshold)
	out := bufio.NewWriter(env.stdout)
	defer out.Flush()
	if sub == "eval" {
		return runGuardEval(g, cfg, out)
	}
	return guardLines(ctx, g, env.stdin, out, cfg.Details)
}

// runGuardEval prints per-class recall, the confusion matrix and latency on a labelled file.
func runGuardEval(g *guard.Guard, cfg guardCmdConfig, out io.Writer) error {
	if cfg.Data == "" {
		return usageError{"guard eval needs --data FILE (labelled JSON Lines)"}
	}
	items, err := guard.ReadItemsFile(cfg.Data)
	if err != nil {
		return err
	}
	r := g.Evaluate(items)
	fmt.Fprintf(out, "data: %s\n", cfg.Data)
	r.Write(out)
	if cfg.Misses {
		fmt.Fprintln(out, "\nmisses:")
		for _, m := range r.Misses {
			b, _ := json.Marshal(m.Item.Conversation())
			fmt.Fprintf(out, "%s -> %s (%s): %s\n", m.Item.Label, m.Predicted, m.Reason, b)
		}
	}
	return nil
}

// runGuardTrain trains the head on the corpus and writes it.
func runGuardTrain(env *cmdEnv, cfg guardCmdConfig) error {
	items, err := guard.LoadCorpus(cfg.Corpus)
	if err != nil {
		return err
	}
	enc, err := guard.OpenEncoder(cfg.Config)
	if err != nil {
		return err
	}
	defer enc.Close()
	dir, err := cfg.EncoderDir()
	if err != nil {
		return err
	}
	var emb guard.Embedder = enc
	cachePath, err := guard.DefaultCachePath(dir)
	if err == nil {
		cache, err := guard.NewEmbeddingCache(enc, cachePath)
		if err != nil {
			return err
		}
		defer func() {
			if err := cache.Save(); err != nil {
				env.log.Warn("embedding cache not saved", "path", cachePath, "err", err)
			}
		}()
		emb = cache
	}
	opt := guard.DefaultTrainOptions
	h, cv, err := guard.Train(emb, items, opt)
	if err != nil {
		return err
	}
	b, err := h.MarshalBinary()
	if err != nil {
		return err
	}
	if err := os.WriteFile(cfg.Out, b, 0o644); err != nil {
		return fmt.Errorf("guard train: %w", err)
	}
	fmt.Fprintf(env.stdout, "wrote %s (%d bytes, sha256 %x): %d training texts from %d corpus items; %d-fold cross-validation on them: emergency threshold %.4f, off-topic threshold %.2f, out-of-fold recall emergency %.3f, medical %.3f, nonmedical %.3f\n",
		cfg.Out, len(b), sha256.Sum256(b), cv.Examples, len(items), opt.Folds, cv.EmergencyThreshold, cv.OffTopicThreshold,
		cv.Recall[0], cv.Recall[1], cv.Recall[2])
	return nil
}

// guardLines answers every input line with exactly one output line; a line that is not a JSON object
// with a string "text" gets an invalid verdict saying why, and the command goes on.
func guardLines(ctx context.Context, g *guard.Guard, r io.Reader, w *bufio.Writer, details bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, tooLong, err := readLine(br, maxGuardLine)
		if err == io.EOF && line == nil {
			return nil
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("reading stdin: %w", err)
		}
		var o guardOut
		if tooLong {
			o = invalidLine("too_long", fmt.Sprintf("line %d is longer than %d bytes", n, maxGuardLine))
		} else {
			o = checkLine(g, line, n, details)
		}
		if err := enc.Encode(o); err != nil {
			return fmt.Errorf("writing stdout: %w", err)
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("writing stdout: %w", err)
		}
		if err == io.EOF {
			return nil
		}
	}
}

// readLine reads one line without its newline (and a trailing \r). Lines longer than max are
// drained and reported as tooLong. At the end of input it returns the last line (if any) with io.EOF.
func readLine(br *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > max {
			tooLong = true
		} else {
			buf = append(buf, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF && len(buf) == 0 && !tooLong {
			return nil, false, io.EOF
		}
		buf = bytes.TrimSuffix(buf, []byte("\n"))
		buf = bytes.TrimSuffix(buf, []byte("\r"))
		if buf == nil {
			buf = []byte{}
		}
		return buf, tooLong, err
	}
}

func checkLine(g *guard.Guard, line []byte, n int, details bool) guardOut {
	if !utf8.Valid(line) {
		return invalidLine("invalid_utf8", fmt.Sprintf("line %d is not valid UTF-8", n))
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return invalidLine("malformed", fmt.Sprintf("line %d is empty; want a JSON object like {\"text\": \"...\"}", n))
	}
	var in guardIn
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&in); err != nil {
		return invalidLine("malformed", fmt.Sprintf("line %d is not a JSON object with a string \"text\" or a \"messages\" list: %v", n, err))
	}
	if dec.More() {
		return invalidLine("malformed", fmt.Sprintf("line %d holds more than one JSON value", n))
	}
	var v guard.Verdict
	switch {
	case in.Text != nil && in.Messages != nil:
		return invalidLine("malformed", fmt.Sprintf("line %d has both \"text\" and \"messages\"; want one", n))
	case in.Text != nil:
		v = g.CheckText(*in.Text)
	case in.Messages != nil:
		conv := make([]model.Message, 0, len(in.Messages))
		for i, m := range in.Messages {
			text, err := guard.ContentText(m.Content)
			if err != nil {
				return invalidLine("malformed", fmt.Sprintf("line %d messages[%d]: %v", n, i, err))
			}
			conv = append(conv, model.Message{Role: m.Role, Content: text})
		}
		v = g.Check(conv)
	default:
		return invalidLine("malformed", fmt.Sprintf("line %d has neither \"text\" nor \"messages\"", n))
	}
	o := guardOut{Verdict: v.Kind.String(), Reason: v.Reason}
	if details {
		score := v.Score
		o.Message, o.Locale, o.Score, o.Code, o.Guidance = v.Message, v.Locale, &score, v.Code, v.Guidance
	}
	return o
}

func invalidLine(code, detail string) guardOut {
	return guardOut{Verdict: guard.Invalid.String(), Reason: code + ": " + detail}
}
