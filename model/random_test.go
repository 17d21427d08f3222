package model

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func tinyConfig(t *testing.T) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(tinyConfigJSON))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRandomTensorStatisticsAndDeterminism(t *testing.T) {
	c := tinyConfig(t)
	if c.InitializerRange() != 0.5 {
		t.Fatalf("initializer_range %v", c.InitializerRange())
	}
	// Large enough for several random blocks, so the parallel fill is exercised.
	ti := TensorInfo{Name: ProjWeight(0, QProj), DType: F32, Shape: []int{3, randomBlock}}
	a := c.RandomTensor(ti, 7)
	if !bytes.Equal(a, c.RandomTensor(ti, 7)) {
		t.Fatal("same seed gave different bytes")
	}
	if bytes.Equal(a, c.RandomTensor(ti, 8)) {
		t.Fatal("different seeds gave the same bytes")
	}
	other := ti
	other.Name = ProjWeight(1, QProj)
	if bytes.Equal(a, c.RandomTensor(other, 7)) {
		t.Fatal("different tensors got the same values")
	}
	v := DecodeFloat32(F32, a)
	var sum, sq float64
	for _, x := range v {
		sum += float64(x)
		sq += float64(x) * float64(x)
	}
	mean := sum / float64(len(v))
	std := math.Sqrt(sq/float64(len(v)) - mean*mean)
	if math.Abs(mean) > 0.002 || math.Abs(std-0.5) > 0.002 {
		t.Fatalf("mean %v std %v, want 0 and 0.5", mean, std)
	}
	norm := DecodeFloat32(BF16, c.RandomTensor(TensorInfo{Name: InputNorm(1), DType: BF16, Shape: []int{16}}, 7))
	for _, x := range norm {
		if x != 1 {
			t.Fatalf("norm weights %v, want ones", norm)
		}
	}
}

func TestWriteRandomModelLoadsBack(t *testing.T) {
	c := tinyConfig(t)
	dir := t.TempDir()
	if err := WriteRandomModel(dir, c, F16, 1, 2000); err != nil {
		t.Fatal(err)
	}
	shards, _ := filepath.Glob(filepath.Join(dir, "model-*.safetensors"))
	if len(shards) < 2 {
		t.Fatalf("expected shards with a 2000-byte limit, got %v", shards)
	}
	back, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.TorchDtype != "float16" || back.InitializerRange() != 0.5 || back.HiddenSize != 16 {
		t.Fatalf("config written back: %+v", back)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, ConfigFile)); !bytes.Contains(b, []byte(`"custom_key": "kept"`)) {
		t.Fatalf("unknown config keys dropped: %s", b)
	}
	w, err := OpenWeights(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, n := range c.TensorNames() {
		info, ok := w.Info(n)
		shape, _ := c.TensorShape(n)
		if !ok || info.DType != F16 || info.NumElements() != (TensorInfo{Shape: shape}).NumElements() {
			t.Fatalf("%s: %+v", n, info)
		}
		got, _ := w.Bytes(n)
		if !bytes.Equal(got, c.RandomTensor(info, 1)) {
			t.Fatalf("%s: stored bytes differ from the seeded values", n)
		}
	}
	if len(w.Names()) != len(c.TensorNames()) {
		t.Fatalf("%d tensors, want %d", len(w.Names()), len(c.TensorNames()))
	}
}
