// Command loadtest drives a running medassist server on loopback with concurrent streaming chat
// clients for a bounded time and reports time to first token, throughput, rejections and errors, and
// the server's memory and goroutines (read from its /metrics) before, during and after the load.
// Clients honour Retry-After on 429/503, as a well-behaved client does.
//
//	go run ./bench/loadtest --url http://127.0.0.1:7860 --clients 8 --duration 60s
//
// It exits 1 when a request failed in a way other than an intended 429/503, when the server's memory
// grew or shrank by more than --rss-tolerance after the warm-up, or when its goroutines did not come
// back to the baseline.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

var questions = []string{
	"What are the symptoms of iron deficiency anemia?",
	"How does metformin lower blood glucose?",
	"What is the first-line treatment for hypertension?",
	"What causes a high TSH level?",
	"What are the early signs of type 2 diabetes?",
	"How is asthma diagnosed?",
	"What does an elevated troponin indicate?",
	"What are the side effects of ACE inhibitors?",
}

type options struct {
	base         string
	clients      int
	duration     time.Duration
	maxTokens    int
	warmup       time.Duration
	rssTolerance float64
	goroutineTol int
	out          string
}

// result is one request as a client saw it.
type result struct {
	status     int
	ttft       time.Duration // to the first content chunk
	tokens     int           // completion_tokens from the usage chunk
	retryAfter time.Duration
	err        error
}

// summary is what the run reports (and writes with --json).
type summary struct {
	Clients          int      `json:"clients"`
	DurationS        float64  `json:"duration_s"`
	Completed        int      `json:"completed"`
	Rejected         int      `json:"rejected_429_503"`
	Errors           int      `json:"errors"`
	FirstError       string   `json:"first_error,omitempty"`
	TTFTp50ms        float64  `json:"ttft_p50_ms"`
	TTFTp90ms        float64  `json:"ttft_p90_ms"`
	TTFTp99ms        float64  `json:"ttft_p99_ms"`
	Tokens           int      `json:"completion_tokens"`
	TokensPerS       float64  `json:"aggregate_tokens_per_s"`
	RequestsPerS     float64  `json:"requests_per_s"`
	ServerTTFTp50ms  float64  `json:"server_ttft_p50_ms"`
	RSSBeforeMB      float64  `json:"rss_before_mb"`
	RSSMinMB         float64  `json:"rss_after_warmup_min_mb"`
	RSSMaxMB         float64  `json:"rss_after_warmup_max_mb"`
	RSSMedianMB      float64  `json:"rss_after_warmup_median_mb"`
	RSSDeviationPct  float64  `json:"rss_max_deviation_from_median_pct"`
	RSSSamples       int      `json:"rss_samples"`
	GoroutinesBefore float64  `json:"goroutines_before"`
	GoroutinesPeak   float64  `json:"goroutines_peak"`
	GoroutinesAfter  float64  `json:"goroutines_after"`
	Pass             bool     `json:"pass"`
	Failures         []string `json:"failures,omitempty"`
}

func main() {
	var o options
	flag.StringVar(&o.base, "url", "http://127.0.0.1:7860", "server base URL (loopback only)")
	flag.IntVar(&o.clients, "clients", 8, "concurrent streaming clients")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "how long to send requests")
	flag.IntVar(&o.maxTokens, "max-tokens", 64, "max_tokens per request")
	flag.DurationVar(&o.warmup, "warmup", 0, "memory samples start after this (default: a sixth of --duration)")
	flag.Float64Var(&o.rssTolerance, "rss-tolerance", 10, "allowed deviation (%) of the server's RSS from its median after the warm-up")
	flag.IntVar(&o.goroutineTol, "goroutine-tolerance", 2, "goroutines above the baseline still accepted after the run")
	flag.StringVar(&o.out, "json", "", "also write the summary as JSON to this file")
	flag.Parse()
	if u, err := url.Parse(o.base); err != nil || !isLoopback(u.Hostname()) {
		fmt.Fprintln(os.Stderr, "loadtest: --url must be a loopback address (127.0.0.0/8, localhost or [::1])")
		os.Exit(2)
	}
	if o.warmup == 0 {
		o.warmup = o.duration / 6
	}
	s, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(2)
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	fmt.Println(string(b))
	if o.out != "" {
		if err := os.WriteFile(o.out, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest:", err)
		}
	}
	if !s.Pass {
		fmt.Fprintln(os.Stderr, "loadtest: FAIL:", strings.Join(s.Failures, "; "))
		os.Exit(1)
	}
}

func run(o options) (*summary, error) {
	before, err := scrape(o.base)
	if err != nil {
		return nil, fmt.Errorf("the server's /metrics: %w (is it running and ready?)", err)
	}
	transport := &http.Transport{MaxIdleConnsPerHost: o.clients}
	client := &http.Client{Transport: transport}
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()

	mon := &monitor{base: o.base, warm: time.Now().Add(o.warmup)}
	monDone := make(chan struct{})
	go func() { mon.loop(ctx); close(monDone) }()

	results := make(chan result, 1024)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				r := stream(ctx, client, o.base, questions[(i+n)%len(questions)], o.maxTokens)
				if ctx.Err() != nil && r.err != nil {
					return // cut off by the end of the run, not a server error
				}
				results <- r
				if r.retryAfter > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(r.retryAfter):
					}
				}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	s := &summary{Clients: o.clients}
	var ttfts []time.Duration
	for r := range results {
		switch {
		case r.err != nil:
			s.Errors++
			if s.FirstError == "" {
				s.FirstError = r.err.Error()
			}
		case r.status == http.StatusTooManyRequests || r.status == http.StatusServiceUnavailable:
			s.Rejected++
		case r.status == http.StatusOK:
			s.Completed++
			s.Tokens += r.tokens
			ttfts = append(ttfts, r.ttft)
		default:
			s.Errors++
			if s.FirstError == "" {
				s.FirstError = fmt.Sprintf("status %d", r.status)
			}
		}
	}
	elapsed := time.Since(start)
	<-monDone

	// let the server wind down, then drop our idle keep-alive connections (each holds a server goroutine)
	transport.CloseIdleConnections()
	time.Sleep(2 * time.Second)
	after, err := scrape(o.base)
	if err != nil {
		return nil, fmt.Errorf("the server's /metrics after the run: %w", err)
	}

	sort.Slice(ttfts, func(i, j int) bool { return ttfts[i] < ttfts[j] })
	s.DurationS = elapsed.Seconds()
	s.TTFTp50ms, s.TTFTp90ms, s.TTFTp99ms = pct(ttfts, 0.50), pct(ttfts, 0.90), pct(ttfts, 0.99)
	s.TokensPerS = float64(s.Tokens) / elapsed.Seconds()
	s.RequestsPerS = float64(s.Completed) / elapsed.Seconds()
	s.ServerTTFTp50ms = 1000 * histQuantile(before, after, "medassist_time_to_first_token_seconds", 0.5)
	s.RSSBeforeMB = before.value("process_resident_memory_bytes") / (1 << 20)
	s.GoroutinesBefore, s.GoroutinesAfter, s.GoroutinesPeak = before.value("go_goroutines"), after.value("go_goroutines"), mon.peakGoroutines()
	rss := mon.rssSamples()
	s.RSSSamples = len(rss)
	if len(rss) > 0 {
		sort.Float64s(rss)
		med := rss[len(rss)/2]
		s.RSSMinMB, s.RSSMaxMB, s.RSSMedianMB = rss[0]/(1<<20), rss[len(rss)-1]/(1<<20), med/(1<<20)
		s.RSSDeviationPct = 100 * max(med-rss[0], rss[len(rss)-1]-med) / med
	}
	s.judge(o)
	return s, nil
}

// judge applies the pass criteria.
func (s *summary) judge(o options) {
	fail := func(format string, args ...any) { s.Failures = append(s.Failures, fmt.Sprintf(format, args...)) }
	if s.Errors > 0 {
		fail("%d requests failed (first: %s)", s.Errors, s.FirstError)
	}
	if s.Completed == 0 {
		fail("no request completed")
	}
	if s.RSSSamples < 3 {
		fail("only %d memory samples after the warm-up", s.RSSSamples)
	} else if s.RSSDeviationPct > o.rssTolerance {
		fail("server RSS moved %.1f%% from its median after the warm-up (limit %.0f%%)", s.RSSDeviationPct, o.rssTolerance)
	}
	if s.GoroutinesAfter > s.GoroutinesBefore+float64(o.goroutineTol) {
		fail("server goroutines %v after the run, %v before", s.GoroutinesAfter, s.GoroutinesBefore)
	}
	s.Pass = len(s.Failures) == 0
}

// stream sends one streaming chat request and reads it to [DONE].
func stream(ctx context.Context, client *http.Client, base, q string, maxTokens int) result {
	body, _ := json.Marshal(map[string]any{
		"messages": []map[string]string{{"role": "user", "content": q}}, "stream": true, "max_tokens": maxTokens,
		"temperature": 0.7, "stream_options": map[string]bool{"include_usage": true},
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		r := result{status: resp.StatusCode}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			r.retryAfter = time.Duration(s) * time.Second
		} else if r.status == http.StatusTooManyRequests || r.status == http.StatusServiceUnavailable {
			r.err = fmt.Errorf("status %d without Retry-After", r.status)
		}
		return r
	}
	r := result{status: resp.StatusCode}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			return result{err: fmt.Errorf("not an SSE data line: %q", line)}
		}
		if data == "[DONE]" {
			if r.tokens == 0 {
				return result{err: errors.New("stream without usage or content")}
			}
			return r
		}
		var chunk struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
			Usage *struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
			Error *struct{ Message string } `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			return result{err: fmt.Errorf("bad chunk %q: %w", data, err)}
		}
		if chunk.Error != nil {
			return result{err: fmt.Errorf("stream error: %s", chunk.Error.Message)}
		}
		if len(chunk.Choices) > 0 && chunk.Choices[0].Delta.Content != "" && r.ttft == 0 {
			r.ttft = time.Since(start)
		}
		if chunk.Usage != nil {
			r.tokens = chunk.Usage.CompletionTokens
		}
	}
	if err := sc.Err(); err != nil {
		return result{err: err}
	}
	return result{err: errors.New("stream ended without [DONE]")}
}

// monitor samples the server's memory (after the warm-up) and goroutines every second.
type monitor struct {
	base string
	warm time.Time
	mu   sync.Mutex
	rss  []float64
	peak float64
}

func (m *monitor) loop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s, err := scrape(m.base)
			if err != nil {
				continue
			}
			m.mu.Lock()
			m.peak = max(m.peak, s.value("go_goroutines"))
			if now.After(m.warm) && s.value("process_resident_memory_bytes") > 0 {
				m.rss = append(m.rss, s.value("process_resident_memory_bytes"))
			}
			m.mu.Unlock()
		}
	}
}

func (m *monitor) rssSamples() []float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]float64(nil), m.rss...)
}

func (m *monitor) peakGoroutines() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peak
}

// samples are the series of one /metrics scrape, keyed by name{labels} as written.
type samples map[string]float64

func (s samples) value(name string) float64 { return s[name] }

// scrape reads the server's /metrics on a connection of its own (closed afterwards, so it leaves
// no goroutine behind on the server).
func scrape(base string) (samples, error) {
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: status %d", resp.StatusCode)
	}
	m := samples{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m, sc.Err()
}

// histQuantile estimates a quantile of a histogram's observations between two scrapes (linear
// interpolation inside the bucket, as Prometheus' histogram_quantile does).
func histQuantile(before, after samples, name string, q float64) float64 {
	type bucket struct{ le, n float64 }
	var bs []bucket
	prefix := name + `_bucket{le="`
	for k, v := range after {
		le, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		le = strings.TrimSuffix(le, `"}`)
		bound, err := strconv.ParseFloat(le, 64)
		if le == "+Inf" {
			bound, err = 1e308, nil
		}
		if err == nil {
			bs = append(bs, bucket{bound, v - before[k]})
		}
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	if len(bs) == 0 || bs[len(bs)-1].n == 0 {
		return 0
	}
	rank := q * bs[len(bs)-1].n
	lo, prev := 0.0, 0.0
	for _, b := range bs {
		if b.n >= rank {
			if b.le >= 1e308 {
				return lo
			}
			return lo + (b.le-lo)*(rank-prev)/max(b.n-prev, 1e-9)
		}
		lo, prev = b.le, b.n
	}
	return lo
}

func pct(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	i := int(p * float64(len(d)-1))
	return float64(d[i].Microseconds()) / 1000
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "::1" || strings.HasPrefix(host, "127.")
}
