package gguf

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
)

// quantsGolden is testdata/gguf/quants.json (tools/oracle/gguf_golden.py, gguf-py).
type quantsGolden struct {
	Alignment int `json:"alignment"`
	Tensors   []struct {
		Name   string `json:"name"`
		Type   string `json:"type"`
		Shape  []int  `json:"shape"`
		SHA256 string `json:"sha256"`
		Values string `json:"values"`
	} `json:"tensors"`
	Metadata map[string]struct {
		Type        string `json:"type"`
		ElementType string `json:"element_type"`
		Value       any    `json:"value"`
	} `json:"metadata"`
}

func testdata(parts ...string) string {
	return filepath.Join(append([]string{testutil.RepoRoot(), "testdata", "gguf"}, parts...)...)
}

func loadQuants(t *testing.T) (*File, *quantsGolden) {
	t.Helper()
	b, err := os.ReadFile(testdata("quants.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g quantsGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	gf, err := Open(testdata("quants.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gf.Close() })
	return gf, &g
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// Every supported type dequantizes bit for bit as gguf-py does (K types from random blocks).
func TestDequantizeMatchesGGUFPy(t *testing.T) {
	gf, g := loadQuants(t)
	if gf.Alignment != int64(g.Alignment) || gf.Version != 3 {
		t.Fatalf("alignment %d version %d, want %d and 3", gf.Alignment, gf.Version, g.Alignment)
	}
	seen := map[string]bool{}
	for _, want := range g.Tensors {
		ti, ok := gf.Tensor(want.Name)
		if !ok {
			t.Fatalf("tensor %s missing", want.Name)
		}
		if ti.Type.String() != want.Type || !slices.Equal(ti.Shape(), want.Shape) {
			t.Fatalf("%s: %s%v, want %s%v", want.Name, ti.Type, ti.Shape(), want.Type, want.Shape)
		}
		got, err := gf.Float32(ti)
		if err != nil {
			t.Fatal(err)
		}
		exp, _ := base64.StdEncoding.DecodeString(want.Values)
		sum := sha256.Sum256(f32Bytes(got))
		if hex.EncodeToString(sum[:]) != want.SHA256 {
			gotB := f32Bytes(got)
			for i := 0; i < len(exp); i += 4 {
				if !slices.Equal(gotB[i:i+4], exp[i:i+4]) {
					t.Fatalf("%s (%s): element %d = %08x, gguf-py %08x", want.Name, want.Type, i/4,
						binary.LittleEndian.Uint32(gotB[i:]), binary.LittleEndian.Uint32(exp[i:]))
				}
			}
			t.Fatalf("%s: sha256 differs but no element does (length %d vs %d)", want.Name, len(gotB), len(exp))
		}
		seen[want.Type] = true
	}
	for _, typ := range []GGMLType{F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K} {
		if !seen[typ.String()] {
			t.Errorf("the golden file has no %s tensor", typ)
		}
	}
}

// Every metadata value type reads back as gguf-py wrote it.
func TestMetadataTypes(t *testing.T) {
	gf, g := loadQuants(t)
	if arch := gf.Metadata["general.architecture"]; arch != "test" {
		t.Fatalf("general.architecture = %v", arch)
	}
	for key, want := range g.Metadata {
		got, ok := gf.Metadata[key]
		if !ok {
			t.Errorf("%s missing", key)
			continue
		}
		if err := sameValue(got, want.Value); err != nil {
			t.Errorf("%s (%s %s): %v", key, want.Type, want.ElementType, err)
		}
	}
	if !slices.Contains(gf.Keys, "test.array.bool") || len(gf.Keys) != len(gf.Metadata) {
		t.Errorf("keys %v", gf.Keys)
	}
}

// sameValue compares a decoded GGUF value with its JSON golden (floats as decimal strings).
func sameValue(got, want any) error {
	rv := reflect.ValueOf(got)
	if rv.Kind() == reflect.Slice {
		list, ok := want.([]any)
		if !ok || len(list) != rv.Len() {
			return fmt.Errorf("got %v, want %v", got, want)
		}
		for i := range list {
			if err := sameValue(rv.Index(i).Interface(), list[i]); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return nil
	}
	switch x := got.(type) {
	case float32, float64:
		f := rv.Float()
		w, err := strconv.ParseFloat(fmt.Sprint(want), 64)
		if err != nil || f != w {
			return fmt.Errorf("got %v, want %v", got, want)
		}
		return nil
	case string, bool:
		if got != want {
			return fmt.Errorf("got %v, want %v", x, want)
		}
		return nil
	}
	n, err := asInt(got)
	if w, ok := want.(float64); err != nil || !ok || float64(n) != w {
		return fmt.Errorf("got %v (%T), want %v", got, got, want)
	}
	return nil
}

// UnpermuteRows inverts llama.cpp's convert_hf_to_gguf permute (reshape(n_head, 2, d/2, cols),
// swap axes 1 and 2), written here the way the converter writes it.
func TestUnpermuteRowsInvertsLlamaCppPermute(t *testing.T) {
	const heads, hd, cols = 3, 8, 5
	hf := make([]float32, heads*hd*cols)
	for i := range hf {
		hf[i] = float32(i)
	}
	permuted := make([]float32, len(hf))
	for h := 0; h < heads; h++ {
		for half := 0; half < 2; half++ {
			for i := 0; i < hd/2; i++ {
				src := h*hd + half*hd/2 + i // [h][half][i]
				dst := h*hd + i*2 + half    // [h][i][half]
				copy(permuted[dst*cols:(dst+1)*cols], hf[src*cols:(src+1)*cols])
			}
		}
	}
	if got := UnpermuteRows(permuted, heads, cols); !slices.Equal(got, hf) {
		t.Fatalf("unpermute(permute(x)) != x:\n%v", got[:2*cols])
	}
}

// Damaged files are refused with an error that says what is wrong, never a panic or a huge
// allocation.
func TestOpenRejectsDamagedFiles(t *testing.T) {
	good, err := os.ReadFile(testdata("quants.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		data []byte
		want string
	}{
		"not gguf":   {[]byte("GGML0000000000000000000000"), "not a GGUF file"},
		"version 9":  {patch(good, 4, 9), "version 9"},
		"big-endian": {patch(good, 4, 3<<24), "big-endian"},
		"truncated":  {good[:len(good)-100], "past the end"},
		"header":     {good[:200], "unexpected end"},
		"huge keys":  {patch64(good, 16, 1<<40), "corrupt header"},
	}
	for name, c := range cases {
		p := filepath.Join(t.TempDir(), "bad.gguf")
		if err := os.WriteFile(p, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		gf, err := Open(p)
		if err == nil {
			gf.Close()
			t.Errorf("%s: opened", name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to mention %q", name, err, c.want)
		}
	}
}

func patch(b []byte, off int, v uint32) []byte {
	out := slices.Clone(b)
	binary.LittleEndian.PutUint32(out[off:], v)
	return out
}

func patch64(b []byte, off int, v uint64) []byte {
	out := slices.Clone(b)
	binary.LittleEndian.PutUint64(out[off:], v)
	return out
}

// Import refuses what it cannot convert, before writing anything.
func TestImportRefusesOtherFiles(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	_, err := Import(context.Background(), testdata("quants.gguf"), out, Options{}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "tokenizer") {
		t.Fatalf("a file without a tokenizer: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("output dir created for a refused file: %v", err)
	}
	if _, err := Import(context.Background(), testdata("quants.gguf"), out, Options{DType: "F16"}, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "float32 or bfloat16") {
		t.Fatalf("float16: %v", err)
	}
}
