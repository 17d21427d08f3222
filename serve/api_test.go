package serve

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

var decodeCases = []struct {
	name   string
	body   string
	status int // 0: valid
	check  func(t *testing.T, p *params)
}{
	{"minimal", `{"messages":[{"role":"user","content":"hi"}]}`, 0, func(t *testing.T, p *params) {
		if p.LastUser != "hi" || p.MaxTokens != 256 || p.Stream {
			t.Fatalf("%+v", p)
		}
	}},
	{"all fields", `{"model":"x","messages":[{"role":"system","content":"s"},{"role":"user","content":"q"}],"max_tokens":12,"temperature":0,"top_p":0.5,"seed":7,"stop":["\n\n","END"],"stream":true,"stream_options":{"include_usage":true},"n":1}`, 0,
		func(t *testing.T, p *params) {
			if p.MaxTokens != 12 || p.Temperature != 0 || p.TopP != 0.5 || !p.HasSeed || p.Seed != 7 || len(p.Stop) != 2 || !p.Stream || !p.WantUsage {
				t.Fatalf("%+v", p)
			}
		}},
	{"content parts", `{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}`, 0,
		func(t *testing.T, p *params) {
			if p.LastUser != "a\nb" { // guard.ContentText joins text parts with newlines
				t.Fatalf("%q", p.LastUser)
			}
		}},
	{"stop string", `{"messages":[{"role":"user","content":"q"}],"stop":"END"}`, 0, func(t *testing.T, p *params) {
		if len(p.Stop) != 1 || p.Stop[0] != "END" {
			t.Fatalf("%v", p.Stop)
		}
	}},
	{"max_completion_tokens", `{"messages":[{"role":"user","content":"q"}],"max_completion_tokens":5}`, 0, func(t *testing.T, p *params) {
		if p.MaxTokens != 5 {
			t.Fatalf("%d", p.MaxTokens)
		}
	}},
	{"unknown fields ignored", `{"messages":[{"role":"user","content":"q"}],"logprobs":true,"user":"u1"}`, 0, nil},
	{"developer role", `{"messages":[{"role":"developer","content":"d"},{"role":"user","content":"q"}]}`, 0, func(t *testing.T, p *params) {
		if p.Messages[0].Role != "system" {
			t.Fatalf("%v", p.Messages)
		}
	}},
	{"malformed", `{"messages":[`, 400, nil},
	{"not an object", `[1,2]`, 400, nil},
	{"empty body", ``, 400, nil},
	{"trailing data", `{"messages":[{"role":"user","content":"q"}]} {}`, 400, nil},
	{"no messages", `{"messages":[]}`, 400, nil},
	{"bad role", `{"messages":[{"role":"tool","content":"q"}]}`, 400, nil},
	{"last not user", `{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}`, 400, nil},
	{"n=2", `{"messages":[{"role":"user","content":"q"}],"n":2}`, 400, nil},
	{"max_tokens 0", `{"messages":[{"role":"user","content":"q"}],"max_tokens":0}`, 400, nil},
	{"max_tokens huge", `{"messages":[{"role":"user","content":"q"}],"max_tokens":100000}`, 400, nil},
	{"temperature", `{"messages":[{"role":"user","content":"q"}],"temperature":3}`, 400, nil},
	{"top_p", `{"messages":[{"role":"user","content":"q"}],"top_p":0}`, 400, nil},
	{"too many stops", `{"messages":[{"role":"user","content":"q"}],"stop":["a","b","c","d","e"]}`, 400, nil},
	{"empty stop", `{"messages":[{"role":"user","content":"q"}],"stop":[""]}`, 400, nil},
	{"wrong type", `{"messages":[{"role":"user","content":5}]}`, 400, nil},
	{"image part", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]}`, 400, nil},
	{"invalid utf8", "{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}", 400, nil},
	{"nul", `{"messages":[{"role":"user","content":"a\u0000b"}]}`, 400, nil},
}

func TestDecodeChatRequest(t *testing.T) {
	cfg := DefaultConfig()
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := decodeChatRequest(strings.NewReader(tc.body), &cfg)
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if tc.check != nil {
					tc.check(t, p)
				}
				return
			}
			var ae *apiError
			if !errors.As(err, &ae) || ae.Status != tc.status || ae.Message == "" {
				t.Fatalf("want %d apiError, got %v", tc.status, err)
			}
		})
	}
}

func TestDecodeBodyLimit(t *testing.T) {
	cfg := DefaultConfig()
	body := `{"messages":[{"role":"user","content":"` + strings.Repeat("a", 4096) + `"}]}`
	r := http.MaxBytesReader(nil, io.NopCloser(strings.NewReader(body)), 1024)
	_, err := decodeChatRequest(r, &cfg)
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("want 413, got %v", err)
	}
}

// FuzzDecodeChatRequest: any body yields either valid params or a 4xx apiError, never a panic or a 5xx.
func FuzzDecodeChatRequest(f *testing.F) {
	for _, tc := range decodeCases {
		f.Add([]byte(tc.body))
	}
	cfg := DefaultConfig()
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := decodeChatRequest(strings.NewReader(string(body)), &cfg)
		if err != nil {
			ae := toAPIError(err)
			if ae.Status < 400 || ae.Status >= 500 {
				t.Fatalf("status %d for client input: %v", ae.Status, err)
			}
			return
		}
		if len(p.Messages) == 0 || p.MaxTokens < 1 || p.MaxTokens > cfg.MaxTokensLimit || !utf8.ValidString(p.LastUser) {
			t.Fatalf("invalid params accepted: %+v", p)
		}
	})
}
