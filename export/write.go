package export

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/medassist/medassist/export/onnxpb"
	"github.com/medassist/medassist/model"
)

// File names inside an export dir.
const (
	ModelFile        = model.OnnxModelFile
	ExternalDataFile = model.OnnxDataFile
)

const (
	irVersion = 8 // the IR of onnx.proto (ONNX 1.10+); opset 17 needs IR ≥ 8
	// inlineLimit keeps tensors smaller than this in model.onnx even with external data (the
	// default of onnx.save's size_threshold).
	inlineLimit = 1024
	// dataAlign aligns each tensor in the data file to a page, so ONNX Runtime can map it.
	dataAlign = 4096
)

// writeStats is what writeModel wrote.
type writeStats struct {
	ModelBytes, DataBytes int64
	Initializers          int
}

// writeModel serializes g to dir/model.onnx. With external set, tensors of inlineLimit bytes or
// more are streamed one at a time into dir/model.onnx.data and model.onnx only references them;
// otherwise every tensor is inlined (the protobuf format limits the whole file to 2 GB).
// progress, when set, is called with the number of tensor bytes done so far.
func writeModel(ctx context.Context, g *graph, dir string, external bool, ir int64, progress func(int64)) (writeStats, error) {
	var st writeStats
	modelPath := filepath.Join(dir, ModelFile)
	dataPath := filepath.Join(dir, ExternalDataFile)
	var data *dataWriter
	if external {
		var err error
		if data, err = createDataWriter(dataPath + ".tmp"); err != nil {
			return st, err
		}
		defer data.abort()
	}
	var done int64
	inits := make([]*onnxpb.TensorProto, 0, len(g.inits))
	for _, in := range g.inits {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		b, err := initData(in)
		if err != nil {
			return st, err
		}
		t := &onnxpb.TensorProto{Name: proto.String(in.Name), Dims: in.Dims, DataType: proto.Int32(int32(in.DType))}
		if data != nil && len(b) >= inlineLimit {
			off, err := data.write(b)
			if err != nil {
				return st, err
			}
			t.DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
			t.ExternalData = []*onnxpb.StringStringEntryProto{
				{Key: proto.String("location"), Value: proto.String(ExternalDataFile)},
				{Key: proto.String("offset"), Value: proto.String(strconv.FormatInt(off, 10))},
				{Key: proto.String("length"), Value: proto.String(strconv.Itoa(len(b)))},
			}
			if in.Done != nil {
				in.Done()
			}
		} else {
			t.RawData = b
		}
		inits = append(inits, t)
		done += int64(len(b))
		if progress != nil {
			progress(done)
		}
	}
	m := modelProto(g, inits, ir)
	out, err := proto.Marshal(m)
	if err != nil {
		return st, fmt.Errorf("encode %s: %w (weights above 2 GB need external data)", ModelFile, err)
	}
	if data != nil {
		if st.DataBytes, err = data.finish(dataPath); err != nil {
			return st, err
		}
	} else if err := os.Remove(dataPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("remove stale %s: %w", dataPath, err)
	}
	if err := writeFileAtomic(modelPath, out); err != nil {
		return st, err
	}
	st.ModelBytes, st.Initializers = int64(len(out)), len(inits)
	return st, nil
}

// initData returns the bytes of in, checked against its type and shape.
func initData(in *Initializer) ([]byte, error) {
	b, err := in.Data()
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", in.Name, err)
	}
	if int64(len(b)) != in.Bytes() {
		return nil, fmt.Errorf("tensor %s: %d bytes of data for %v %v (%d bytes)", in.Name, len(b), in.DType, in.Dims, in.Bytes())
	}
	return b, nil
}

// modelProto assembles the ModelProto around the graph.
func modelProto(g *graph, inits []*onnxpb.TensorProto, ir int64) *onnxpb.ModelProto {
	var opsets []*onnxpb.OperatorSetIdProto
	for _, domain := range []string{onnxDomain, microsoftDomain} {
		if v, ok := g.opsets[domain]; ok {
			opsets = append(opsets, &onnxpb.OperatorSetIdProto{Domain: proto.String(domain), Version: proto.Int64(v)})
		}
	}
	return &onnxpb.ModelProto{
		IrVersion:    proto.Int64(ir),
		OpsetImport:  opsets,
		ProducerName: proto.String("medassist"),
		Graph: &onnxpb.GraphProto{
			Name:        proto.String(g.name),
			Node:        g.nodes,
			Initializer: inits,
			Input:       g.inputs,
			Output:      g.outputs,
		},
	}
}

// dataWriter appends page-aligned tensors to the external data file.
type dataWriter struct {
	path string
	f    *os.File
	bw   *bufio.Writer
	off  int64
}

func createDataWriter(path string) (*dataWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &dataWriter{path: path, f: f, bw: bufio.NewWriterSize(f, 4<<20)}, nil
}

// write pads to the next aligned offset, writes b and returns b's offset.
func (d *dataWriter) write(b []byte) (int64, error) {
	if pad := (dataAlign - d.off%dataAlign) % dataAlign; pad > 0 {
		if _, err := d.bw.Write(make([]byte, pad)); err != nil {
			return 0, fmt.Errorf("write %s: %w", d.path, err)
		}
		d.off += pad
	}
	off := d.off
	if _, err := d.bw.Write(b); err != nil {
		return 0, fmt.Errorf("write %s: %w (is the disk full?)", d.path, err)
	}
	d.off += int64(len(b))
	return off, nil
}

// finish flushes, syncs and renames the file to final.
func (d *dataWriter) finish(final string) (int64, error) {
	err := d.bw.Flush()
	if err == nil {
		err = d.f.Sync()
	}
	if cerr := d.f.Close(); err == nil {
		err = cerr
	}
	d.f = nil
	if err == nil {
		err = os.Rename(d.path, final)
	}
	if err != nil {
		os.Remove(d.path)
		return 0, fmt.Errorf("write %s: %w", final, err)
	}
	return d.off, nil
}

// abort removes a file that was not finished.
func (d *dataWriter) abort() {
	if d.f != nil {
		d.f.Close()
		d.f = nil
		os.Remove(d.path)
	}
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
