package hub

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// RepoType is the kind of Hub repository.
type RepoType string

const (
	Model   RepoType = "model"
	Dataset RepoType = "dataset"
)

// ParseRepoType accepts "model", "dataset" and their plurals.
func ParseRepoType(s string) (RepoType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "model", "models":
		return Model, nil
	case "dataset", "datasets":
		return Dataset, nil
	}
	return "", fmt.Errorf("repo type %q: must be model or dataset", s)
}

var (
	repoIDRe   = regexp.MustCompile(`^([\w.-]+/)?[\w.-]{1,96}$`)
	commitRe   = regexp.MustCompile(`^[0-9a-f]{40}$`)
	safeEtagRe = regexp.MustCompile(`^[0-9A-Za-z_.=+-]{1,128}$`)
)

// repo names one repository on the Hub and its folder in the cache.
type repo struct {
	ID   string
	Type RepoType
}

func newRepo(id string, t RepoType) (repo, error) {
	if t != Model && t != Dataset {
		return repo{}, fmt.Errorf("repo type %q: must be model or dataset", t)
	}
	if !repoIDRe.MatchString(id) || strings.Contains(id, "--") || strings.Contains(id, "..") ||
		strings.HasSuffix(id, ".git") || strings.HasPrefix(path.Base(id), ".") {
		return repo{}, fmt.Errorf("repo id %q: must look like org/name (letters, digits, '-', '_', '.'; no '--' or '..')", id)
	}
	return repo{ID: id, Type: t}, nil
}

func (r repo) String() string { return string(r.Type) + " " + r.ID }

// folderName is huggingface_hub's repo_folder_name: models--org--name.
func (r repo) folderName() string {
	return strings.Join(append([]string{string(r.Type) + "s"}, strings.Split(r.ID, "/")...), "--")
}

// urlPrefix is the repo's path on the Hub website: "org/name" or "datasets/org/name".
func (r repo) urlPrefix() string {
	if r.Type == Dataset {
		return "datasets/" + r.ID
	}
	return r.ID
}

// cacheRepo is one repository's folder inside the hub cache.
type cacheRepo struct {
	root string // HF_HUB_CACHE
	repo repo
	dir  string // HF_HUB_CACHE/models--org--name
}

func newCacheRepo(cacheDir string, r repo) cacheRepo {
	return cacheRepo{root: cacheDir, repo: r, dir: filepath.Join(cacheDir, r.folderName())}
}

func (c cacheRepo) blobPath(etag string) string { return filepath.Join(c.dir, "blobs", etag) }
func (c cacheRepo) snapshotDir(commit string) string {
	return filepath.Join(c.dir, "snapshots", commit)
}
func (c cacheRepo) snapshotPath(commit, file string) string {
	return filepath.Join(c.snapshotDir(commit), filepath.FromSlash(file))
}
func (c cacheRepo) refPath(revision string) string {
	return filepath.Join(c.dir, "refs", filepath.FromSlash(revision))
}

// lockPath is where huggingface_hub keeps its per-blob lock files.
func (c cacheRepo) lockPath(etag string) string {
	return filepath.Join(c.root, ".locks", c.repo.folderName(), etag+".lock")
}

// writeRef records that revision pointed to commit (nothing for a commit hash), atomically.
func (c cacheRepo) writeRef(revision, commit string) error {
	if revision == commit {
		return nil
	}
	p := c.refPath(revision)
	if b, err := os.ReadFile(p); err == nil && string(b) == commit {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), filepath.Base(p)+".*.tmp")
	if err != nil {
		return err
	}
	_, werr := tmp.WriteString(commit)
	if err := errors.Join(werr, tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// readRef returns the commit a cached revision resolves to: the revision itself when it is a
// commit hash, else the content of refs/<revision>.
func (c cacheRepo) readRef(revision string) (string, error) {
	if commitRe.MatchString(revision) {
		return revision, nil
	}
	b, err := os.ReadFile(c.refPath(revision))
	if err != nil {
		return "", err
	}
	commit := strings.TrimSpace(string(b))
	if !commitRe.MatchString(commit) {
		return "", fmt.Errorf("%s holds %q, not a commit hash", c.refPath(revision), commit)
	}
	return commit, nil
}

// link points snapshots/<commit>/<file> at blobs/<etag> with a relative symlink, replacing
// whatever was there.
func (c cacheRepo) link(commit, file, etag string) error {
	dst := c.snapshotPath(commit, file)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(dst), c.blobPath(etag))
	if err != nil {
		return err
	}
	if cur, err := os.Readlink(dst); err == nil && cur == rel {
		return nil
	}
	if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Symlink(rel, dst); err != nil {
		// A concurrent pull may have made the same link between Remove and Symlink.
		if cur, rerr := os.Readlink(dst); rerr == nil && cur == rel {
			return nil
		}
		return err
	}
	return nil
}

// checkRevision refuses revisions that would escape refs/ when used as a path.
func checkRevision(rev string) error {
	if rev == "" {
		return errors.New("revision is empty: use a branch (main), a tag or a commit hash")
	}
	if !isSafeRelPath(rev) {
		return fmt.Errorf("revision %q: must be a branch, tag or commit hash", rev)
	}
	return nil
}

// checkRepoPath refuses file names from the Hub that would land outside the snapshot folder.
func checkRepoPath(p string) error {
	if !isSafeRelPath(p) {
		return fmt.Errorf("unsafe file name %q in the repository listing", p)
	}
	return nil
}

// isSafeRelPath reports whether p is a non-empty relative slash path without empty, "." or ".."
// segments, backslashes or NUL bytes: joined to a folder, it stays inside it.
func isSafeRelPath(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || strings.ContainsRune(p, 0) {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}

// checkRequest validates what a snapshot asks for: the repository, the revision and the include
// patterns.
func checkRequest(repoID string, repoType RepoType, revision string, include []string) (repo, matcher, error) {
	r, err := newRepo(repoID, repoType)
	if err != nil {
		return repo{}, matcher{}, err
	}
	if err := checkRevision(revision); err != nil {
		return repo{}, matcher{}, err
	}
	m, err := newMatcher(include)
	if err != nil {
		return repo{}, matcher{}, err
	}
	return r, m, nil
}

func (c cacheRepo) resolve(revision string, m matcher) (string, error) {
	fix := pullHint(c.repo, revision, m.patterns)
	commit, err := c.readRef(revision)
	if err != nil {
		return "", fmt.Errorf("%w: %s at revision %q (%v); %s", ErrNotCached, c.repo, revision, err, fix)
	}
	dir := c.snapshotDir(commit)
	files, err := listSnapshot(dir)
	if err != nil {
		return "", fmt.Errorf("%w: snapshot %s of %s (%v); %s", ErrNotCached, commit, c.repo, err, fix)
	}
	present := map[string]bool{}
	matched := 0
	for _, f := range files {
		present[f] = true
		if !m.match(f) {
			continue
		}
		matched++
		if _, err := os.Stat(c.snapshotPath(commit, f)); err != nil {
			return "", fmt.Errorf("%w: %s of %s at %s (its blob is gone: %v); %s",
				ErrNotCached, f, c.repo, revision, err, pullHint(c.repo, revision, []string{f}))
		}
	}
	for _, lit := range m.literals() {
		if !present[lit] {
			return "", fmt.Errorf("%w: %s of %s at %s (not in %s); %s",
				ErrNotCached, lit, c.repo, revision, dir, pullHint(c.repo, revision, []string{lit}))
		}
	}
	if matched == 0 {
		return "", fmt.Errorf("%w: no file of %s at %s matches %s (in %s); %s", ErrNotCached, c.repo, revision, m, dir, fix)
	}
	return dir, nil
}

// listSnapshot returns the slash-separated paths of the files and links under dir.
func listSnapshot(dir string) ([]string, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	sort.Strings(files)
	return files, err
}

// pullHint is the command that fills the cache for what was asked.
func pullHint(r repo, revision string, include []string) string {
	cmd := "medassist pull " + r.ID
	if r.Type != Model {
		cmd += " --type " + string(r.Type)
	}
	if revision != "main" {
		cmd += " --revision " + revision
	}
	if len(include) > 0 {
		cmd += " --include '" + strings.Join(include, ",") + "'"
	}
	return fmt.Sprintf("run %q with network access (without --offline, HF_HUB_OFFLINE unset)", cmd)
}
