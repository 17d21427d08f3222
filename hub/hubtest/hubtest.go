// Package hubtest runs a fake Hugging Face Hub over real HTTP for tests: the revision API, HEAD
// and GET on resolve URLs with the Hub's headers (X-Repo-Commit, ETag, X-Linked-Etag,
// X-Linked-Size), Range requests, an optional CDN on another host for LFS files, private repos,
// and injected faults (cut connections, ignored ranges, corrupted bodies, 503s).
package hubtest

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// File is one file of a commit. LFS files are announced by sha256 and, with a CDN, redirected.
type File struct {
	Path string
	Data []byte
	LFS  bool
}

// GitSHA1 is the git blob id of data: the Hub's ETag (and cache blob name) for a non-LFS file.
func GitSHA1(data []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// SHA256 is the hex sha256 of data: the X-Linked-Etag (and blob name) of an LFS file.
func SHA256(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// Etag is the name the cache gives f's blob.
func (f File) Etag() string {
	if f.LFS {
		return SHA256(f.Data)
	}
	return GitSHA1(f.Data)
}

// Commit is one revision of a repository; Refs are the branches and tags pointing at it.
type Commit struct {
	SHA   string
	Refs  []string
	Files []File
}

// Repo is a repository: Type "model" (default) or "dataset". Private repos need the server's Token.
type Repo struct {
	ID      string
	Type    string
	Private bool
	Commits []Commit
}

// Options configure a Server.
type Options struct {
	CDN      bool          // serve LFS files from a second server, reached by redirect
	Token    string        // the token private repos accept
	Throttle time.Duration // pause after each 32 KiB of a body
}

// Fault is trouble injected for one file path (or "api" for the revision API).
type Fault struct {
	CutAfter    int64 // the first CutTimes bodies stop after CutAfter bytes, closing the connection
	CutTimes    int
	Pause       time.Duration // instead of closing, pause this long (or until the client leaves), then go on
	IgnoreRange bool          // answer 200 with the whole file to Range requests
	Corrupt     bool          // flip one byte of the body (size unchanged)
	Fail        int           // answer the next Fail requests with 503
}

// Request is one request the servers received.
type Request struct {
	Server string // "hub" or "cdn"
	Method string
	Path   string
	Range  string
	Auth   string
	Body   bool // the answer carried file content
}

// Server is a running fake Hub.
type Server struct {
	URL    string // the Hub endpoint (HF_ENDPOINT)
	CDNURL string // "" without Options.CDN

	opts  Options
	repos map[string]*Repo // by type + "/" + id
	blobs map[string]File  // LFS files by sha256, for the CDN

	mu       sync.Mutex
	faults   map[string]*Fault
	requests []Request
}

// New starts a fake Hub serving repos; it stops when the test ends.
func New(t testing.TB, opts Options, repos ...Repo) *Server {
	s := &Server{opts: opts, repos: map[string]*Repo{}, blobs: map[string]File{}, faults: map[string]*Fault{}}
	for i := range repos {
		r := &repos[i]
		if r.Type == "" {
			r.Type = "model"
		}
		s.repos[r.Type+"/"+r.ID] = r
		for _, c := range r.Commits {
			for _, f := range c.Files {
				if f.LFS {
					s.blobs[SHA256(f.Data)] = f
				}
			}
		}
	}
	hub := httptest.NewServer(http.HandlerFunc(s.serveHub))
	t.Cleanup(hub.Close)
	s.URL = hub.URL
	if opts.CDN {
		cdn := httptest.NewServer(http.HandlerFunc(s.serveCDN))
		t.Cleanup(cdn.Close)
		s.CDNURL = cdn.URL
	}
	return s
}

// SetFault injects trouble for a file path ("api" for the revision API).
func (s *Server) SetFault(key string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[key] = &f
}

// Requests returns what the servers received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Reset forgets the requests received so far.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// Downloads counts the answers that carried file content.
func (s *Server) Downloads() int {
	n := 0
	for _, r := range s.Requests() {
		if r.Body {
			n++
		}
	}
	return n
}

// Count counts requests with this method whose path contains sub.
func (s *Server) Count(method, sub string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Method == method && strings.Contains(r.Path, sub) {
			n++
		}
	}
	return n
}

func (s *Server) record(req Request) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, req)
	return len(s.requests) - 1
}

func (s *Server) markBody(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[i].Body = true
}

// takeFault consumes one use of the fault for key: whether to fail with 503 and whether to cut.
func (s *Server) takeFault(key string, get bool) (fail, cut bool, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.faults[key]
	if p == nil {
		return false, false, Fault{}
	}
	if p.Fail > 0 {
		p.Fail--
		return true, false, *p
	}
	if get && p.CutTimes > 0 {
		p.CutTimes--
		return false, true, *p
	}
	return false, false, *p
}

func (s *Server) serveHub(w http.ResponseWriter, r *http.Request) {
	i := s.record(Request{Server: "hub", Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"), Auth: r.Header.Get("Authorization")})
	path := r.URL.EscapedPath()
	if rest, ok := strings.CutPrefix(path, "/api/"); ok {
		s.serveAPI(w, r, rest)
		return
	}
	typ := "model"
	if rest, ok := strings.CutPrefix(path, "/datasets/"); ok {
		typ, path = "dataset", "/"+rest
	}
	id, after, ok := strings.Cut(strings.TrimPrefix(path, "/"), "/resolve/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	escRev, escFile, _ := strings.Cut(after, "/")
	rev, err1 := url.PathUnescape(escRev)
	file, err2 := url.PathUnescape(escFile)
	if err1 != nil || err2 != nil {
		http.Error(w, "bad path", http.StatusBadRequest)
		return
	}
	repo, commit, ok := s.lookup(w, r, typ, id, rev)
	if !ok {
		return
	}
	if fail, _, _ := s.takeFault(file, false); fail {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	var f *File
	for j := range commit.Files {
		if commit.Files[j].Path == file {
			f = &commit.Files[j]
		}
	}
	if f == nil {
		hubError(w, http.StatusNotFound, "EntryNotFound", fmt.Sprintf("%s does not exist in %s", file, repo.ID))
		return
	}
	h := w.Header()
	h.Set("X-Repo-Commit", commit.SHA)
	if f.LFS {
		pointer := fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", SHA256(f.Data), len(f.Data))
		h.Set("ETag", `"`+GitSHA1([]byte(pointer))+`"`)
		h.Set("X-Linked-Etag", `"`+SHA256(f.Data)+`"`)
		h.Set("X-Linked-Size", strconv.Itoa(len(f.Data)))
		if s.CDNURL != "" {
			h.Set("Location", s.CDNURL+"/blobs/"+SHA256(f.Data)+"?X-Signature=fake")
			w.WriteHeader(http.StatusFound)
			return
		}
	} else {
		h.Set("ETag", `"`+GitSHA1(f.Data)+`"`)
	}
	s.serveBody(w, r, i, *f)
}

func (s *Server) serveCDN(w http.ResponseWriter, r *http.Request) {
	i := s.record(Request{Server: "cdn", Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"), Auth: r.Header.Get("Authorization")})
	f, ok := s.blobs[strings.TrimPrefix(r.URL.Path, "/blobs/")]
	if !ok || r.URL.Query().Get("X-Signature") == "" {
		http.Error(w, "no such object", http.StatusForbidden)
		return
	}
	if fail, _, _ := s.takeFault(f.Path, false); fail {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("ETag", `"cdn-`+SHA256(f.Data)[:16]+`"`)
	s.serveBody(w, r, i, f)
}

// serveBody answers a HEAD or GET for f's content, honouring "bytes=N-" ranges and faults.
func (s *Server) serveBody(w http.ResponseWriter, r *http.Request, i int, f File) {
	_, cut, fault := s.takeFault(f.Path, r.Method == http.MethodGet)
	data := f.Data
	if fault.Corrupt && len(data) > 0 {
		data = append([]byte(nil), data...)
		data[len(data)/2] ^= 0xff
	}
	start, status := 0, http.StatusOK
	if rg := r.Header.Get("Range"); rg != "" && !fault.IgnoreRange && r.Method == http.MethodGet {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
		if err != nil || n < 0 || n >= len(data) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", len(data)))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start, status = n, http.StatusPartialContent
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", n, len(data)-1, len(data)))
	}
	w.Header().Set("Accept-Ranges", "bytes")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)-start))
	w.WriteHeader(status)
	if r.Method != http.MethodGet {
		return
	}
	s.markBody(i)
	body := data[start:]
	if cut && fault.CutAfter < int64(len(body)) {
		s.write(w, body[:fault.CutAfter])
		if fault.Pause == 0 {
			panic(http.ErrAbortHandler) // drop the connection mid-body
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(fault.Pause):
		}
		body = body[fault.CutAfter:]
	}
	s.write(w, body)
}

func (s *Server) write(w http.ResponseWriter, b []byte) {
	const chunk = 32 << 10
	for len(b) > 0 {
		n := min(chunk, len(b))
		if _, err := w.Write(b[:n]); err != nil {
			return
		}
		b = b[n:]
		if s.opts.Throttle > 0 {
			w.(http.Flusher).Flush()
			time.Sleep(s.opts.Throttle)
		}
	}
	w.(http.Flusher).Flush()
}

// serveAPI answers GET /api/{models,datasets}/{id}/revision/{rev}.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, rest string) {
	typ, rest, _ := strings.Cut(rest, "/")
	typ = strings.TrimSuffix(typ, "s")
	i := strings.LastIndex(rest, "/revision/")
	if r.Method != http.MethodGet || (typ != "model" && typ != "dataset") || i < 0 {
		http.NotFound(w, r)
		return
	}
	escRev := rest[i+len("/revision/"):]
	rev, err := url.PathUnescape(escRev)
	if err != nil || strings.Contains(escRev, "/") { // one path segment: refs/pr/1 arrives as refs%2Fpr%2F1
		http.Error(w, "bad revision", http.StatusBadRequest)
		return
	}
	if fail, _, _ := s.takeFault("api", false); fail {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	repo, commit, ok := s.lookup(w, r, typ, rest[:i], rev)
	if !ok {
		return
	}
	type sibling struct {
		RFilename string `json:"rfilename"`
	}
	body := struct {
		ID       string    `json:"id"`
		SHA      string    `json:"sha"`
		Private  bool      `json:"private"`
		Siblings []sibling `json:"siblings"`
	}{ID: repo.ID, SHA: commit.SHA, Private: repo.Private, Siblings: []sibling{}}
	for _, f := range commit.Files {
		body.Siblings = append(body.Siblings, sibling{f.Path})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(body)
}

// lookup finds the repository and commit, answering 401/404 as the Hub does when it cannot.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request, typ, id, rev string) (*Repo, *Commit, bool) {
	repo := s.repos[typ+"/"+id]
	if repo == nil {
		hubError(w, http.StatusNotFound, "RepoNotFound", "Repository not found")
		return nil, nil, false
	}
	if repo.Private && (s.opts.Token == "" || r.Header.Get("Authorization") != "Bearer "+s.opts.Token) {
		hubError(w, http.StatusUnauthorized, "GatedRepo", "Access to "+typ+" "+id+" is restricted. You must be authenticated to access it.")
		return nil, nil, false
	}
	for i := range repo.Commits {
		c := &repo.Commits[i]
		if c.SHA == rev {
			return repo, c, true
		}
		for _, ref := range c.Refs {
			if ref == rev {
				return repo, c, true
			}
		}
	}
	hubError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
	return nil, nil, false
}

func hubError(w http.ResponseWriter, code int, errCode, msg string) {
	w.Header().Set("X-Error-Code", errCode)
	w.Header().Set("X-Error-Message", msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
