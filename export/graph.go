package export

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/medassist/medassist/export/onnxpb"
	"github.com/medassist/medassist/model"
)

// DType is an ONNX tensor element type.
type DType = onnxpb.TensorProto_DataType

// Element types used by the decoder graph.
const (
	Float32 = onnxpb.TensorProto_FLOAT
	Float16 = onnxpb.TensorProto_FLOAT16
	Int64   = onnxpb.TensorProto_INT64
	Int32   = onnxpb.TensorProto_INT32
	Uint8   = onnxpb.TensorProto_UINT8
	Bool    = onnxpb.TensorProto_BOOL
)

// Domains of the operators the graph uses.
const (
	onnxDomain      = ""
	microsoftDomain = "com.microsoft"
)

// elemSize is the byte size of one element of t.
func elemSize(t DType) int {
	switch t {
	case Float32, Int32:
		return 4
	case Float16:
		return 2
	case Int64:
		return 8
	case Uint8, Bool:
		return 1
	}
	panic("export: no size for " + t.String())
}

// Dim is one dimension of a graph input or output: a fixed size or a named dynamic axis.
type Dim struct {
	Size  int64
	Param string
}

func fixed(n int) Dim      { return Dim{Size: int64(n)} }
func dynamic(p string) Dim { return Dim{Param: p} }

// Initializer is a constant tensor of the graph. Its bytes are produced on demand by Data, so
// that large weights are converted and written one at a time.
type Initializer struct {
	Name  string
	DType DType
	Dims  []int64
	// Data returns the little-endian bytes of the tensor (len == Bytes()).
	Data func() ([]byte, error)
	// Done, when set, is called once the bytes are written (to release their source pages).
	Done func()
}

// Bytes is the size of the tensor's data.
func (in *Initializer) Bytes() int64 {
	n := int64(elemSize(in.DType))
	for _, d := range in.Dims {
		n *= d
	}
	return n
}

// graph collects the nodes, initializers and I/O of one ONNX graph. Node and value names are
// scoped like the exporters of other frameworks ("/model/layers.0/self_attn/MatMul_1"), so that
// the graph is easy to read in a viewer and its node list is stable for golden tests.
type graph struct {
	name    string
	nodes   []*onnxpb.NodeProto
	inits   []*Initializer
	inputs  []*onnxpb.ValueInfoProto
	outputs []*onnxpb.ValueInfoProto
	scope   []string
	counts  map[string]int    // node names already used, for unique suffixes
	consts  map[string]string // constant key -> initializer name
	opsets  map[string]int64  // domain -> version
}

func newGraph(name string, opset int) *graph {
	return &graph{
		name:   name,
		counts: map[string]int{},
		consts: map[string]string{},
		opsets: map[string]int64{onnxDomain: int64(opset)},
	}
}

// push enters a naming scope; call the returned func to leave it.
func (g *graph) push(scope string) func() {
	g.scope = append(g.scope, scope)
	return func() { g.scope = g.scope[:len(g.scope)-1] }
}

func (g *graph) nodeName(op string) string {
	base := "/" + strings.Join(g.scope, "/")
	if base != "/" {
		base += "/"
	}
	base += op
	n := g.counts[base]
	g.counts[base] = n + 1
	if n == 0 {
		return base
	}
	return base + "_" + strconv.Itoa(n)
}

// attr is a node attribute.
type attr = *onnxpb.AttributeProto

func attrInt(name string, v int64) attr {
	return &onnxpb.AttributeProto{Name: &name, Type: onnxpb.AttributeProto_INT.Enum(), I: &v}
}

func attrInts(name string, v ...int64) attr {
	return &onnxpb.AttributeProto{Name: &name, Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func attrFloat(name string, v float32) attr {
	return &onnxpb.AttributeProto{Name: &name, Type: onnxpb.AttributeProto_FLOAT.Enum(), F: &v}
}

// node adds a node and returns its output names; an empty output name is generated from the
// node's name ("/model/layers.0/mlp/Mul_2_output_0").
func (g *graph) node(domain, op string, inputs, outputs []string, attrs ...attr) []string {
	name := g.nodeName(op)
	outs := make([]string, len(outputs))
	for i, o := range outputs {
		if o == "" {
			o = name + "_output_" + strconv.Itoa(i)
		}
		outs[i] = o
	}
	n := &onnxpb.NodeProto{Name: &name, OpType: &op, Input: inputs, Output: outs, Attribute: attrs}
	if domain != onnxDomain {
		n.Domain = &domain
		if _, ok := g.opsets[domain]; !ok {
			g.opsets[domain] = 1
		}
	}
	g.nodes = append(g.nodes, n)
	return outs
}

// opN adds a standard-domain node with n generated output names.
func (g *graph) opN(op string, n int, inputs []string, attrs ...attr) []string {
	return g.node(onnxDomain, op, inputs, make([]string, n), attrs...)
}

// domainOpN adds a node of another domain (com.microsoft) with n generated output names.
func (g *graph) domainOpN(domain, op string, n int, inputs []string, attrs ...attr) []string {
	return g.node(domain, op, inputs, make([]string, n), attrs...)
}

// op adds a standard-domain node with one output and returns the output's name.
func (g *graph) op(op string, inputs ...string) string { return g.opN(op, 1, inputs)[0] }

// opA is op with attributes.
func (g *graph) opA(op string, inputs []string, attrs ...attr) string {
	return g.opN(op, 1, inputs, attrs...)[0]
}

// rename gives the output of the last node a fixed name (a graph output such as "logits").
func (g *graph) rename(value, to string) string {
	last := g.nodes[len(g.nodes)-1]
	for i, o := range last.Output {
		if o == value {
			last.Output[i] = to
			return to
		}
	}
	panic(fmt.Sprintf("export: %s is not an output of the last node %s", value, last.GetName()))
}

// addInit registers a weight initializer and returns its name.
func (g *graph) addInit(in *Initializer) string {
	g.inits = append(g.inits, in)
	return in.Name
}

// constant adds (once) a small constant initializer and returns its name.
func (g *graph) constant(t DType, dims []int64, data []byte, label string) string {
	key := fmt.Sprintf("%d|%v|%x", t, dims, data)
	if name, ok := g.consts[key]; ok {
		return name
	}
	name := "/const/" + label
	if _, taken := g.counts[name]; taken {
		name += "_" + strconv.Itoa(g.counts[name])
	}
	g.counts["/const/"+label]++
	g.consts[key] = name
	g.addInit(&Initializer{Name: name, DType: t, Dims: dims, Data: func() ([]byte, error) { return data, nil }})
	return name
}

// ints is a 1-D int64 constant (shapes, axes, starts, ...).
func (g *graph) ints(v ...int64) string {
	b := make([]byte, 0, 8*len(v))
	labels := make([]string, len(v))
	for i, x := range v {
		b = appendUint64(b, uint64(x))
		labels[i] = strconv.FormatInt(x, 10)
	}
	return g.constant(Int64, []int64{int64(len(v))}, b, "ints_"+strings.Join(labels, "_"))
}

// scalarInt is a rank-0 int64 constant.
func (g *graph) scalarInt(v int64) string {
	return g.constant(Int64, nil, appendUint64(nil, uint64(v)), "int_"+strconv.FormatInt(v, 10))
}

// scalarFloat is a rank-0 float constant of type t (float32 or float16).
func (g *graph) scalarFloat(t DType, v float32) string {
	label := "float_" + strconv.FormatFloat(float64(v), 'g', -1, 32)
	if t == Float16 {
		return g.constant(t, nil, appendUint16(nil, model.Float32ToF16(v)), label+"_f16")
	}
	return g.constant(t, nil, appendUint32(nil, math.Float32bits(v)), label)
}

// floats is a 1-D float32 constant.
func (g *graph) floats(label string, v []float32) string {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = appendUint32(b, math.Float32bits(x))
	}
	return g.constant(Float32, []int64{int64(len(v))}, b, label)
}

func valueInfo(name string, t DType, dims []Dim) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		dim := &onnxpb.TensorShapeProto_Dimension{}
		if d.Param != "" {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d.Param}
		} else {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d.Size}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	et := int32(t)
	return &onnxpb.ValueInfoProto{
		Name: &name,
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: &et, Shape: shape},
		}},
	}
}

func (g *graph) input(name string, t DType, dims ...Dim) string {
	g.inputs = append(g.inputs, valueInfo(name, t, dims))
	return name
}

func (g *graph) output(name string, t DType, dims ...Dim) {
	g.outputs = append(g.outputs, valueInfo(name, t, dims))
}

func appendUint64(b []byte, v uint64) []byte {
	return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56))
}

func appendUint32(b []byte, v uint32) []byte {
	return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
}

func appendUint16(b []byte, v uint16) []byte { return append(b, byte(v), byte(v>>8)) }
