package export

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/medassist/medassist/export/onnxpb"
	"github.com/medassist/medassist/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/export")

// The exported graph's nodes, I/O and initializers, read back from model.onnx, are compared
// with golden listings: any change to the graph shows up as a readable diff.
func TestGraphGolden(t *testing.T) {
	for _, c := range []struct {
		golden  string
		quant   Quantization
		contrib bool
	}{
		{"tiny-gqa3-untied-llama3.float32.graph.txt", QuantNone, false},
		{"tiny-gqa3-untied-llama3.int4.graph.txt", QuantInt4, false},
		{"tiny-gqa3-untied-llama3.contrib.graph.txt", QuantNone, true},
	} {
		t.Run(c.golden, func(t *testing.T) {
			opt := DefaultOptions()
			opt.Quantize, opt.Contrib = c.quant, c.contrib
			out := exportModel(t, tinyDir("tiny-gqa3-untied-llama3"), opt)
			got := graphListing(t, filepath.Join(out, ModelFile))
			path := filepath.Join(testutil.RepoRoot(), "testdata", "export", c.golden)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./export -run TestGraphGolden -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("graph differs from %s (go test ./export -run TestGraphGolden -update rewrites it):\n%s", c.golden, lineDiff(string(want), got))
			}
		})
	}
}

// graphListing describes a model file line by line: opsets, inputs, outputs, initializers (small
// int64 constants with their values) and nodes with their inputs, outputs and attributes.
func graphListing(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(b, &m); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "ir_version %d, producer %s\n", m.GetIrVersion(), m.GetProducerName())
	for _, o := range m.OpsetImport {
		fmt.Fprintf(&sb, "opset %q %d\n", o.GetDomain(), o.GetVersion())
	}
	g := m.Graph
	for _, vi := range g.Input {
		fmt.Fprintf(&sb, "input %s\n", valueListing(vi))
	}
	for _, vi := range g.Output {
		fmt.Fprintf(&sb, "output %s\n", valueListing(vi))
	}
	for _, in := range g.Initializer {
		fmt.Fprintf(&sb, "init %s %s %v", in.GetName(), onnxpb.TensorProto_DataType(in.GetDataType()), in.Dims)
		if onnxpb.TensorProto_DataType(in.GetDataType()) == onnxpb.TensorProto_INT64 && len(in.RawData) <= 64 {
			var v []int64
			for i := 0; i+8 <= len(in.RawData); i += 8 {
				v = append(v, int64(binary.LittleEndian.Uint64(in.RawData[i:])))
			}
			fmt.Fprintf(&sb, " = %v", v)
		}
		sb.WriteString("\n")
	}
	for _, n := range g.Node {
		op := n.GetOpType()
		if n.GetDomain() != "" {
			op = n.GetDomain() + "." + op
		}
		fmt.Fprintf(&sb, "node %s %s (%s) -> (%s)", op, n.GetName(), strings.Join(n.Input, ", "), strings.Join(n.Output, ", "))
		for _, a := range n.Attribute {
			switch a.GetType() {
			case onnxpb.AttributeProto_INT:
				fmt.Fprintf(&sb, " %s=%d", a.GetName(), a.GetI())
			case onnxpb.AttributeProto_INTS:
				fmt.Fprintf(&sb, " %s=%v", a.GetName(), a.Ints)
			case onnxpb.AttributeProto_FLOAT:
				fmt.Fprintf(&sb, " %s=%g", a.GetName(), a.GetF())
			default:
				fmt.Fprintf(&sb, " %s=<%s>", a.GetName(), a.GetType())
			}
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

func valueListing(vi *onnxpb.ValueInfoProto) string {
	tt := vi.GetType().GetTensorType()
	var dims []string
	for _, d := range tt.GetShape().GetDim() {
		if p := d.GetDimParam(); p != "" {
			dims = append(dims, p)
		} else {
			dims = append(dims, fmt.Sprint(d.GetDimValue()))
		}
	}
	return fmt.Sprintf("%s %s [%s]", vi.GetName(), onnxpb.TensorProto_DataType(tt.GetElemType()), strings.Join(dims, ", "))
}

// lineDiff lists the lines only in want (-) or only in got (+), in order, at most 40.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	inW, inG := map[string]int{}, map[string]int{}
	for _, l := range w {
		inW[l]++
	}
	for _, l := range g {
		inG[l]++
	}
	var out []string
	for _, l := range w {
		if inG[l] == 0 {
			out = append(out, "- "+l)
		}
	}
	for _, l := range g {
		if inW[l] == 0 {
			out = append(out, "+ "+l)
		}
	}
	if len(out) == 0 {
		out = append(out, "(same lines, different order or count)")
	}
	if len(out) > 40 {
		out = append(out[:40], fmt.Sprintf("... %d more", len(out)-40))
	}
	return strings.Join(out, "\n")
}
