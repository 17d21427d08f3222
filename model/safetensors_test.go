package model

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/medassist/medassist/internal/testutil"
)

// specialBits16 are F16/BF16 patterns that must survive a file round trip untouched.
var specialBits16 = []uint16{0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x0400, 0x3c00, 0x7bff, 0x7c00, 0xfc00,
	0x7c01, 0x7e00, 0xfe01, 0x7fff, 0x7f80, 0xff80, 0x7fc0, 0x7f81, 0x007f, 0x0080, 0x7f7f}

func bits16(v []uint16) []byte {
	out := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(out[2*i:], x)
	}
	return out
}

func testTensors() []Tensor {
	r := rand.New(rand.NewPCG(5, 6))
	f32 := []float32{0, float32(math.Copysign(0, -1)), 1e-45, -1e-40, float32(math.Inf(1)), float32(math.Inf(-1)),
		math.Float32frombits(0x7fc00001), math.Float32frombits(0xffbfffff), math.MaxFloat32}
	for i := 0; i < 55; i++ {
		f32 = append(f32, float32(r.NormFloat64()))
	}
	return []Tensor{
		{TensorInfo{"w.f32", F32, []int{8, 8}}, EncodeFloat32(F32, f32)},
		{TensorInfo{"w.f16", F16, []int{len(specialBits16)}}, bits16(specialBits16)},
		{TensorInfo{"w.bf16", BF16, []int{1, len(specialBits16)}}, bits16(specialBits16)},
		{TensorInfo{"ids", I64, []int{3}}, []byte{1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{TensorInfo{"scalar", F32, []int{}}, EncodeFloat32(F32, []float32{2.5})},
		{TensorInfo{"empty", F16, []int{0, 3}}, nil},
	}
}

func TestSafetensorsRoundTripIsBitExact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.safetensors")
	tensors := testTensors()
	md := map[string]string{"format": "pt", "k": "v ✓"}
	if err := WriteSafetensors(path, tensors, md); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left behind: %v", err)
	}
	w, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got := strings.Join(w.Names(), ","); got != "empty,ids,scalar,w.bf16,w.f16,w.f32" {
		t.Fatalf("names %s", got)
	}
	if got := w.Metadata(); got["k"] != "v ✓" || got["format"] != "pt" || len(got) != 2 {
		t.Fatalf("metadata %v", got)
	}
	for _, want := range tensors {
		info, ok := w.Info(want.Name)
		if !ok || info.DType != want.DType || len(info.Shape) != len(want.Shape) {
			t.Fatalf("%s: info %+v, want %+v", want.Name, info, want.TensorInfo)
		}
		got, err := w.Bytes(want.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Data) {
			t.Fatalf("%s: bytes differ", want.Name)
		}
		if !want.DType.IsFloat() {
			if _, err := w.Float32(want.Name); err == nil {
				t.Fatalf("%s: Float32 of %s should fail", want.Name, want.DType)
			}
			continue
		}
		// Float32 then back to the file's dtype gives the very same bits (NaN payloads included).
		f, err := w.Float32(want.Name)
		if err != nil {
			t.Fatal(err)
		}
		if again := EncodeFloat32(want.DType, f); !bytes.Equal(again, want.Data) {
			t.Fatalf("%s: Float32 → Encode is not bit-exact", want.Name)
		}
	}
	if _, err := w.Bytes("missing"); err == nil {
		t.Fatal("Bytes of a missing tensor should fail")
	}
}

// Bytes is a view of the mapped file, not a copy: loading never holds the weights twice.
func TestBytesIsZeroCopy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.safetensors")
	if err := WriteSafetensors(path, testTensors(), nil); err != nil {
		t.Fatal(err)
	}
	w, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := w.Bytes("w.f32")
	if err != nil {
		t.Fatal(err)
	}
	m := w.files[0].data
	start := uintptr(unsafe.Pointer(&m[0]))
	p := uintptr(unsafe.Pointer(&b[0]))
	if p < start || p >= start+uintptr(len(m)) {
		t.Fatal("Bytes returned memory outside the mapped file")
	}
	if cap(b) != len(b) {
		t.Fatalf("Bytes cap %d > len %d: appending would write into the mapping", cap(b), len(b))
	}
	w.Release("w.f32") // dropping the pages keeps the data readable
	if again, _ := w.Bytes("w.f32"); !bytes.Equal(again, testTensors()[0].Data) {
		t.Fatal("data changed after Release")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Bytes("w.f32"); err == nil {
		t.Fatal("Bytes after Close should fail")
	}
}

// A file written by the reference implementation (Python safetensors) reads back with the values
// it was written with.
func TestReadsReferenceFile(t *testing.T) {
	g := loadReferenceGolden(t)
	w, err := OpenSafetensors(filepath.Join(testutil.RepoRoot(), "testdata", "model", "reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if md := w.Metadata(); md["format"] != "pt" || md["note"] != "golden" {
		t.Fatalf("metadata %v", md)
	}
	for name, shape := range g.Shapes {
		info, ok := w.Info(name)
		if !ok || len(info.Shape) != len(shape) {
			t.Fatalf("%s: %+v, want shape %v", name, info, shape)
		}
		for i := range shape {
			if info.Shape[i] != shape[i] {
				t.Fatalf("%s: shape %v, want %v", name, info.Shape, shape)
			}
		}
	}
	for _, c := range []struct {
		name string
		want func(i int) uint32
	}{
		{"f32", func(i int) uint32 { return g.F32Bits[i] }},
		{"f16", func(i int) uint32 { return math.Float32bits(F16ToFloat32(g.F16Bits[i])) }},
		{"bf16", func(i int) uint32 { return uint32(g.BF16Bits[i]) << 16 }},
	} {
		v, err := w.Float32(c.name)
		if err != nil {
			t.Fatal(err)
		}
		if len(v) != len(g.F32Bits) {
			t.Fatalf("%s: %d values, want %d", c.name, len(v), len(g.F32Bits))
		}
		for i := range v {
			if math.Float32bits(v[i]) != c.want(i) {
				t.Fatalf("%s[%d] = %#08x, want %#08x", c.name, i, math.Float32bits(v[i]), c.want(i))
			}
		}
	}
	ids, _ := w.Bytes("i64")
	if got := int64(binary.LittleEndian.Uint64(ids[0:])); got != -3 {
		t.Fatalf("i64[0] = %d, want -3", got)
	}
}

func TestStories260KWeightsMatchConfig(t *testing.T) {
	dir := testutil.Stories260K(t)
	cfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, err := OpenWeights(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	names := cfg.TensorNames()
	if len(w.Names()) != len(names) {
		t.Fatalf("%d tensors in the file, config implies %d", len(w.Names()), len(names))
	}
	for _, n := range names {
		info, ok := w.Info(n)
		shape, _ := cfg.TensorShape(n)
		if !ok || info.DType != F32 || len(info.Shape) != len(shape) || info.NumElements() != (TensorInfo{Shape: shape}).NumElements() {
			t.Fatalf("%s: %+v, config shape %v", n, info, shape)
		}
	}
	norm, err := w.Float32(FinalNorm)
	if err != nil || len(norm) != cfg.HiddenSize {
		t.Fatalf("final norm: %d values, %v", len(norm), err)
	}
}

// writeRaw writes a safetensors file from a header given as JSON and a data area.
func writeRaw(t *testing.T, header string, data []byte) string {
	t.Helper()
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(append(b, header...), data...)
	path := filepath.Join(t.TempDir(), "bad.safetensors")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHeaderValidation(t *testing.T) {
	eight := make([]byte, 8)
	cases := []struct {
		name, header string
		data         []byte
		want         string
	}{
		{"bad json", `{"a":`, nil, "bad JSON header"},
		{"truncated data", `{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, eight, "truncated file"},
		{"overlap", `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight, "overlap"},
		{"gap", `{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight, "gap"},
		{"trailing bytes", `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, eight, "after the last tensor"},
		{"size mismatch", `{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, eight, "needs 12"},
		{"bad dtype", `{"a":{"dtype":"F8_E9","shape":[8],"data_offsets":[0,8]}}`, eight, "unsupported dtype"},
		{"negative offsets", `{"a":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}}`, eight, "bad data_offsets"},
		{"unknown field", `{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8],"x":1}}`, eight, "bad header entry"},
		{"shape overflow", `{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, nil, "larger than the file"},
		{"bad metadata", `{"__metadata__":{"a":1}}`, nil, "__metadata__"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := OpenSafetensors(writeRaw(t, c.header, c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
	t.Run("header too large", func(t *testing.T) {
		b := make([]byte, 16)
		binary.LittleEndian.PutUint64(b, MaxHeaderBytes+1)
		path := filepath.Join(t.TempDir(), "big.safetensors")
		os.WriteFile(path, b, 0o644)
		if _, err := OpenSafetensors(path); err == nil || !strings.Contains(err.Error(), "limit") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("header past end", func(t *testing.T) {
		b := make([]byte, 16)
		binary.LittleEndian.PutUint64(b, 100)
		path := filepath.Join(t.TempDir(), "short.safetensors")
		os.WriteFile(path, b, 0o644)
		if _, err := OpenSafetensors(path); err == nil || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("shorter than the length", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "tiny.safetensors")
		os.WriteFile(path, []byte{1, 2, 3}, 0o644)
		if _, err := OpenSafetensors(path); err == nil || !strings.Contains(err.Error(), "too short") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("truncated real file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "t.safetensors")
		if err := WriteSafetensors(path, testTensors(), nil); err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(path)
		os.Truncate(path, st.Size()-3)
		if _, err := OpenSafetensors(path); err == nil || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestWriterChecksOrderSizeAndCompleteness(t *testing.T) {
	dir := t.TempDir()
	infos := []TensorInfo{{"a", F32, []int{2}}, {"b", F16, []int{3}}}
	path := filepath.Join(dir, "w.safetensors")
	sw, err := CreateSafetensors(path, infos, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.Write("b", make([]byte, 6)); err == nil || !strings.Contains(err.Error(), "expected a") {
		t.Fatalf("out of order: %v", err)
	}
	if err := sw.Write("a", make([]byte, 7)); err == nil || !strings.Contains(err.Error(), "needs 8") {
		t.Fatalf("wrong size: %v", err)
	}
	if err := sw.Write("a", make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err == nil || !strings.Contains(err.Error(), "1 of 2") {
		t.Fatalf("incomplete close: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("an incomplete write left files: %v", entries)
	}
	if _, err := CreateSafetensors(path, []TensorInfo{{"a", "Q4", []int{1}}}, nil); err == nil {
		t.Fatal("unknown dtype accepted")
	}
	if _, err := CreateSafetensors(path, []TensorInfo{{"a", F32, nil}, {"a", F32, nil}}, nil); err == nil {
		t.Fatal("duplicate name accepted")
	}
}

// The header follows the format's conventions that other readers rely on: 8-byte aligned data.
func TestHeaderIsPaddedToEightBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.safetensors")
	if err := WriteSafetensors(path, []Tensor{{TensorInfo{"x", U8, []int{1}}, []byte{7}}}, nil); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	n := binary.LittleEndian.Uint64(b)
	if n%8 != 0 {
		t.Fatalf("header length %d not a multiple of 8", n)
	}
	var h map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &h); err != nil {
		t.Fatal(err)
	}
	if b[len(b)-1] != 7 {
		t.Fatal("data not at the end")
	}
}

func TestShardedWeightsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	var infos []TensorInfo
	data := map[string][]byte{}
	r := rand.New(rand.NewPCG(9, 9))
	for i, n := range []int{100, 300, 50, 400, 10, 10} {
		ti := TensorInfo{Name: "t" + string(rune('a'+i)), DType: BF16, Shape: []int{n}}
		b := make([]byte, ti.NumBytes())
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		infos = append(infos, ti)
		data[ti.Name] = b
	}
	// Leftovers of an earlier single-file model must not survive.
	os.WriteFile(filepath.Join(dir, SafetensorsFile), []byte("stale"), 0o644)
	calls := 0
	err := WriteModelWeights(dir, infos, 800, func(name string) ([]byte, error) { calls++; return data[name], nil })
	if err != nil {
		t.Fatal(err)
	}
	if calls != len(infos) {
		t.Fatalf("data called %d times for %d tensors", calls, len(infos))
	}
	// 200+600 | 100+800 would exceed: 100 | 800 | 20 → shards [a,b] [c] [d] [e,f]
	shards, _ := filepath.Glob(filepath.Join(dir, "model-*-of-*.safetensors"))
	if len(shards) != 4 || filepath.Base(shards[0]) != "model-00001-of-00004.safetensors" {
		t.Fatalf("shards %v", shards)
	}
	if _, err := os.Stat(filepath.Join(dir, SafetensorsFile)); !os.IsNotExist(err) {
		t.Fatal("stale model.safetensors kept")
	}
	var idx struct {
		Metadata  map[string]int64  `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, SafetensorsIndexFile))
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	if idx.Metadata["total_size"] != 1740 || idx.WeightMap["td"] != "model-00003-of-00004.safetensors" {
		t.Fatalf("index %s", b)
	}
	w, err := OpenWeights(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for name, want := range data {
		got, err := w.Bytes(name)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s differs after the sharded round trip (%v)", name, err)
		}
	}
	if w.Metadata()["format"] != "pt" || w.Metadata()["total_size"] != "1740" {
		t.Fatalf("metadata %v", w.Metadata())
	}

	// Below the limit: one model.safetensors, and the old index and shards are gone.
	if err := WriteModelWeights(dir, infos, 0, func(name string) ([]byte, error) { return data[name], nil }); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "model*"))
	if len(left) != 1 || filepath.Base(left[0]) != SafetensorsFile {
		t.Fatalf("files after rewriting unsharded: %v", left)
	}
}

func TestShardIndexMismatchIsReported(t *testing.T) {
	dir := t.TempDir()
	infos := []TensorInfo{{"a", F32, []int{100}}, {"b", F32, []int{100}}}
	if err := WriteModelWeights(dir, infos, 500, func(string) ([]byte, error) { return make([]byte, 400), nil }); err != nil {
		t.Fatal(err)
	}
	write := func(s string) { os.WriteFile(filepath.Join(dir, SafetensorsIndexFile), []byte(s), 0o644) }
	for _, c := range []struct{ index, want string }{
		{`{"weight_map":{"a":"model-00002-of-00002.safetensors","b":"model-00001-of-00002.safetensors"}}`, "but it is in"},
		{`{"weight_map":{"a":"model-00002-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}`, "does not hold it"},
		{`{"weight_map":{}}`, "empty weight_map"},
		{`{"weight_map":{"a":"../x.safetensors"}}`, "plain file names"},
		{`{"weight_map":{"a":"missing.safetensors"}}`, "no such file"},
		{`{"weight_map":`, "bad JSON"},
	} {
		write(c.index)
		if _, err := OpenWeights(dir); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("index %s: got %v, want %q", c.index, err, c.want)
		}
	}
	if _, err := OpenWeights(t.TempDir()); err == nil || !strings.Contains(err.Error(), "medassist init") {
		t.Fatalf("empty dir: %v", err)
	}
}
