package data

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// Pair is one flashcard: a question and its answer.
type Pair struct {
	Question string
	Answer   string
}

// Field names of an instruction data set row (medalpaca, Alpaca): the question is in input, the
// answer in output; instruction is a task description shared by all rows and is not used.
const (
	fieldInstruction = "instruction"
	fieldInput       = "input"
	fieldOutput      = "output"
)

// row is one record as stored; absent and null fields read as "".
type row struct {
	Instruction string `json:"instruction"`
	Input       string `json:"input"`
	Output      string `json:"output"`
}

func (r row) pair() Pair { return Pair{Question: r.Input, Answer: r.Output} }

// Format is a data file's encoding.
type Format string

const (
	FormatJSON    Format = "json"    // one JSON array of objects
	FormatJSONL   Format = "jsonl"   // one JSON object per line
	FormatParquet Format = "parquet" // Apache Parquet, as the Hugging Face Hub serves data sets
)

var parquetMagic = []byte("PAR1")

// DetectFormat decides a file's format from its first bytes (Parquet magic, or a JSON array's '['),
// falling back to the extension; anything else is read as JSON Lines.
func DetectFormat(path string) (Format, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read data: %w", err)
	}
	defer f.Close()
	head := make([]byte, 512)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read data %s: %w", path, err)
	}
	head = head[:n]
	if bytes.HasPrefix(head, parquetMagic) {
		return FormatParquet, nil
	}
	if t := bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")), " \t\r\n"); len(t) > 0 && t[0] == '[' {
		return FormatJSON, nil
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".parquet":
		return FormatParquet, nil
	case ".json":
		return FormatJSON, nil
	}
	return FormatJSONL, nil
}

// FileSHA256 is the hex SHA-256 of the file at path: what a training run records of its data, so
// that an evaluation can tell the same flashcards under another path from other flashcards.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ReadPairs reads every row of a flashcard file (JSON array, JSON Lines or Parquet with the fields
// instruction, input, output) as a Pair, in file order. Rows are returned as stored: cleaning
// (incomplete rows, white space, duplicates) is Clean's job.
func ReadPairs(path string) ([]Pair, error) {
	format, err := DetectFormat(path)
	if err != nil {
		return nil, err
	}
	var rows []row
	switch format {
	case FormatParquet:
		rows, err = readParquet(path)
	case FormatJSON:
		rows, err = readJSONArray(path)
	default:
		rows, err = readJSONLines(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read data %s (%s): %w", path, format, err)
	}
	pairs := make([]Pair, len(rows))
	for i, r := range rows {
		pairs[i] = r.pair()
	}
	return pairs, nil
}

// decodeRow decodes one JSON object, accepting null for any field.
func decodeRow(b []byte) (row, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return row{}, err
	}
	if raw == nil {
		return row{}, errors.New("a row must be a JSON object")
	}
	var r row
	for name, dst := range map[string]*string{fieldInstruction: &r.Instruction, fieldInput: &r.Input, fieldOutput: &r.Output} {
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			continue
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return row{}, fmt.Errorf("field %q must be a string: %w", name, err)
		}
	}
	return r, nil
}

func readJSONLines(path string) ([]row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows []row
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if line == 1 {
			b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
		}
		if len(b) == 0 {
			continue
		}
		r, err := decodeRow(b)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w (expected one JSON object per line with instruction, input, output)", line, err)
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return rows, checkFields(rows)
}

func readJSONArray(path string) ([]row, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var items []json.RawMessage
	if err := json.Unmarshal(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), &items); err != nil {
		return nil, fmt.Errorf("expected a JSON array of objects with instruction, input, output: %w", err)
	}
	rows := make([]row, 0, len(items))
	for i, it := range items {
		r, err := decodeRow(it)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		rows = append(rows, r)
	}
	return rows, checkFields(rows)
}

// checkFields rejects a file in which no row has a question or an answer: most likely another schema.
func checkFields(rows []row) error {
	for _, r := range rows {
		if r.Input != "" || r.Output != "" {
			return nil
		}
	}
	if len(rows) == 0 {
		return nil
	}
	return fmt.Errorf("no row has a non-empty %q or %q field (expected the fields instruction, input, output)", fieldInput, fieldOutput)
}

// readParquet reads the instruction/input/output columns of a flat Parquet file; other columns are
// ignored, null values read as "".
func readParquet(path string) ([]row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return nil, err
	}
	schema := pf.Schema()
	cols := map[int]func(*row) *string{}
	for name, field := range map[string]func(*row) *string{
		fieldInstruction: func(r *row) *string { return &r.Instruction },
		fieldInput:       func(r *row) *string { return &r.Input },
		fieldOutput:      func(r *row) *string { return &r.Output },
	} {
		leaf, ok := schema.Lookup(name)
		if !ok {
			continue
		}
		if leaf.MaxRepetitionLevel > 0 {
			return nil, fmt.Errorf("column %q is repeated; expected one string per row", name)
		}
		if leaf.Node.Type().Kind() != parquet.ByteArray {
			return nil, fmt.Errorf("column %q is %s; expected a string column", name, leaf.Node.Type())
		}
		cols[leaf.ColumnIndex] = field
	}
	if len(cols) == 0 || !hasColumn(schema, fieldInput) || !hasColumn(schema, fieldOutput) {
		return nil, fmt.Errorf("expected string columns %q and %q; the file has %v", fieldInput, fieldOutput, schema.Columns())
	}
	rows := make([]row, 0, pf.NumRows())
	buf := make([]parquet.Row, 256)
	for _, rg := range pf.RowGroups() {
		rr := rg.Rows()
		for {
			n, err := rr.ReadRows(buf)
			for _, pr := range buf[:n] {
				var r row
				for _, v := range pr {
					if field, ok := cols[v.Column()]; ok && !v.IsNull() {
						*field(&r) = string(v.ByteArray())
					}
				}
				rows = append(rows, r)
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rr.Close()
				return nil, err
			}
		}
		if err := rr.Close(); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

func hasColumn(s *parquet.Schema, name string) bool {
	_, ok := s.Lookup(name)
	return ok
}
