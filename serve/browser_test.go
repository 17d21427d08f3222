package serve

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/medassist/medassist/guard"
	"github.com/medassist/medassist/internal/testutil"
)

// browserPath finds a Chromium or Chrome binary ($MEDASSIST_CHROME first); "" when there is none.
func browserPath() string {
	if p := os.Getenv("MEDASSIST_CHROME"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// artifactDir is where screenshots go: $MEDASSIST_ARTIFACTS, else the test's temp dir.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("MEDASSIST_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// newBrowser starts headless Chromium (no sandbox: tests may run as root) and returns a tab's context.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := browserPath()
	if path == "" {
		testutil.Missing(t, "no Chromium/Chrome binary found (apt-get install chromium, or set MEDASSIST_CHROME)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", path, err)
	}
	return ctx
}

// run runs the steps with a timeout, failing the test with what was being done.
func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	p := filepath.Join(artifactDir(t), name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d bytes)", p, len(png))
}

const (
	answerText = `(() => { const a = document.querySelectorAll('.msg.assistant'); return a.length ? a[a.length - 1].textContent : ''; })()`
	streaming  = `document.getElementById('send').disabled`
	answerDone = `document.querySelectorAll('.msg.assistant').length > 0 && !document.getElementById('send').disabled`
)

// The chat page in a real browser: an example question streams an answer with the disclaimer, an
// emergency message raises the banner; screenshots at phone and desktop sizes.
func TestChatPageInBrowser(t *testing.T) {
	b := storiesBackend(t)
	ctx := newBrowser(t)
	disclaimer := guard.DefaultConfig().Disclaimer

	for _, vp := range []struct {
		name          string
		width, height int64
		mobile        bool
	}{
		{"phone", 390, 844, true},
		{"desktop", 1280, 800, false},
	} {
		t.Run(vp.name, func(t *testing.T) {
			gate := newGatedGen(b.Gen)
			gate.pauseAfter = 12 // the answer stops half-way until the test has seen it stream
			h := newHarness(t, withGen(b, gate), func(c *Config) { c.DefaultMaxTok = 64 })
			emulate := chromedp.EmulateViewport(vp.width, vp.height)
			if vp.mobile {
				emulate = chromedp.EmulateViewport(vp.width, vp.height, chromedp.EmulateScale(2), chromedp.EmulateMobile)
			}
			run(t, ctx, "load /", emulate, chromedp.Navigate(h.url+"/"),
				chromedp.WaitVisible(chromedp.CSS("#disclaimer")), chromedp.WaitVisible(chromedp.CSS("#examples button")))
			if s := eval[string](t, ctx, `document.getElementById('disclaimer').innerText`); !strings.Contains(s, "Medical disclaimer") ||
				!strings.Contains(s, "not a diagnosis") || !strings.Contains(s, "911") {
				t.Errorf("visible disclaimer %q", s)
			}
			run(t, ctx, "wait for ready", chromedp.Poll[chromedp.Void](`document.getElementById('status').classList.contains('ready')`,
				chromedp.WithPollingTimeout(10*time.Second)))

			run(t, ctx, "ask an example question", chromedp.Click(chromedp.CSS("#examples button")))
			select {
			case <-gate.started:
			case <-time.After(20 * time.Second):
				t.Fatal("the question never reached the model")
			}
			run(t, ctx, "see the first words", chromedp.Poll[chromedp.Void](answerText+`.length > 0`, chromedp.WithPollingTimeout(10*time.Second)))
			partial := eval[string](t, ctx, answerText)
			if !eval[bool](t, ctx, streaming) || strings.Contains(partial, disclaimer) {
				t.Errorf("mid-answer: still streaming %v, text %q", eval[bool](t, ctx, streaming), partial)
			}
			close(gate.open)
			run(t, ctx, "wait for the whole answer", chromedp.Poll[chromedp.Void](answerDone, chromedp.WithPollingTimeout(20*time.Second)))
			answer := eval[string](t, ctx, answerText)
			if !strings.HasPrefix(answer, partial) || len(answer) <= len(partial) || !strings.Contains(answer, "Summary") ||
				strings.Count(answer, disclaimer) != 1 {
				t.Errorf("answer %q after %q: want it to grow from the streamed part, with Summary and the disclaimer once", answer, partial)
			}
			if n := eval[int](t, ctx, `document.querySelectorAll('.msg.user').length`); n != 1 {
				t.Errorf("%d user bubbles", n)
			}
			screenshot(t, ctx, "chat-"+vp.name+".png")

			run(t, ctx, "send an emergency", chromedp.SendKeys(chromedp.CSS("#input"), emergency), chromedp.Click(chromedp.CSS("#send")),
				chromedp.WaitVisible(chromedp.CSS("#emergency.show")),
				chromedp.Poll[chromedp.Void](answerDone, chromedp.WithPollingTimeout(10*time.Second)))
			if v := eval[string](t, ctx, `document.getElementById('input').value`); v != "" {
				t.Errorf("the input still holds %q after sending", v)
			}
			banner := eval[string](t, ctx, `document.getElementById('emergency').textContent`)
			call := eval[string](t, ctx, `document.getElementById('call').getAttribute('href')`)
			if !strings.Contains(banner, "911") || call != "tel:911" {
				t.Errorf("emergency banner %q, call link %q", banner, call)
			}
			if n := eval[int](t, ctx, `document.querySelectorAll('.msg.assistant.emergency').length`); n != 1 {
				t.Errorf("%d emergency answers", n)
			}
			// nothing may overflow the viewport sideways (usable on a phone)
			if w := eval[int](t, ctx, `document.documentElement.scrollWidth`); int64(w) > vp.width {
				t.Errorf("page is %dpx wide in a %dpx viewport", w, vp.width)
			}
			screenshot(t, ctx, "emergency-"+vp.name+".png")

			run(t, ctx, "clear", chromedp.Click(chromedp.CSS("#clear")))
			if n := eval[int](t, ctx, `document.querySelectorAll('.msg').length`); n != 0 {
				t.Errorf("%d messages after Clear", n)
			}
			if eval[bool](t, ctx, `document.getElementById('emergency').classList.contains('show')`) {
				t.Error("emergency banner still shown after Clear")
			}
		})
	}
}
