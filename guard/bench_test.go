package guard

import (
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// latencyInputs are the labelled messages plus a few long ones at the character limit: the
// distribution the latency figures are measured over.
func latencyInputs(t testing.TB) []string {
	var in []string
	for _, l := range loadLabelled(t) {
		in = append(in, l.Text)
	}
	long := strings.Repeat("My chest has felt tight since this morning and I keep coughing, what should I do? ", 60)
	for _, n := range []int{1000, 2000, 3990} {
		in = append(in, long[:n])
	}
	return in
}

// threadCPU is the CPU time the calling OS thread has used.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// timings runs every input rounds times and returns the sorted wall-clock and thread-CPU times of
// single calls. The CPU time is what Check costs on this CPU whatever else the machine is running.
func timings(g *Guard, inputs []string, rounds int) (wall, cpu []time.Duration) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for r := 0; r < rounds; r++ {
		for _, text := range inputs {
			c0, w0 := threadCPU(), time.Now()
			g.Check(text)
			wall = append(wall, time.Since(w0))
			cpu = append(cpu, threadCPU()-c0)
		}
	}
	sort.Slice(wall, func(a, b int) bool { return wall[a] < wall[b] })
	sort.Slice(cpu, func(a, b int) bool { return cpu[a] < cpu[b] })
	return wall, cpu
}

func pct(ds []time.Duration, p int) time.Duration { return ds[len(ds)*p/100] }

// BenchmarkCheck reports the mean time per Check (ns/op) and, as custom metrics, the 50th and 99th
// percentile of single calls over the labelled messages and long inputs, in wall-clock time and in
// CPU time of the calling thread.
func BenchmarkCheck(b *testing.B) {
	g := testGuard(b)
	inputs := latencyInputs(b)
	b.ReportAllocs()
	b.ResetTimer()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	wall := make([]time.Duration, 0, b.N)
	cpu := make([]time.Duration, 0, b.N)
	for i := 0; i < b.N; i++ {
		c0, w0 := threadCPU(), time.Now()
		g.Check(inputs[i%len(inputs)])
		wall = append(wall, time.Since(w0))
		cpu = append(cpu, threadCPU()-c0)
	}
	b.StopTimer()
	sort.Slice(wall, func(a, c int) bool { return wall[a] < wall[c] })
	sort.Slice(cpu, func(a, c int) bool { return cpu[a] < cpu[c] })
	b.ReportMetric(float64(pct(wall, 50).Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(pct(wall, 99).Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(pct(cpu, 50).Nanoseconds()), "p50-cpu-ns")
	b.ReportMetric(float64(pct(cpu, 99).Nanoseconds()), "p99-cpu-ns")
}

// BenchmarkCheckLong is the worst case: a message at the 4,000-character limit.
func BenchmarkCheckLong(b *testing.B) {
	g := testGuard(b)
	long := latencyInputs(b)
	text := long[len(long)-1]
	b.ReportAllocs()
	b.ResetTimer()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c0 := threadCPU()
	for i := 0; i < b.N; i++ {
		g.Check(text)
	}
	b.ReportMetric(float64((threadCPU()-c0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// TestCheckLatency holds p99 under the 2 ms, measured as the CPU time of single calls (the
// machine may be shared: wall-clock time then also counts waiting for a core, and is only logged).
func TestCheckLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	g := testGuard(t)
	inputs := latencyInputs(t)
	wall, cpu := timings(g, inputs, 3)
	t.Logf("Check over %d calls: wall p50 %v p99 %v; CPU p50 %v p99 %v", len(wall), pct(wall, 50), pct(wall, 99), pct(cpu, 50), pct(cpu, 99))
	if pct(cpu, 99) >= 2*time.Millisecond {
		t.Errorf("p99 CPU time %v >= 2ms", pct(cpu, 99))
	}
}
