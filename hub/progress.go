package hub

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress shows one file's download; the zero value shows nothing.
type progress struct{ bar *progressbar.ProgressBar }

// newProgress draws a bar on w for a file of size bytes (-1 unknown) of which done are already
// on disk; nothing when w is nil or the file is small.
func newProgress(w io.Writer, minBytes int64, name string, size, done int64) progress {
	if w == nil || (size >= 0 && size < minBytes) {
		return progress{}
	}
	bar := progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(name),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
	if done > 0 {
		bar.Set64(done)
	}
	return progress{bar: bar}
}

func (p progress) add(n int) {
	if p.bar != nil {
		p.bar.Add(n)
	}
}

func (p progress) set(n int64) {
	if p.bar != nil {
		p.bar.Set64(n)
	}
}

// finish completes the bar after a success, or leaves it where it stopped after a failure.
func (p progress) finish(ok bool) {
	if p.bar == nil {
		return
	}
	if ok {
		p.bar.Finish()
		return
	}
	p.bar.Exit()
}
