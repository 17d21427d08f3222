// Package encoder turns texts into sentence embeddings with a sentence-transformers BERT model
// (all-MiniLM-L6-v2: 6 layers, 384 dimensions) run in-process by ONNX Runtime. It reproduces
// SentenceTransformer.encode: the model's WordPiece tokenizer with [CLS]/[SEP] and truncation
// to max_seq_length, the encoder, mean pooling under the attention mask and L2 normalisation
// (the last two inside the ONNX graph, see export/bert.go).
//
// Open takes a Hugging Face / sentence-transformers model dir (the graph is built in memory from
// model.safetensors) or a dir written by `medassist export` (model.onnx is loaded).
package encoder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/medassist/medassist/engine"
	"github.com/medassist/medassist/export"
	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/tokenizer"
)

// DefaultBatchSize is the most texts one ONNX Runtime run embeds when Options.BatchSize is 0.
// On 300 messages of 5–45 words (2 cores), batches of 8 needed 8–10 ms of CPU per message, 32
// about the same, 128 about 13 ms (longer batches pad more), one text per run 10.5–11 ms.
const DefaultBatchSize = 8

// Options configure Open.
type Options struct {
	// ORTLib is the ONNX Runtime shared library; "" resolves it as engine.ResolveORTLib does
	// ($MEDASSIST_ORT_LIB, else .cache/native/lib/libonnxruntime.so).
	ORTLib string
	// Threads is ONNX Runtime's intra-op thread count; 0 uses GOMAXPROCS (one per CPU core the
	// process may use, container limits included).
	Threads int
	// BatchSize is the most texts per ONNX Runtime run (texts of similar length are batched
	// together, padded to the longest); 0 uses DefaultBatchSize.
	BatchSize int
}

// Encoder embeds texts. It is safe for concurrent use; Close it once when done.
type Encoder struct {
	tok            *tokenizer.Tokenizer
	prefix, suffix []int // [CLS] and [SEP]
	maxTokens      int   // max_seq_length, special tokens included
	dim            int
	batch          int

	mu     sync.RWMutex // held for reading while a run is in flight, for writing by Close
	sess   *ort.DynamicAdvancedSession
	closed bool
}

// ErrClosed is returned by calls on a closed Encoder.
var ErrClosed = errors.New("encoder is closed")

// graph I/O, in the order the session takes them.
var (
	inputNames  = []string{model.OnnxInputIDs, model.OnnxAttentionMask, model.OnnxTokenTypeIDs}
	outputNames = []string{model.OnnxSentenceEmbedding}
)

// Open loads the sentence-transformers model in dir: its tokenizer, its pooling configuration,
// and an ONNX Runtime session over dir/model.onnx when present, else over the graph built in
// memory from dir/model.safetensors.
func Open(dir string, opts Options) (*Encoder, error) {
	if opts.Threads < 0 || opts.BatchSize < 0 {
		return nil, fmt.Errorf("encoder: threads (%d) and batch size (%d) must be >= 0 (0: default)", opts.Threads, opts.BatchSize)
	}
	st, err := model.LoadSentenceConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("encoder: %w (a sentence-transformers model dir such as all-MiniLM-L6-v2 is expected)", err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("encoder: %w", err)
	}
	e := &Encoder{tok: tok, maxTokens: st.MaxSeqLength, dim: st.Dim, batch: opts.BatchSize}
	e.prefix, e.suffix = tok.SpecialAround()
	if e.batch == 0 {
		e.batch = DefaultBatchSize
	}
	if e.maxTokens <= len(e.prefix)+len(e.suffix) {
		tok.Close()
		return nil, fmt.Errorf("encoder: max_seq_length %d leaves no room for text", e.maxTokens)
	}
	if e.sess, err = newSession(dir, opts); err != nil {
		tok.Close()
		return nil, fmt.Errorf("encoder: %w", err)
	}
	return e, nil
}

// newSession opens the ONNX Runtime session on the exported or in-memory graph.
func newSession(dir string, opts Options) (*ort.DynamicAdvancedSession, error) {
	lib, err := engine.ResolveORTLib(opts.ORTLib)
	if err != nil {
		return nil, err
	}
	if err := engine.InitRuntime(lib); err != nil {
		return nil, err
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	threads := opts.Threads
	if threads == 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	// Spinning off: the guard shares its cores with the server and the decoder (see engine); with
	// ONNX Runtime's default spinning one 64-token call cost 31–35 ms of CPU instead of 18.
	if err := errors.Join(
		so.SetIntraOpNumThreads(threads),
		so.SetInterOpNumThreads(1),
		so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"),
		so.AddSessionConfigEntry("session.inter_op.allow_spinning", "0"),
	); err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	path := filepath.Join(dir, model.OnnxModelFile)
	if _, err := os.Stat(path); err == nil {
		s, err := ort.NewDynamicAdvancedSession(path, inputNames, outputNames, so)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w (re-export the model dir with medassist export)", path, err)
		}
		return s, nil
	}
	onnx, err := export.EncoderModel(dir, export.DefaultOptions())
	if err != nil {
		return nil, err
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(onnx, inputNames, outputNames, so)
	// ONNX Runtime has copied the weights: return the serialized graph (86 MiB) and the C heap ONNX
	// Runtime freed to the OS (the resident set after Open went from 273 to 164 MB).
	onnx = nil
	debug.FreeOSMemory()
	engine.ReleaseFreedMemory()
	return s, err
}

// Dim is the length of every embedding (384 for all-MiniLM-L6-v2).
func (e *Encoder) Dim() int { return e.dim }

// MaxTokens is the longest input the model reads, [CLS] and [SEP] included; longer texts are
// truncated (as sentence-transformers does).
func (e *Encoder) MaxTokens() int { return e.maxTokens }

// Tokenize returns the ids the model reads for text: [CLS], the text's WordPiece ids truncated
// to fit MaxTokens, [SEP]. Special-token strings in text ("[SEP]") are read as those tokens, as
// sentence-transformers does. It returns nil once the encoder is closed.
func (e *Encoder) Tokenize(text string) []int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil
	}
	return e.tokenize(text)
}

func (e *Encoder) tokenize(text string) []int {
	ids := e.tok.Encode(text, false)
	ids = ids[:min(len(ids), e.maxTokens-len(e.prefix)-len(e.suffix))]
	out := make([]int, 0, len(e.prefix)+len(ids)+len(e.suffix))
	out = append(append(append(out, e.prefix...), ids...), e.suffix...)
	return out
}

// Embed returns one embedding per text, in order, L2-normalised when the model has a Normalize
// module (all-MiniLM-L6-v2 has). Texts are run in batches of similar length (Options.BatchSize),
// each padded to its longest text under the attention mask.
func (e *Encoder) Embed(texts []string) ([][]float32, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, ErrClosed
	}
	ids := make([][]int, len(texts))
	for i, t := range texts {
		ids[i] = e.tokenize(t)
	}
	return e.embed(ids)
}

// EmbedIDs is Embed for texts already tokenized by Tokenize.
func (e *Encoder) EmbedIDs(ids [][]int) ([][]float32, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, ErrClosed
	}
	return e.embed(ids)
}

// embed runs the batches; the caller holds mu for reading.
func (e *Encoder) embed(ids [][]int) ([][]float32, error) {
	order := make([]int, len(ids))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return len(ids[a]) - len(ids[b]) })
	out := make([][]float32, len(ids))
	for start := 0; start < len(order); start += e.batch {
		chunk := order[start:min(start+e.batch, len(order))]
		rows := make([][]int, len(chunk))
		for j, i := range chunk {
			rows[j] = ids[i]
		}
		vecs, err := e.run(rows)
		if err != nil {
			return nil, err
		}
		for j, i := range chunk {
			out[i] = vecs[j]
		}
	}
	return out, nil
}

// run embeds one batch: the rows padded to the longest, attention mask 1 on tokens.
func (e *Encoder) run(rows [][]int) ([][]float32, error) {
	n, s := len(rows), 0
	for _, r := range rows {
		if len(r) == 0 || len(r) > e.maxTokens {
			return nil, fmt.Errorf("encoder: a row of %d ids (want 1 to %d)", len(r), e.maxTokens)
		}
		s = max(s, len(r))
	}
	idData := make([]int64, n*s)
	maskData := make([]int64, n*s)
	for j, r := range rows {
		for k, id := range r {
			idData[j*s+k] = int64(id)
			maskData[j*s+k] = 1
		}
	}
	shape := ort.NewShape(int64(n), int64(s))
	var vals []ort.Value
	defer func() {
		for _, v := range vals {
			v.Destroy()
		}
	}()
	for _, data := range [][]int64{idData, maskData, make([]int64, n*s)} {
		t, err := ort.NewTensor(shape, data)
		if err != nil {
			return nil, fmt.Errorf("encoder: %w", err)
		}
		vals = append(vals, t)
	}
	outT, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(n), int64(e.dim)))
	if err != nil {
		return nil, fmt.Errorf("encoder: %w", err)
	}
	vals = append(vals, outT)
	if err := e.sess.Run(vals[:3], vals[3:]); err != nil {
		return nil, fmt.Errorf("encoder: %w", err)
	}
	flat := slices.Clone(outT.GetData())
	vecs := make([][]float32, n)
	for j := range vecs {
		vecs[j] = flat[j*e.dim : (j+1)*e.dim : (j+1)*e.dim]
	}
	return vecs, nil
}

// Close releases the session and the tokenizer. It waits for runs in flight; later calls fail
// with ErrClosed.
func (e *Encoder) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	return errors.Join(e.sess.Destroy(), e.tok.Close())
}
