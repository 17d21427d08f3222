package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/medassist/medassist/guard"
	"github.com/medassist/medassist/model"
)

// ChatRequest is the subset of the OpenAI Chat Completions request medassist honours.
// Unknown fields are ignored, as OpenAI-compatible servers commonly do.
type ChatRequest struct {
	Model               string        `json:"model"`
	Messages            []ChatMessage `json:"messages"`
	MaxTokens           *int          `json:"max_tokens"`
	MaxCompletionTokens *int          `json:"max_completion_tokens"`
	Temperature         *float64      `json:"temperature"`
	TopP                *float64      `json:"top_p"`
	Seed                *int64        `json:"seed"`
	Stop                StopList      `json:"stop"`
	Stream              bool          `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	N                *int     `json:"n"`
	FrequencyPenalty *float64 `json:"frequency_penalty"`
	PresencePenalty  *float64 `json:"presence_penalty"`
}

// ChatMessage is one message; content is a string or a list of {"type":"text","text":...} parts.
type ChatMessage struct {
	Role    string      `json:"role"`
	Content ContentText `json:"content"`
}

// ContentText accepts OpenAI's string or text-parts content and keeps the text (guard.ContentText).
type ContentText string

func (c *ContentText) UnmarshalJSON(b []byte) error {
	text, err := guard.ContentText(b)
	*c = ContentText(text)
	return err
}

// StopList accepts a string or a list of strings.
type StopList []string

func (s *StopList) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*s = nil
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = StopList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("stop must be a string or a list of strings")
	}
	*s = many
	return nil
}

// params are a validated request, with defaults applied.
type params struct {
	Messages    []model.Message
	MaxTokens   int
	Temperature float64
	TopP        float64
	Seed        int64
	HasSeed     bool
	Stop        []string
	Stream      bool
	WantUsage   bool
	LastUser    string
	Guidance    string // emergency guidance the guard keeps in front of the answer
	GuardReason string // the guard's reason when Guidance is set
}

// decodeChatRequest reads at most limit bytes of body and validates them into params.
// Every failure is a *apiError with the right status (400 or 413).
func decodeChatRequest(body io.Reader, cfg *Config) (*params, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errTooLarge(tooBig.Limit)
		}
		return nil, badRequest("could not read the request body: %v", err)
	}
	if !utf8.Valid(raw) {
		return nil, badRequest("request body is not valid UTF-8")
	}
	var req ChatRequest
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&req); err != nil {
		return nil, badRequest("malformed JSON: %v", err)
	}
	if dec.More() {
		return nil, badRequest("malformed JSON: trailing data after the request object")
	}
	return req.validate(cfg)
}

func (r *ChatRequest) validate(cfg *Config) (*params, error) {
	p := &params{
		MaxTokens:   cfg.DefaultMaxTok,
		Temperature: cfg.Temperature,
		TopP:        cfg.TopP,
		Stream:      r.Stream,
		WantUsage:   r.StreamOptions != nil && r.StreamOptions.IncludeUsage,
	}
	if len(r.Messages) == 0 {
		return nil, badParam("messages", "messages must contain at least one message")
	}
	for i, m := range r.Messages {
		switch m.Role {
		case "system", "user", "assistant":
		case "developer":
			m.Role = "system"
		default:
			return nil, badParam("messages", "messages[%d].role %q is not supported (system, user or assistant)", i, m.Role)
		}
		if strings.ContainsRune(string(m.Content), 0) {
			return nil, badParam("messages", "messages[%d].content contains a NUL character", i)
		}
		p.Messages = append(p.Messages, model.Message{Role: m.Role, Content: string(m.Content)})
	}
	last := p.Messages[len(p.Messages)-1]
	if last.Role != "user" {
		return nil, badParam("messages", "the last message must have role user")
	}
	p.LastUser = last.Content
	if r.N != nil && *r.N != 1 {
		return nil, badParam("n", "n = %d is not supported: only one choice per request (n = 1)", *r.N)
	}
	maxTok := r.MaxTokens
	if r.MaxCompletionTokens != nil {
		maxTok = r.MaxCompletionTokens
	}
	if maxTok != nil {
		if *maxTok < 1 || *maxTok > cfg.MaxTokensLimit {
			return nil, badParam("max_tokens", "max_tokens = %d: must be between 1 and %d", *maxTok, cfg.MaxTokensLimit)
		}
		p.MaxTokens = *maxTok
	}
	if r.Temperature != nil {
		if *r.Temperature < 0 || *r.Temperature > 2 {
			return nil, badParam("temperature", "temperature = %g: must be between 0 and 2", *r.Temperature)
		}
		p.Temperature = *r.Temperature
	}
	if r.TopP != nil {
		if *r.TopP <= 0 || *r.TopP > 1 {
			return nil, badParam("top_p", "top_p = %g: must be in (0, 1]", *r.TopP)
		}
		p.TopP = *r.TopP
	}
	if r.Seed != nil {
		p.Seed, p.HasSeed = *r.Seed, true
	}
	if len(r.Stop) > 4 {
		return nil, badParam("stop", "at most 4 stop sequences, got %d", len(r.Stop))
	}
	for _, s := range r.Stop {
		if s == "" {
			return nil, badParam("stop", "stop sequences must not be empty")
		}
		p.Stop = append(p.Stop, s)
	}
	return p, nil
}

// Response types (OpenAI schema).

type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []choice     `json:"choices"`
	Usage   *usage       `json:"usage,omitempty"`
	Guard   *guardResult `json:"guard,omitempty"`
}

type choice struct {
	Index        int          `json:"index"`
	Message      *respMessage `json:"message,omitempty"`
	Delta        *respMessage `json:"delta,omitempty"`
	FinishReason *string      `json:"finish_reason"`
}

type respMessage struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type guardResult struct {
	Verdict string `json:"verdict"`
	Reason  string `json:"reason"`
}
