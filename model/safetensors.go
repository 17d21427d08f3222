package model

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// DType is a safetensors element type.
type DType string

const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	U8   DType = "U8"
	F64  DType = "F64"
	I16  DType = "I16"
	I8   DType = "I8"
	Bool DType = "BOOL"
)

// Size is the number of bytes of one element, 0 for an unknown type.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16, I16:
		return 2
	case U8, I8, Bool:
		return 1
	}
	return 0
}

// IsFloat reports whether Float32 and EncodeFloat32 handle d.
func (d DType) IsFloat() bool { return d == F32 || d == F16 || d == BF16 }

// TensorInfo names a tensor, its element type and its shape.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
}

// NumElements is the product of the shape (1 for a scalar).
func (ti TensorInfo) NumElements() int {
	n := 1
	for _, d := range ti.Shape {
		n *= d
	}
	return n
}

// NumBytes is the size of the tensor's data.
func (ti TensorInfo) NumBytes() int { return ti.NumElements() * ti.DType.Size() }

// File names of a Hugging Face model's weights.
const (
	SafetensorsFile      = "model.safetensors"
	SafetensorsIndexFile = "model.safetensors.index.json"
)

// MaxHeaderBytes bounds a safetensors JSON header (the reference implementation's limit).
const MaxHeaderBytes = 100 << 20

// headerEntry is one tensor in a safetensors JSON header.
type headerEntry struct {
	DType       DType    `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// tensorRef locates a tensor inside one mapped file.
type tensorRef struct {
	info       TensorInfo
	file       *mappedFile
	begin, end int64 // absolute byte offsets in the file
}

type mappedFile struct {
	path string
	data []byte // the whole file, memory-mapped read-only
}

// Weights is a read-only view of a safetensors file or a sharded set. The files are memory-mapped,
// so tensor bytes are read from the page cache on demand and never copied unless converted.
type Weights struct {
	files    []*mappedFile
	tensors  map[string]tensorRef
	names    []string
	metadata map[string]string
}

// OpenWeights opens the weights of a Hugging Face model dir: model.safetensors, or the shards listed
// in model.safetensors.index.json (which wins when both exist). A path to a file opens that file.
func OpenWeights(dir string) (*Weights, error) {
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return OpenSafetensors(dir) // a single .safetensors file named directly
	}
	indexPath := filepath.Join(dir, SafetensorsIndexFile)
	if _, err := os.Stat(indexPath); err == nil {
		return openSharded(dir, indexPath)
	}
	single := filepath.Join(dir, SafetensorsFile)
	if _, err := os.Stat(single); err != nil {
		return nil, fmt.Errorf("open weights: no %s or %s in %s (pull a model or run medassist init first)",
			SafetensorsFile, SafetensorsIndexFile, dir)
	}
	return OpenSafetensors(single)
}

// OpenSafetensors opens one safetensors file.
func OpenSafetensors(path string) (*Weights, error) {
	w := &Weights{tensors: map[string]tensorRef{}}
	md, err := w.addFile(path)
	if err != nil {
		w.Close()
		return nil, err
	}
	w.metadata = md
	w.sortNames()
	return w, nil
}

// shardIndex is model.safetensors.index.json.
type shardIndex struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

func openSharded(dir, indexPath string) (*Weights, error) {
	b, err := os.ReadFile(indexPath)
	if err != nil {
		return nil, fmt.Errorf("open weights: %w", err)
	}
	var idx shardIndex
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // total_size stays an integer in Metadata
	if err := dec.Decode(&idx); err != nil {
		return nil, fmt.Errorf("open weights: %s: bad JSON: %w", indexPath, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("open weights: %s has an empty weight_map", indexPath)
	}
	shards := map[string]bool{}
	for _, f := range idx.WeightMap {
		if f == "" || filepath.Base(f) != f {
			return nil, fmt.Errorf("open weights: %s names shard %q; shards must be plain file names in the model dir", indexPath, f)
		}
		shards[f] = true
	}
	files := make([]string, 0, len(shards))
	for f := range shards {
		files = append(files, f)
	}
	sort.Strings(files)

	w := &Weights{tensors: map[string]tensorRef{}, metadata: map[string]string{}}
	for k, v := range idx.Metadata {
		w.metadata[k] = fmt.Sprint(v)
	}
	for _, f := range files {
		md, err := w.addFile(filepath.Join(dir, f))
		if err != nil {
			w.Close()
			return nil, err
		}
		for k, v := range md {
			if _, ok := w.metadata[k]; !ok {
				w.metadata[k] = v
			}
		}
	}
	for name, f := range idx.WeightMap {
		ref, ok := w.tensors[name]
		if !ok {
			w.Close()
			return nil, fmt.Errorf("open weights: %s lists %s in %s, but that shard does not hold it", indexPath, name, f)
		}
		if filepath.Base(ref.file.path) != f {
			w.Close()
			return nil, fmt.Errorf("open weights: %s lists %s in %s, but it is in %s", indexPath, name, f, filepath.Base(ref.file.path))
		}
	}
	if len(w.tensors) != len(idx.WeightMap) {
		w.Close()
		return nil, fmt.Errorf("open weights: shards hold %d tensors but %s lists %d", len(w.tensors), indexPath, len(idx.WeightMap))
	}
	w.sortNames()
	return w, nil
}

func (w *Weights) sortNames() {
	w.names = make([]string, 0, len(w.tensors))
	for n := range w.tensors {
		w.names = append(w.names, n)
	}
	sort.Strings(w.names)
}

// addFile maps path, validates its header and registers its tensors; it returns the file's metadata.
func (w *Weights) addFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open safetensors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open safetensors: %w", err)
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("safetensors %s: file is %d bytes, too short for a header (truncated download?)", path, size)
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("safetensors %s: file too large to map", path)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: mmap: %w", path, err)
	}
	mf := &mappedFile{path: path, data: data}
	w.files = append(w.files, mf)

	entries, md, dataStart, err := parseHeader(data)
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", path, err)
	}
	for name, e := range entries {
		if _, dup := w.tensors[name]; dup {
			return nil, fmt.Errorf("safetensors %s: tensor %s also appears in another shard", path, name)
		}
		w.tensors[name] = tensorRef{
			info:  TensorInfo{Name: name, DType: e.DType, Shape: e.Shape},
			file:  mf,
			begin: dataStart + e.DataOffsets[0],
			end:   dataStart + e.DataOffsets[1],
		}
	}
	return md, nil
}

// parseHeader validates a safetensors header against the file's bytes: the JSON, the dtypes, the
// sizes, and that the tensors tile the data area exactly (no overlap, no gap, nothing past the end).
func parseHeader(file []byte) (map[string]headerEntry, map[string]string, int64, error) {
	n := binary.LittleEndian.Uint64(file[:8])
	if n > MaxHeaderBytes {
		return nil, nil, 0, fmt.Errorf("header claims %d bytes, above the %d limit (not a safetensors file, or corrupt)", n, MaxHeaderBytes)
	}
	if 8+n > uint64(len(file)) {
		return nil, nil, 0, fmt.Errorf("header claims %d bytes but the file has %d after the length (truncated file)", n, len(file)-8)
	}
	dataStart := int64(8 + n)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(file[8:dataStart], &raw); err != nil {
		return nil, nil, 0, fmt.Errorf("bad JSON header: %w", err)
	}
	var md map[string]string
	entries := make(map[string]headerEntry, len(raw))
	for name, v := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(v, &md); err != nil {
				return nil, nil, 0, fmt.Errorf("bad __metadata__ (must map strings to strings): %w", err)
			}
			continue
		}
		var e headerEntry
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, nil, 0, fmt.Errorf("bad header entry for %s: %w", name, err)
		}
		ti := TensorInfo{Name: name, DType: e.DType, Shape: e.Shape}
		if e.DType.Size() == 0 {
			return nil, nil, 0, fmt.Errorf("tensor %s: unsupported dtype %q", name, e.DType)
		}
		elems := int64(1)
		for _, d := range e.Shape {
			if d < 0 {
				return nil, nil, 0, fmt.Errorf("tensor %s: negative dimension in shape %v", name, e.Shape)
			}
			if d > 0 && elems > int64(len(file))/int64(d) {
				return nil, nil, 0, fmt.Errorf("tensor %s: shape %v is larger than the file (truncated file?)", name, e.Shape)
			}
			elems *= int64(d)
		}
		b, end := e.DataOffsets[0], e.DataOffsets[1]
		if b < 0 || end < b {
			return nil, nil, 0, fmt.Errorf("tensor %s: bad data_offsets [%d, %d]", name, b, end)
		}
		if end-b != int64(ti.NumBytes()) {
			return nil, nil, 0, fmt.Errorf("tensor %s: data_offsets [%d, %d] hold %d bytes but %s%v needs %d",
				name, b, end, end-b, e.DType, e.Shape, ti.NumBytes())
		}
		entries[name] = e
	}
	return entries, md, dataStart, checkTiling(entries, int64(len(file))-dataStart)
}

// checkTiling requires the tensors to cover [0, dataLen) back to back, as every writer lays them out.
func checkTiling(entries map[string]headerEntry, dataLen int64) error {
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := entries[names[i]].DataOffsets, entries[names[j]].DataOffsets
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		return a[1] < b[1]
	})
	var pos int64
	for i, n := range names {
		o := entries[n].DataOffsets
		if o[0] < pos {
			return fmt.Errorf("tensor %s: data_offsets [%d, %d] overlap %s (ends at %d)", n, o[0], o[1], names[i-1], pos)
		}
		if o[0] > pos {
			return fmt.Errorf("tensor %s: gap of %d bytes before data_offsets [%d, %d]", n, o[0]-pos, o[0], o[1])
		}
		pos = o[1]
	}
	if pos > dataLen {
		return fmt.Errorf("tensors need %d data bytes but the file holds %d (truncated file)", pos, dataLen)
	}
	if pos < dataLen {
		return fmt.Errorf("%d bytes after the last tensor (corrupt file)", dataLen-pos)
	}
	return nil
}

// Names lists every tensor, sorted.
func (w *Weights) Names() []string { return append([]string(nil), w.names...) }

// Info describes a tensor.
func (w *Weights) Info(name string) (TensorInfo, bool) {
	r, ok := w.tensors[name]
	if !ok {
		return TensorInfo{}, false
	}
	ti := r.info
	ti.Shape = append([]int(nil), ti.Shape...)
	return ti, true
}

// Bytes is the tensor's raw little-endian data: a view into the mapped file, valid until Close.
// It must not be written to.
func (w *Weights) Bytes(name string) ([]byte, error) {
	r, ok := w.tensors[name]
	if !ok {
		return nil, fmt.Errorf("tensor %s not found in the weights", name)
	}
	if r.file.data == nil {
		return nil, fmt.Errorf("tensor %s: weights are closed", name)
	}
	return r.file.data[r.begin:r.end:r.end], nil
}

// Float32 returns a converted copy of an F32, F16 or BF16 tensor.
func (w *Weights) Float32(name string) ([]float32, error) {
	r, ok := w.tensors[name]
	if !ok {
		return nil, fmt.Errorf("tensor %s not found in the weights", name)
	}
	if !r.info.DType.IsFloat() {
		return nil, fmt.Errorf("tensor %s is %s, not a float tensor (F32, F16 or BF16)", name, r.info.DType)
	}
	b, err := w.Bytes(name)
	if err != nil {
		return nil, err
	}
	out := DecodeFloat32(r.info.DType, b)
	w.Release(name)
	return out, nil
}

// Release tells the kernel the tensor's mapped pages are not needed for now, so that a caller who
// copied a tensor into its own memory does not also keep the file's pages resident (two copies).
// The bytes stay readable: a later access reads them back from the page cache or the disk.
// Float32 releases the tensor it converted.
func (w *Weights) Release(name string) {
	r, ok := w.tensors[name]
	if !ok || r.file.data == nil {
		return
	}
	page := int64(os.Getpagesize())
	lo := (r.begin + page - 1) / page * page // whole pages inside the tensor only
	hi := r.end / page * page
	if r.end == int64(len(r.file.data)) {
		hi = r.end // the file's last page belongs to this tensor alone
	}
	if hi > lo {
		_ = syscall.Madvise(r.file.data[lo:hi], syscall.MADV_DONTNEED)
	}
}

// Metadata is the __metadata__ of the file (for a sharded set: the index's metadata, then the shards').
func (w *Weights) Metadata() map[string]string {
	out := make(map[string]string, len(w.metadata))
	for k, v := range w.metadata {
		out[k] = v
	}
	return out
}

// Close unmaps the files; slices from Bytes become invalid.
func (w *Weights) Close() error {
	var errs []error
	for _, f := range w.files {
		if f.data != nil {
			if err := syscall.Munmap(f.data); err != nil {
				errs = append(errs, fmt.Errorf("unmap %s: %w", f.path, err))
			}
			f.data = nil
		}
	}
	w.files = nil
	return errors.Join(errs...)
}

// SafetensorsWriter streams a safetensors file: the header is written from the infos first, then
// each tensor's data in the same order, so no more than one tensor need be in memory.
type SafetensorsWriter struct {
	path  string
	tmp   string
	f     *os.File
	bw    *bufio.Writer
	infos []TensorInfo
	next  int
	err   error
}

// CreateSafetensors starts writing path (through path.tmp, renamed on Close).
func CreateSafetensors(path string, infos []TensorInfo, metadata map[string]string) (*SafetensorsWriter, error) {
	header, err := encodeHeader(infos, metadata)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return nil, fmt.Errorf("write safetensors: %w", err)
	}
	sw := &SafetensorsWriter{path: path, tmp: tmp, f: f, bw: bufio.NewWriterSize(f, 1<<20), infos: infos}
	if _, err := sw.bw.Write(header); err != nil {
		sw.abort()
		return nil, fmt.Errorf("write %s: %w", tmp, err)
	}
	return sw, nil
}

// encodeHeader builds the 8-byte length and the JSON header, padded with spaces to 8 bytes.
func encodeHeader(infos []TensorInfo, metadata map[string]string) ([]byte, error) {
	fields := make(map[string]any, len(infos)+1)
	if len(metadata) > 0 {
		fields["__metadata__"] = metadata
	}
	var off int64
	for _, ti := range infos {
		if ti.DType.Size() == 0 {
			return nil, fmt.Errorf("tensor %s: unsupported dtype %q", ti.Name, ti.DType)
		}
		if ti.Name == "" || ti.Name == "__metadata__" {
			return nil, fmt.Errorf("bad tensor name %q", ti.Name)
		}
		if _, dup := fields[ti.Name]; dup {
			return nil, fmt.Errorf("tensor %s listed twice", ti.Name)
		}
		shape := ti.Shape
		if shape == nil {
			shape = []int{}
		}
		n := int64(ti.NumBytes())
		fields[ti.Name] = headerEntry{DType: ti.DType, Shape: shape, DataOffsets: [2]int64{off, off + n}}
		off += n
	}
	js, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	for len(js)%8 != 0 {
		js = append(js, ' ')
	}
	out := make([]byte, 8, 8+len(js))
	binary.LittleEndian.PutUint64(out, uint64(len(js)))
	return append(out, js...), nil
}

// Write appends the next tensor's data; name must be the next one in the infos' order.
func (sw *SafetensorsWriter) Write(name string, data []byte) error {
	if sw.err != nil {
		return sw.err
	}
	if sw.next >= len(sw.infos) {
		return fmt.Errorf("write %s: tensor %s: all %d tensors already written", sw.path, name, len(sw.infos))
	}
	ti := sw.infos[sw.next]
	if ti.Name != name {
		return fmt.Errorf("write %s: got tensor %s, expected %s (write in the order of the infos)", sw.path, name, ti.Name)
	}
	if len(data) != ti.NumBytes() {
		return fmt.Errorf("write %s: tensor %s has %d bytes, %s%v needs %d", sw.path, name, len(data), ti.DType, ti.Shape, ti.NumBytes())
	}
	if _, err := sw.bw.Write(data); err != nil {
		sw.err = fmt.Errorf("write %s: %w", sw.tmp, err)
		return sw.err
	}
	sw.next++
	return nil
}

// Close finishes the file and renames it into place; it fails when a tensor was not written.
func (sw *SafetensorsWriter) Close() error {
	if sw.f == nil {
		return sw.err
	}
	if sw.err == nil && sw.next < len(sw.infos) {
		sw.err = fmt.Errorf("write %s: only %d of %d tensors written (next: %s)", sw.path, sw.next, len(sw.infos), sw.infos[sw.next].Name)
	}
	if sw.err != nil {
		sw.abort()
		return sw.err
	}
	err := sw.bw.Flush()
	if err == nil {
		err = sw.f.Sync()
	}
	if cerr := sw.f.Close(); err == nil {
		err = cerr
	}
	sw.f = nil
	if err == nil {
		err = os.Rename(sw.tmp, sw.path)
	}
	if err != nil {
		os.Remove(sw.tmp)
		sw.err = fmt.Errorf("write %s: %w", sw.path, err)
	}
	return sw.err
}

func (sw *SafetensorsWriter) abort() {
	if sw.f != nil {
		sw.f.Close()
		sw.f = nil
	}
	os.Remove(sw.tmp)
	if sw.err == nil {
		sw.err = fmt.Errorf("write %s: aborted", sw.path)
	}
}

// Tensor is a tensor held in memory.
type Tensor struct {
	TensorInfo
	Data []byte
}

// WriteSafetensors writes tensors to path in the given order.
func WriteSafetensors(path string, tensors []Tensor, metadata map[string]string) error {
	infos := make([]TensorInfo, len(tensors))
	for i, t := range tensors {
		infos[i] = t.TensorInfo
	}
	sw, err := CreateSafetensors(path, infos, metadata)
	if err != nil {
		return err
	}
	for _, t := range tensors {
		if err := sw.Write(t.Name, t.Data); err != nil {
			sw.abort()
			return err
		}
	}
	return sw.Close()
}

// DefaultMaxShardBytes is the largest shard medassist writes by default: 2 GB in Hugging Face's
// decimal units (save_pretrained's max_shard_size="2GB").
const DefaultMaxShardBytes int64 = 2_000_000_000

// WeightsMetadata is the __metadata__ Hugging Face loaders expect on model weights.
var WeightsMetadata = map[string]string{"format": "pt"}

// WriteModelWeights writes a model's weights into dir: one model.safetensors when they fit in
// maxShardBytes (≤ 0: never shard), else model-0000i-of-0000n.safetensors shards of at most
// maxShardBytes each (a larger tensor gets a shard of its own) plus model.safetensors.index.json.
// data is called once per tensor, in the order of infos; its result is written and dropped.
// Weight files left in dir by an earlier run are removed.
func WriteModelWeights(dir string, infos []TensorInfo, maxShardBytes int64, data func(name string) ([]byte, error)) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write weights: %w", err)
	}
	if err := removeWeightFiles(dir); err != nil {
		return err
	}
	shards := planShards(infos, maxShardBytes)
	var total int64
	for _, ti := range infos {
		total += int64(ti.NumBytes())
	}
	if len(shards) <= 1 {
		return writeShard(filepath.Join(dir, SafetensorsFile), infos, data)
	}
	idx := shardIndex{Metadata: map[string]any{"total_size": total}, WeightMap: map[string]string{}}
	for i, sh := range shards {
		name := ShardFileName(i+1, len(shards))
		if err := writeShard(filepath.Join(dir, name), sh, data); err != nil {
			return err
		}
		for _, ti := range sh {
			idx.WeightMap[ti.Name] = name
		}
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, SafetensorsIndexFile), append(b, '\n'))
}

// ShardFileName is Hugging Face's shard name, model-00001-of-00003.safetensors.
func ShardFileName(i, n int) string { return fmt.Sprintf("model-%05d-of-%05d.safetensors", i, n) }

func planShards(infos []TensorInfo, maxShardBytes int64) [][]TensorInfo {
	var shards [][]TensorInfo
	var cur []TensorInfo
	var size int64
	for _, ti := range infos {
		n := int64(ti.NumBytes())
		if maxShardBytes > 0 && len(cur) > 0 && size+n > maxShardBytes {
			shards = append(shards, cur)
			cur, size = nil, 0
		}
		cur = append(cur, ti)
		size += n
	}
	if len(cur) > 0 || len(shards) == 0 {
		shards = append(shards, cur)
	}
	return shards
}

func writeShard(path string, infos []TensorInfo, data func(string) ([]byte, error)) error {
	sw, err := CreateSafetensors(path, infos, WeightsMetadata)
	if err != nil {
		return err
	}
	for _, ti := range infos {
		b, err := data(ti.Name)
		if err != nil {
			sw.abort()
			return fmt.Errorf("write weights: tensor %s: %w", ti.Name, err)
		}
		if err := sw.Write(ti.Name, b); err != nil {
			sw.abort()
			return err
		}
	}
	return sw.Close()
}

func removeWeightFiles(dir string) error {
	matches, err := filepath.Glob(filepath.Join(dir, "model-*-of-*.safetensors"))
	if err != nil {
		return err
	}
	matches = append(matches, filepath.Join(dir, SafetensorsFile), filepath.Join(dir, SafetensorsIndexFile))
	for _, m := range matches {
		if err := os.Remove(m); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("write weights: remove old %s: %w", m, err)
		}
	}
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
