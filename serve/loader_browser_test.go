package serve

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// While the model loads, the chat page says what the loader is doing; when loading fails, it says why.
func TestChatPageShowsLoadStage(t *testing.T) {
	ctx := newBrowser(t)
	h := newHarness(t, nil, nil)
	h.srv.SetLoadStatus("pulling org/model (revision main)")
	notice := `document.getElementById('notice')`
	run(t, ctx, "load /", chromedp.Navigate(h.url+"/"),
		chromedp.Poll[chromedp.Void](notice+`.innerText.includes('pulling org/model')`, chromedp.WithPollingTimeout(10*time.Second)))
	if s := eval[string](t, ctx, `document.getElementById('status').innerText`); s != "loading model…" {
		t.Errorf("status %q while loading", s)
	}
	err := errors.New("pull org/model: repository not found")
	h.srv.loadErr.Store(&err)
	run(t, ctx, "wait for the failure", chromedp.Poll[chromedp.Void](notice+`.innerText.includes('repository not found')`,
		chromedp.WithPollingTimeout(10*time.Second)))
	if s := eval[string](t, ctx, notice+`.innerText`); !strings.HasPrefix(s, "The model failed to load") {
		t.Errorf("notice %q after the failure", s)
	}
	if !eval[bool](t, ctx, `document.getElementById('status').classList.contains('down')`) {
		t.Error("status not marked down after the failure")
	}
}
