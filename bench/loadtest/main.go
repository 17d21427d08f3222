// Command loadtest drives a running medassist server on loopback with concurrent streaming chat
// clients for a bounded time and reports time to first token, throughput, errors, and the server's
// memory and goroutines (read from its /metrics) before, during and after the load.
//
//	go run ./bench/loadtest --url http://127.0.0.1:7860 --clients 8 --duration 60s
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

var questions = []string{
	"What are the symptoms of iron deficiency anemia?",
	"How does metformin lower blood glucose?",
	"What is the first-line treatment for hypertension?",
	"What causes a high TSH level?",
	"What are the warning signs of a stroke?",
	"How is asthma diagnosed?",
	"What does an elevated troponin indicate?",
	"What are the side effects of ACE inhibitors?",
}

type result struct {
	ttft   time.Duration
	tokens int
	status int
	err    error
}

func main() {
	base := flag.String("url", "http://127.0.0.1:7860", "server base URL (loopback only)")
	clients := flag.Int("clients", 8, "concurrent streaming clients")
	duration := flag.Duration("duration", 60*time.Second, "how long to send requests")
	maxTokens := flag.Int("max-tokens", 64, "max_tokens per request")
	out := flag.String("json", "", "also write the summary as JSON to this file")
	flag.Parse()
	if u, err := url.Parse(*base); err != nil || !isLoopback(u.Hostname()) {
		fmt.Fprintln(os.Stderr, "loadtest: --url must be a loopback address (127.0.0.0/8, localhost or [::1])")
		os.Exit(2)
	}

	before := scrape(*base)
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	results := make(chan result, 1024)
	var wg sync.WaitGroup
	var memMu sync.Mutex
	var memSamples []float64
	warm := time.Now().Add(*duration / 6)
	go func() { // sample server memory every second after warm-up
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				if now.After(warm) {
					if m := scrape(*base); m["process_resident_memory_bytes"] > 0 {
						memMu.Lock()
						memSamples = append(memSamples, m["process_resident_memory_bytes"])
						memMu.Unlock()
					}
				}
			}
		}
	}()
	start := time.Now()
	for i := 0; i < *clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				r := stream(ctx, *base, questions[(i+n)%len(questions)], *maxTokens)
				if ctx.Err() != nil && r.err != nil {
					return // cut off by the end of the run, not a server error
				}
				results <- r
			}
		}(i)
	}
	go func() { wg.Wait(); close(results) }()

	var ttfts []time.Duration
	var tokens, ok, rejected, failed int
	var firstErr error
	for r := range results {
		switch {
		case r.err != nil:
			failed++
			if firstErr == nil {
				firstErr = r.err
			}
		case r.status == http.StatusTooManyRequests || r.status == http.StatusServiceUnavailable:
			rejected++
		case r.status == http.StatusOK:
			ok++
			tokens += r.tokens
			ttfts = append(ttfts, r.ttft)
		default:
			failed++
			if firstErr == nil {
				firstErr = fmt.Errorf("status %d", r.status)
			}
		}
	}
	elapsed := time.Since(start)
	time.Sleep(2 * time.Second) // let the server wind down its handlers
	after := scrape(*base)

	sort.Slice(ttfts, func(i, j int) bool { return ttfts[i] < ttfts[j] })
	memMin, memMax := minMax(memSamples)
	summary := map[string]any{
		"clients": *clients, "duration_s": elapsed.Seconds(), "completed": ok, "rejected_429_503": rejected, "errors": failed,
		"ttft_p50_ms": pct(ttfts, 0.50), "ttft_p99_ms": pct(ttfts, 0.99),
		"aggregate_tokens_per_s": float64(tokens) / elapsed.Seconds(), "content_chunks": tokens,
		"rss_after_warmup_min_mb": memMin / (1 << 20), "rss_after_warmup_max_mb": memMax / (1 << 20),
		"rss_spread_pct": 100 * (memMax - memMin) / max(memMin, 1),
		"goroutines_before": before["go_goroutines"], "goroutines_after": after["go_goroutines"],
	}
	b, _ := json.MarshalIndent(summary, "", "  ")
	fmt.Println(string(b))
	if *out != "" {
		_ = os.WriteFile(*out, b, 0o644)
	}
	if firstErr != nil {
		fmt.Fprintln(os.Stderr, "loadtest: first error:", firstErr)
		os.Exit(1)
	}
}

// stream sends one streaming chat request and counts content chunks until [DONE].
func stream(ctx context.Context, base, q string, maxTokens int) result {
	body, _ := json.Marshal(map[string]any{
		"messages": []map[string]string{{"role": "user", "content": q}}, "stream": true, "max_tokens": maxTokens, "temperature": 0.7,
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return result{status: resp.StatusCode}
	}
	r := result{status: resp.StatusCode}
	sc := bufio.NewScanner(resp.Body)
	done := false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		data := strings.TrimPrefix(line, "data: ")
		if data == "[DONE]" {
			done = true
			break
		}
		var chunk struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
			Error *struct{ Message string } `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			return result{err: fmt.Errorf("bad chunk %q: %w", data, err)}
		}
		if chunk.Error != nil {
			return result{err: fmt.Errorf("stream error: %s", chunk.Error.Message)}
		}
		if len(chunk.Choices) > 0 && chunk.Choices[0].Delta.Content != "" {
			if r.tokens == 0 {
				r.ttft = time.Since(start)
			}
			r.tokens++
		}
	}
	if !done {
		if err := sc.Err(); err != nil {
			return result{err: err}
		}
		return result{err: fmt.Errorf("stream ended without [DONE]")}
	}
	return r
}

// scrape reads the plain gauges of the server's /metrics.
func scrape(base string) map[string]float64 {
	m := map[string]float64{}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return m
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.Contains(line, "{") {
			continue
		}
		var name string
		var v float64
		if _, err := fmt.Sscanf(line, "%s %g", &name, &v); err == nil {
			m[name] = v
		}
	}
	return m
}

func pct(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	i := int(p * float64(len(d)-1))
	return float64(d[i].Microseconds()) / 1000
}

func minMax(v []float64) (lo, hi float64) {
	for i, x := range v {
		if i == 0 || x < lo {
			lo = x
		}
		if x > hi {
			hi = x
		}
	}
	return lo, hi
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "::1" || strings.HasPrefix(host, "127.")
}
