package guard

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// EmbeddingCache remembers embeddings by text in a file, so that training and the tests that embed
// the whole corpus do it once per encoder. It wraps an Embedder; Save writes what was added.
type EmbeddingCache struct {
	emb  Embedder
	path string

	mu    sync.Mutex
	m     map[[32]byte][]float32
	added int
}

// DefaultCachePath is the cache file for the encoder in dir: in the user's cache folder, named
// after the folder's path and its weights' size and time (a changed model gets a new file).
func DefaultCachePath(dir string) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	abs, _ := filepath.Abs(dir)
	fmt.Fprintln(h, abs)
	for _, name := range []string{"model.safetensors", "model.onnx", "tokenizer.json"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err == nil {
			fmt.Fprintln(h, name, st.Size(), st.ModTime().UnixNano())
		}
	}
	return filepath.Join(base, "medassist", "guard-embeddings", fmt.Sprintf("%x.bin", h.Sum(nil)[:12])), nil
}

// NewEmbeddingCache wraps emb with the cache file at path (read when it exists).
func NewEmbeddingCache(emb Embedder, path string) (*EmbeddingCache, error) {
	c := &EmbeddingCache{emb: emb, path: path, m: map[[32]byte][]float32{}}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	dim := emb.Dim()
	for {
		var key [32]byte
		if _, err := io.ReadFull(r, key[:]); err == io.EOF {
			return c, nil
		} else if err != nil {
			return nil, fmt.Errorf("embedding cache %s: %w (delete it)", path, err)
		}
		v := make([]float32, dim)
		if err := binary.Read(r, binary.LittleEndian, v); err != nil {
			return nil, fmt.Errorf("embedding cache %s: %w (delete it)", path, err)
		}
		c.m[key] = v
	}
}

// Dim is the wrapped embedder's.
func (c *EmbeddingCache) Dim() int { return c.emb.Dim() }

// Embed returns cached embeddings and computes the others in one call to the wrapped embedder.
func (c *EmbeddingCache) Embed(texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	var missing []string
	var at []int
	c.mu.Lock()
	for i, t := range texts {
		if v, ok := c.m[sha256.Sum256([]byte(t))]; ok {
			out[i] = v
		} else {
			missing, at = append(missing, t), append(at, i)
		}
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	embs, err := c.emb.Embed(missing)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for j, i := range at {
		out[i] = embs[j]
		c.m[sha256.Sum256([]byte(missing[j]))] = embs[j]
		c.added++
	}
	return out, nil
}

// Save writes the cache file when embeddings were added since it was read.
func (c *EmbeddingCache) Save() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.added == 0 {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o755); err != nil {
		return err
	}
	tmp := c.path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for k, v := range c.m {
		w.Write(k[:])
		_ = binary.Write(w, binary.LittleEndian, v)
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		return err
	}
	c.added = 0
	return os.Rename(tmp, c.path)
}
