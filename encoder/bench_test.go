package encoder

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medassist/medassist/internal/testutil"
)

// Benchmarks of one Embed call (the guard's latency) and of load time and throughput.
// Latency percentiles are reported as p50-ms / p99-ms; run enough iterations for a p99, e.g.
//
//	go test ./encoder/ -run '^$' -bench . -benchtime 300x -cpu 2

var benchWords = strings.Fields(`my mother is 78 and takes warfarin for atrial fibrillation her cardiologist
added amiodarone last month and now she bruises easily and feels tired all the time is the combination
safe or should we ask about apixaban instead the insurance only covers part of the cost`)

// textOf returns a text that Tokenize turns into exactly n ids (or as close as words allow).
func textOf(b testing.TB, enc *Encoder, n int) string {
	var words []string
	for i := 0; len(enc.Tokenize(strings.Join(words, " "))) < n; i++ {
		words = append(words, benchWords[i%len(benchWords)])
	}
	text := strings.Join(words, " ")
	if got := len(enc.Tokenize(text)); got != n {
		b.Logf("text of %d tokens (wanted %d)", got, n)
	}
	return text
}

func BenchmarkEmbedOne(b *testing.B) {
	enc := sharedEncoder(b)
	for _, n := range []int{16, 64, 128, 256} {
		text := textOf(b, enc, n)
		b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
			if _, err := enc.Embed([]string{text}); err != nil { // warm-up
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, b.N)
			cpu0 := cpuTime()
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				if _, err := enc.Embed([]string{text}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(len(lat)), "cpu-ms/op")
			reportPercentiles(b, lat)
		})
	}
}

// cpuTime is the process's user + system CPU time: with other work on the cores, it shows the
// compute an operation needs where wall-clock latency mostly shows the wait for a core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	at := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// BenchmarkOpen is the model load: tokenizer, graph built in memory from the safetensors, session.
func BenchmarkOpen(b *testing.B) {
	dir, lib := testutil.MiniLM(b), testutil.ORTLibrary(b)
	cpu0 := cpuTime()
	for b.Loop() {
		enc, err := Open(dir, Options{ORTLib: lib})
		if err != nil {
			b.Fatal(err)
		}
		enc.Close()
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

// BenchmarkEmbedMessages embeds 1,000 short messages of varied length in one Embed call (the
// batched path of `medassist guard` over a JSON Lines file).
func BenchmarkEmbedMessages(b *testing.B) {
	enc := sharedEncoder(b)
	texts := make([]string, 1000)
	for i := range texts {
		n := 4 + (i*37)%40 // 4 to 43 words
		var w []string
		for k := 0; k < n; k++ {
			w = append(w, benchWords[(i+k*7)%len(benchWords)])
		}
		texts[i] = strings.Join(w, " ") + "?"
	}
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := enc.Embed(texts); err != nil {
			b.Fatal(err)
		}
	}
	per := float64(b.N * len(texts))
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/per, "ms/msg")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/per, "cpu-ms/msg")
}
