package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/pflag"

	"github.com/medassist/medassist/internal/config"
	"github.com/medassist/medassist/tokenizer"
)

// tokenizeConfig configures `medassist tokenize`.
type tokenizeConfig struct {
	Model     string `koanf:"model"`
	NoSpecial bool   `koanf:"no-special"`
}

// Validate checks the fields.
func (c tokenizeConfig) Validate() error {
	return config.Join(config.Check(c.Model != "", "model", c.Model, "a model dir holding tokenizer.json (--model DIR)"))
}

func init() {
	register(&command{
		name:    "tokenize",
		summary: "encode JSON Lines strings from stdin into token ids, exactly as HF tokenizers does",
		usage:   "--model DIR [--no-special]",
		flags: func(fs *pflag.FlagSet) {
			fs.String("model", "", "model dir holding tokenizer.json (and tokenizer_config.json)")
			fs.Bool("no-special", false, "encode with add_special_tokens=false (no BOS)")
		},
		run: flagsOnly("tokenize", ": pass strings on stdin, one JSON string per line", zero[tokenizeConfig], func(ctx context.Context, env *cmdEnv, cfg tokenizeConfig) error {
			tok, err := tokenizer.Load(cfg.Model)
			if err != nil {
				return err
			}
			defer tok.Close()
			n, err := tokenizeLines(ctx, tok, !cfg.NoSpecial, env.stdin, env.stdout)
			env.log.Debug("tokenize done", "lines", n)
			return err
		}),
	})
}

// tokenizeLines reads one JSON string per line from r and writes its ids as a JSON array line
// to w, a line at a time: memory stays flat however long the input. Output is flushed whenever
// the input has no more lines ready, so the command also answers interactively line by line.
func tokenizeLines(ctx context.Context, tok *tokenizer.Tokenizer, addSpecial bool, r io.Reader, w io.Writer) (int, error) {
	in := bufio.NewReaderSize(r, 1<<16)
	out := bufio.NewWriterSize(w, 1<<16)
	var buf []byte
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return n, errors.Join(err, out.Flush())
		}
		if in.Buffered() == 0 {
			if err := out.Flush(); err != nil {
				return n, fmt.Errorf("write stdout: %w", err)
			}
		}
		line, err := in.ReadBytes('\n')
		if len(line) == 0 && err == io.EOF {
			return n, out.Flush()
		}
		if err != nil && err != io.EOF {
			return n, errors.Join(fmt.Errorf("read stdin: %w", err), out.Flush())
		}
		n++
		text, perr := parseLine(line)
		if perr != nil {
			return n, errors.Join(fmt.Errorf("stdin line %d: %w", n, perr), out.Flush())
		}
		buf = appendIDs(buf[:0], tok.Encode(text, addSpecial))
		if _, werr := out.Write(buf); werr != nil {
			return n, fmt.Errorf("write stdout: %w", werr)
		}
	}
}

// parseLine decodes one JSON Lines entry that must be a JSON string.
func parseLine(line []byte) (string, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return "", errors.New(`empty line: each line must be one JSON string, such as "text"`)
	}
	if line[0] != '"' {
		return "", fmt.Errorf("want one JSON string per line, such as \"text\"; got %.40s", line)
	}
	var s string
	if err := json.Unmarshal(line, &s); err != nil {
		return "", fmt.Errorf("invalid JSON string: %w", err)
	}
	return s, nil
}

// appendIDs writes ids as a JSON array and a newline.
func appendIDs(b []byte, ids []int) []byte {
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(id), 10)
	}
	return append(b, ']', '\n')
}
