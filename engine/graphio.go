package engine

import (
	"errors"
	"fmt"
	"io"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
)

// ONNX TensorProto element types the engine handles.
const (
	elemFloat   int32 = 1
	elemInt64   int32 = 7
	elemFloat16 int32 = 10
)

func elemName(t int32) string {
	switch t {
	case elemFloat:
		return "float32"
	case elemFloat16:
		return "float16"
	case elemInt64:
		return "int64"
	}
	return fmt.Sprintf("element type %d", t)
}

// valueInfo is one graph input or output: its name, element type and dims (a number or a name).
type valueInfo struct {
	Name string
	Elem int32
	Dims []string
}

// graphIO is the declared inputs and outputs of an ONNX model.
type graphIO struct {
	Inputs, Outputs map[string]valueInfo
}

// Field numbers of onnx.proto messages read here.
const (
	modelGraph      = 7  // ModelProto.graph
	graphInput      = 11 // GraphProto.input
	graphOutput     = 12 // GraphProto.output
	valueInfoName   = 1  // ValueInfoProto.name
	valueInfoType   = 2  // ValueInfoProto.type
	typeTensor      = 1  // TypeProto.tensor_type
	tensorElemType  = 1  // TypeProto.Tensor.elem_type
	tensorShape     = 2  // TypeProto.Tensor.shape
	shapeDim        = 1  // TensorShapeProto.dim
	dimValue        = 1  // Dimension.dim_value
	dimParam        = 2  // Dimension.dim_param
	maxValueInfoLen = 1 << 20
)

// readGraphIO reads the graph inputs and outputs of an ONNX file without loading its weights: the
// protobuf is walked with seeks, so inline initializers (hundreds of MB for a quantized model) are
// skipped rather than read.
func readGraphIO(path string) (*graphIO, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	gio := &graphIO{Inputs: map[string]valueInfo{}, Outputs: map[string]valueInfo{}}
	top := &pbScanner{r: f, end: st.Size()}
	for !top.done() {
		num, typ, err := top.field()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if num != modelGraph || typ != protowire.BytesType {
			if err := top.skip(typ); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			continue
		}
		n, err := top.varint()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		graph := &pbScanner{r: f, off: top.off, end: top.off + int64(n)}
		if err := readGraph(graph, gio); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		top.off = graph.end
	}
	if len(gio.Inputs) == 0 {
		return nil, fmt.Errorf("%s: no graph inputs found (is this an ONNX model?)", path)
	}
	return gio, nil
}

func readGraph(g *pbScanner, gio *graphIO) error {
	for !g.done() {
		num, typ, err := g.field()
		if err != nil {
			return err
		}
		if (num != graphInput && num != graphOutput) || typ != protowire.BytesType {
			if err := g.skip(typ); err != nil {
				return err
			}
			continue
		}
		b, err := g.bytes(maxValueInfoLen)
		if err != nil {
			return err
		}
		vi, err := parseValueInfo(b)
		if err != nil {
			return err
		}
		if num == graphInput {
			gio.Inputs[vi.Name] = vi
		} else {
			gio.Outputs[vi.Name] = vi
		}
	}
	return nil
}

var errProto = errors.New("malformed ONNX protobuf")

// parseValueInfo decodes a ValueInfoProto's name, element type and shape.
func parseValueInfo(b []byte) (valueInfo, error) {
	var vi valueInfo
	err := eachField(b, func(num protowire.Number, v []byte, x uint64) error {
		switch num {
		case valueInfoName:
			vi.Name = string(v)
		case valueInfoType:
			return eachField(v, func(num protowire.Number, v []byte, _ uint64) error {
				if num != typeTensor {
					return nil
				}
				return eachField(v, func(num protowire.Number, v []byte, x uint64) error {
					switch num {
					case tensorElemType:
						vi.Elem = int32(x)
					case tensorShape:
						return eachField(v, func(num protowire.Number, v []byte, _ uint64) error {
							if num == shapeDim {
								vi.Dims = append(vi.Dims, parseDim(v))
							}
							return nil
						})
					}
					return nil
				})
			})
		}
		return nil
	})
	return vi, err
}

func parseDim(b []byte) string {
	d := "?"
	_ = eachField(b, func(num protowire.Number, v []byte, x uint64) error {
		switch num {
		case dimValue:
			d = fmt.Sprint(int64(x))
		case dimParam:
			d = string(v)
		}
		return nil
	})
	return d
}

// eachField calls fn with every field of an in-memory message: v for length-delimited fields, x for
// varints.
func eachField(b []byte, fn func(num protowire.Number, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errProto
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errProto
		}
		b = b[n:]
		if err := fn(num, v, x); err != nil {
			return err
		}
	}
	return nil
}

// pbScanner walks the fields of a protobuf message stored in a file between off and end.
type pbScanner struct {
	r        io.ReaderAt
	off, end int64
	buf      [binaryVarintMax]byte
}

const binaryVarintMax = 10

func (s *pbScanner) done() bool { return s.off >= s.end }

func (s *pbScanner) varint() (uint64, error) {
	n, err := s.r.ReadAt(s.buf[:min(int64(len(s.buf)), s.end-s.off)], s.off)
	if n == 0 && err != nil {
		return 0, fmt.Errorf("%w: %v", errProto, err)
	}
	v, k := protowire.ConsumeVarint(s.buf[:n])
	if k < 0 {
		return 0, errProto
	}
	s.off += int64(k)
	return v, nil
}

func (s *pbScanner) field() (protowire.Number, protowire.Type, error) {
	tag, err := s.varint()
	if err != nil {
		return 0, 0, err
	}
	num, typ := protowire.DecodeTag(tag)
	if num <= 0 {
		return 0, 0, errProto
	}
	return num, typ, nil
}

func (s *pbScanner) skip(typ protowire.Type) error {
	switch typ {
	case protowire.VarintType:
		_, err := s.varint()
		return err
	case protowire.Fixed32Type:
		s.off += 4
	case protowire.Fixed64Type:
		s.off += 8
	case protowire.BytesType:
		n, err := s.varint()
		if err != nil {
			return err
		}
		s.off += int64(n)
	default:
		return fmt.Errorf("%w: unsupported wire type %d", errProto, typ)
	}
	if s.off > s.end {
		return errProto
	}
	return nil
}

func (s *pbScanner) bytes(limit int) ([]byte, error) {
	n, err := s.varint()
	if err != nil {
		return nil, err
	}
	if n > uint64(limit) || s.off+int64(n) > s.end {
		return nil, errProto
	}
	b := make([]byte, n)
	if _, err := s.r.ReadAt(b, s.off); err != nil {
		return nil, fmt.Errorf("%w: %v", errProto, err)
	}
	s.off += int64(n)
	return b, nil
}
