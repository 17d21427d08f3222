package hub

import (
	"fmt"
	"regexp"
	"strings"
)

// matcher selects repository files by glob patterns with Python fnmatch semantics (as
// huggingface_hub's allow_patterns): '*' matches any run of characters including '/', '?' one
// character, [seq] and [!seq] a class; a pattern ending in '/' matches everything below it.
// No pattern selects every file.
type matcher struct {
	patterns []string
	res      []*regexp.Regexp
}

func newMatcher(patterns []string) (matcher, error) {
	var m matcher
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if strings.HasSuffix(p, "/") {
			p += "*"
		}
		re, err := regexp.Compile(fnmatchToRegexp(p))
		if err != nil {
			return matcher{}, fmt.Errorf("include pattern %q: %w", p, err)
		}
		m.patterns = append(m.patterns, p)
		m.res = append(m.res, re)
	}
	return m, nil
}

func (m matcher) all() bool { return len(m.res) == 0 }

func (m matcher) match(name string) bool {
	if m.all() {
		return true
	}
	for _, re := range m.res {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// literals are the patterns without wildcards: exact file names that must exist.
func (m matcher) literals() []string {
	var out []string
	for _, p := range m.patterns {
		if !strings.ContainsAny(p, "*?[") {
			out = append(out, p)
		}
	}
	return out
}

func (m matcher) String() string {
	if m.all() {
		return "any file"
	}
	return "--include " + strings.Join(m.patterns, ",")
}

// fnmatchToRegexp translates a glob as Python's fnmatch.translate does.
func fnmatchToRegexp(pat string) string {
	var b strings.Builder
	b.WriteString(`^(?s:`)
	rs := []rune(pat)
	for i := 0; i < len(rs); i++ {
		switch c := rs[i]; c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '[':
			end := classEnd(rs, i)
			if end < 0 {
				b.WriteString(`\[`)
				continue
			}
			b.WriteString(classToRegexp(rs[i+1 : end]))
			i = end
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString(`)$`)
	return b.String()
}

// classEnd is the index of the ']' closing the class opened at i, or -1 (then '[' is literal).
func classEnd(rs []rune, i int) int {
	j := i + 1
	if j < len(rs) && rs[j] == '!' {
		j++
	}
	if j < len(rs) && rs[j] == ']' { // a leading ']' belongs to the class
		j++
	}
	for ; j < len(rs); j++ {
		if rs[j] == ']' {
			return j
		}
	}
	return -1
}

func classToRegexp(body []rune) string {
	var b strings.Builder
	b.WriteByte('[')
	if len(body) > 0 && body[0] == '!' {
		b.WriteByte('^')
		body = body[1:]
	} else if len(body) > 0 && body[0] == '^' {
		b.WriteString(`\^`)
		body = body[1:]
	}
	for _, c := range body {
		switch c {
		case '\\', '[', ']':
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	b.WriteByte(']')
	return b.String()
}

// otherWeightFormats are skipped by default for a model that has safetensors weights: the same
// tensors in formats this project does not read.
var otherWeightFormats = mustMatcher([]string{
	"*.bin", "*.pth", "*.pt", "*.ckpt", "*.h5", "*.msgpack", "*.ot", "*.gguf", "*.ggml",
	"*.onnx", "*.onnx_data", "*.onnx.data", "*.tflite", "*.mlmodel", "*.mlpackage/*",
	"onnx/*", "openvino/*", "coreml/*",
})

func mustMatcher(p []string) matcher {
	m, err := newMatcher(p)
	if err != nil {
		panic(err)
	}
	return m
}

// selectFiles returns the files to download: those matching include, or, with no include, every
// file except other weight formats when a model has *.safetensors. skipped counts the latter.
func selectFiles(files []string, t RepoType, m matcher) (selected []string, skipped int) {
	defaults := false
	if m.all() && t == Model {
		for _, f := range files {
			if strings.HasSuffix(f, ".safetensors") {
				defaults = true
				break
			}
		}
	}
	for _, f := range files {
		switch {
		case !m.match(f):
		case defaults && otherWeightFormats.match(f):
			skipped++
		default:
			selected = append(selected, f)
		}
	}
	return selected, skipped
}
