package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/medassist/medassist/guard"
	"github.com/spf13/pflag"
)

// guardCmdConfig is the guard's configuration plus the command's own output switch.
type guardCmdConfig struct {
	guard.Config `koanf:",squash"`
	Details      bool `koanf:"details"`
}

// maxGuardLine bounds one input line; longer lines get an invalid verdict.
const maxGuardLine = 4 << 20

func init() {
	register(&command{
		name:    "guard",
		summary: "check messages: allow, emergency, out_of_domain or invalid (JSON Lines in and out)",
		usage:   "< messages.jsonl",
		flags: func(fs *pflag.FlagSet) {
			d := guard.DefaultConfig()
			fs.Int("max-chars", d.MaxChars, "longest message accepted, in characters")
			fs.StringToString("locales", d.Locales, "detected language → locale for emergency numbers (en=en-US,es=es-ES,...)")
			fs.StringToString("emergency-numbers", d.EmergencyNumbers, "region → emergency number (US=911,GB=999,default=112,...)")
			fs.StringToString("crisis-lines", d.CrisisLines, "region → suicide and crisis line")
			fs.String("lexicon-dir", "", "folder whose emergency.txt, cues.txt, injection.txt, medical_terms.txt, messages.json replace the embedded ones")
			fs.String("examples-dir", "", "folder whose medical.txt, non_medical.txt, emergency.txt replace the embedded training examples")
			fs.Float64("threshold", 0, "out-of-domain probability at which messages are refused (0: calibrated by cross-validation)")
			fs.String("disclaimer", d.Disclaimer, "disclaimer appended to allowed answers")
			fs.String("seek-care", d.SeekCare, "\"When to seek care\" text used when an answer has none")
			fs.Bool("details", false, "also print message, locale, score and code")
		},
		run: runGuard,
	})
}

// guardIn is one input line.
type guardIn struct {
	Text *string `json:"text"`
}

// guardOut is one output line; the detail fields only with --details.
type guardOut struct {
	Verdict string   `json:"verdict"`
	Reason  string   `json:"reason"`
	Message string   `json:"message,omitempty"`
	Locale  string   `json:"locale,omitempty"`
	Score   *float64 `json:"score,omitempty"`
	Code    string   `json:"code,omitempty"`
}

func runGuard(ctx context.Context, env *cmdEnv, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Sprintf("guard reads JSON Lines from stdin and takes no arguments (got %q)", args)}
	}
	var cfg guardCmdConfig
	if err := env.loadConfig(&cfg, "guard"); err != nil {
		return err
	}
	g, err := guard.New(cfg.Config)
	if err != nil {
		return err
	}
	cal, bs := g.Calibration(), g.Backstop()
	env.log.Debug("guard ready", "threshold", g.Threshold(), "examples", cal.Examples, "cv_auc", cal.AUC,
		"cv_allowed_in_domain", cal.AllowedInDomain, "cv_refused_other", cal.RefusedOther,
		"backstop_threshold", bs.Threshold, "backstop_cv_recall", bs.Recall, "backstop_cv_false_alarms", bs.FalseAlarms)
	out := bufio.NewWriter(env.stdout)
	defer out.Flush()
	return guardLines(ctx, g, env.stdin, out, cfg.Details)
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
		return invalidLine("malformed", fmt.Sprintf("line %d is not a JSON object with a string \"text\": %v", n, err))
	}
	if dec.More() {
		return invalidLine("malformed", fmt.Sprintf("line %d holds more than one JSON value", n))
	}
	if in.Text == nil {
		return invalidLine("malformed", fmt.Sprintf("line %d has no \"text\" field", n))
	}
	v := g.Check(*in.Text)
	o := guardOut{Verdict: v.Kind.String(), Reason: v.Reason}
	if details {
		score := v.Score
		o.Message, o.Locale, o.Score, o.Code = v.Message, v.Locale, &score, v.Code
	}
	return o
}

func invalidLine(code, detail string) guardOut {
	return guardOut{Verdict: guard.Invalid.String(), Reason: code + ": " + detail}
}
