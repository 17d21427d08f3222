package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"

	"github.com/nikolalohinski/gonja/v2"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
)

// TokenizerConfigFile holds the chat template and the special tokens.
const TokenizerConfigFile = "tokenizer_config.json"

// Message is one chat turn.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatTemplate renders chat messages with a model's own Jinja template (tokenizer_config.json's
// chat_template), in the environment Hugging Face transformers' apply_chat_template uses:
// trim_blocks, lstrip_blocks, raise_exception(), and the special tokens as variables.
type ChatTemplate struct {
	source string
	tmpl   *exec.Template
	vars   map[string]any // bos_token, eos_token, ... as strings
}

// tokenizerConfig is the part of tokenizer_config.json the template needs.
type tokenizerConfig struct {
	ChatTemplate json.RawMessage `json:"chat_template"`
	BOSToken     json.RawMessage `json:"bos_token"`
	EOSToken     json.RawMessage `json:"eos_token"`
	UNKToken     json.RawMessage `json:"unk_token"`
	PADToken     json.RawMessage `json:"pad_token"`
}

// ChatTemplateFile is where transformers ≥ 4.43 saves a chat template; tokenizer_config.json then
// has no chat_template.
const ChatTemplateFile = "chat_template.jinja"

// errNoTemplate says a model dir has no chat template anywhere.
var errNoTemplate = errors.New("no chat_template in " + TokenizerConfigFile + " and no " + ChatTemplateFile +
	" (this model has no chat format; use raw prompts)")

// LoadChatTemplate reads DIR/tokenizer_config.json's chat_template (a string, or the list of
// {name, template} using the one named "default"), or DIR/chat_template.jinja when
// tokenizer_config.json has none, and the special tokens of tokenizer_config.json (strings or
// {content: ...}).
func LoadChatTemplate(dir string) (*ChatTemplate, error) {
	path := filepath.Join(dir, TokenizerConfigFile)
	var tc tokenizerConfig
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist): // chat_template.jinja alone is enough
	case err != nil:
		return nil, fmt.Errorf("chat template: %w", err)
	default:
		if err := json.Unmarshal(b, &tc); err != nil {
			return nil, fmt.Errorf("chat template: %s: bad JSON: %w", path, err)
		}
	}
	src, err := templateSource(tc.ChatTemplate)
	if errors.Is(err, errNoTemplate) {
		src, err = readTemplateFile(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("chat template: %s: %w", dir, err)
	}
	vars := map[string]any{}
	for name, raw := range map[string]json.RawMessage{
		"bos_token": tc.BOSToken, "eos_token": tc.EOSToken, "unk_token": tc.UNKToken, "pad_token": tc.PADToken,
	} {
		tok, err := tokenString(raw)
		if err != nil {
			return nil, fmt.Errorf("chat template: %s: %s: %w", path, name, err)
		}
		if tok != nil {
			vars[name] = *tok
		}
	}
	return NewChatTemplate(src, vars)
}

// readTemplateFile reads DIR/chat_template.jinja; errNoTemplate when it is absent.
func readTemplateFile(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, ChatTemplateFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", errNoTemplate
	}
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// NewChatTemplate compiles a Jinja chat template; vars are extra template variables such as
// bos_token and eos_token.
func NewChatTemplate(source string, vars map[string]any) (*ChatTemplate, error) {
	cfg := config.New()
	cfg.TrimBlocks = true
	cfg.LeftStripBlocks = true
	cfg.KeepTrailingNewline = false
	const id = "/chat_template.jinja"
	loader, err := loaders.NewMemoryLoader(map[string]string{id: source})
	if err != nil {
		return nil, fmt.Errorf("chat template: %w", err)
	}
	env := &exec.Environment{
		Context:           gonja.DefaultContext.Inherit(),
		Filters:           gonja.DefaultEnvironment.Filters,
		Tests:             gonja.DefaultEnvironment.Tests,
		ControlStructures: gonja.DefaultEnvironment.ControlStructures,
		Methods:           gonja.DefaultEnvironment.Methods,
	}
	tmpl, err := exec.NewTemplate(id, cfg, loader, env)
	if err != nil {
		return nil, fmt.Errorf("chat template: parse: %w", err)
	}
	v := make(map[string]any, len(vars))
	for k, x := range vars {
		v[k] = x
	}
	return &ChatTemplate{source: source, tmpl: tmpl, vars: v}, nil
}

// TemplateError is raised by a template's raise_exception (e.g. roles out of order).
type TemplateError struct{ Message string }

func (e *TemplateError) Error() string { return "chat template: " + e.Message }

func templateSource(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", errNoTemplate
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var named []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &named); err != nil {
		return "", fmt.Errorf("chat_template must be a string or a list of {name, template}: %w", err)
	}
	for _, n := range named {
		if n.Name == "default" {
			return n.Template, nil
		}
	}
	return "", fmt.Errorf("chat_template list has no template named \"default\" (%d templates)", len(named))
}

func tokenString(raw json.RawMessage) (*string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return &s, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
		return nil, fmt.Errorf("must be a string or {\"content\": ...}, got %s", raw)
	}
	return obj.Content, nil
}

// Render formats msgs as the model's prompt; addGenerationPrompt appends the assistant's header.
func (t *ChatTemplate) Render(msgs []Message, addGenerationPrompt bool) (string, error) {
	ctx := map[string]any{}
	for k, v := range t.vars {
		ctx[k] = v
	}
	list := make([]any, len(msgs))
	for i, m := range msgs {
		list[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	ctx["messages"] = list
	ctx["add_generation_prompt"] = addGenerationPrompt
	// The engine flattens errors from functions into text, so the raised one is kept aside.
	var raised *TemplateError
	ctx["raise_exception"] = func(msg string) (string, error) {
		raised = &TemplateError{Message: msg}
		return "", raised
	}
	out, err := t.tmpl.ExecuteToString(exec.NewContext(ctx))
	if err != nil {
		if raised != nil {
			return "", raised
		}
		return "", fmt.Errorf("chat template: render: %w", err)
	}
	return out, nil
}

// RenderSpans renders like Render and also returns, for each message, the byte range [start, end)
// of its content inside the text: what the template printed of it (the content, or the content
// with white space stripped from either end), [-1, -1] when the template does not print it.
// A tokenizer encodes those ranges as plain text so that a user typing "</s>" never becomes a
// control token.
//
// It renders once with unique sentinels in place of the contents, then matches the real rendering
// against that skeleton; templates that print a message's content other than once, unmodified or
// trimmed, are reported as errors.
func (t *ChatTemplate) RenderSpans(msgs []Message, addGenerationPrompt bool) (string, [][2]int, error) {
	text, err := t.Render(msgs, addGenerationPrompt)
	if err != nil {
		return "", nil, err
	}
	sentinels := make([]string, len(msgs))
	masked := make([]Message, len(msgs))
	for i, m := range msgs {
		sentinels[i] = sentinel(i, msgs)
		masked[i] = Message{Role: m.Role, Content: sentinels[i]}
	}
	skeleton, err := t.Render(masked, addGenerationPrompt)
	if err != nil {
		return "", nil, fmt.Errorf("chat template: render with placeholders: %w", err)
	}
	spans, err := matchSkeleton(text, skeleton, sentinels, msgs)
	if err != nil {
		return "", nil, fmt.Errorf("chat template: locating message contents: %w", err)
	}
	return text, spans, nil
}

// sentinel is a placeholder for message i that appears in no message (private-use code points).
func sentinel(i int, msgs []Message) string {
	for salt := 0; ; salt++ {
		s := fmt.Sprintf("\uE000%d\uE001%d\uE002", i, salt)
		clash := false
		for _, m := range msgs {
			if strings.Contains(m.Content, s) {
				clash = true
				break
			}
		}
		if !clash {
			return s
		}
	}
}

// matchSkeleton walks text along skeleton: literal pieces must match exactly, each sentinel stands
// for its message's content (or the content trimmed of white space).
func matchSkeleton(text, skeleton string, sentinels []string, msgs []Message) ([][2]int, error) {
	spans := make([][2]int, len(msgs))
	for i := range spans {
		spans[i] = [2]int{-1, -1}
	}
	ti := 0
	rest := skeleton
	for {
		next, which := -1, -1
		for i, s := range sentinels {
			if p := strings.Index(rest, s); p >= 0 && (next < 0 || p < next) {
				next, which = p, i
			}
		}
		lit := rest
		if next >= 0 {
			lit = rest[:next]
		}
		if !strings.HasPrefix(text[ti:], lit) {
			return nil, errors.New("the template does not print message contents verbatim")
		}
		ti += len(lit)
		if next < 0 {
			break
		}
		if spans[which][0] >= 0 {
			return nil, fmt.Errorf("message %d's content is printed more than once", which)
		}
		rest = rest[next+len(sentinels[which]):]
		content := msgs[which].Content
		matched := false
		for _, c := range printedForms(content) {
			if strings.HasPrefix(text[ti:], c) && followsLiteral(text[ti+len(c):], rest, sentinels) {
				spans[which] = [2]int{ti, ti + len(c)}
				ti += len(c)
				matched = true
				break
			}
		}
		if !matched {
			return nil, fmt.Errorf("message %d's content is transformed by the template", which)
		}
	}
	if ti != len(text) {
		return nil, errors.New("rendering with placeholders differs from the real rendering")
	}
	return spans, nil
}

// printedForms are the ways a template may print a content: as is, or stripped on either side.
func printedForms(content string) []string {
	forms := []string{content}
	for _, f := range []string{
		strings.TrimSpace(content),
		strings.TrimLeftFunc(content, unicode.IsSpace),
		strings.TrimRightFunc(content, unicode.IsSpace),
	} {
		if !slices.Contains(forms, f) {
			forms = append(forms, f)
		}
	}
	return forms
}

// followsLiteral reports whether text continues with the literal part of rest up to its next sentinel.
func followsLiteral(text, rest string, sentinels []string) bool {
	end := len(rest)
	for _, s := range sentinels {
		if p := strings.Index(rest, s); p >= 0 && p < end {
			end = p
		}
	}
	return strings.HasPrefix(text, rest[:end])
}
