package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
	"github.com/medassist/medassist/model"
	"github.com/medassist/medassist/tokenizer"
	"github.com/medassist/medassist/train/data"
)

// TestDatasetCommand trains a tiny run, then writes its prepared examples: they are the examples
// data.Prepare makes from the run's split, with the run's configuration; a changed flashcard file is
// refused.
func TestDatasetCommand(t *testing.T) {
	base := tinyTrainModel(t)
	tmp := t.TempDir()
	cards, err := os.ReadFile(testutil.Flashcards(t))
	if err != nil {
		t.Fatal(err)
	}
	dataFile := filepath.Join(tmp, "cards.jsonl")
	writeTestFile(t, dataFile, string(cards))
	run := filepath.Join(tmp, "run")
	if code := runMain([]string{"train", "--base", base, "--data", dataFile, "--out", run, "--max-examples", "8",
		"--max-length", "128", "--system-prompt", "", "--epochs", "1", "--batch-size", "4", "--grad-accum", "1", "--rank", "2", "--lr", "7e-3"}); code != 0 {
		t.Fatalf("train exited %d", code)
	}
	out := filepath.Join(tmp, "dataset.json")
	if code := runMain([]string{"dataset", "--train-dir", run, "--out", out}); code != 0 {
		t.Fatalf("dataset exited %d", code)
	}
	var got preparedExamples
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}

	tok, err := tokenizer.Load(base)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	tpl, err := model.LoadChatTemplate(base)
	if err != nil {
		t.Fatal(err)
	}
	cfg := data.DefaultConfig()
	cfg.Path, cfg.MaxExamples, cfg.MaxLength, cfg.SystemPrompt = dataFile, 8, 128, ""
	want, err := data.Prepare(cfg, tok, tpl, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Train) == 0 || !reflect.DeepEqual(got.Train, want.Train) || !reflect.DeepEqual(got.Val, want.Val) {
		t.Errorf("dataset wrote %d/%d train/val examples, not the run's %d/%d (or other ones)", len(got.Train), len(got.Val), len(want.Train), len(want.Val))
	}
	if got.Config["lr"] != "0.007" || got.Config["rank"] != "2" || got.Summary == nil || got.Summary.BestValPPL <= 0 {
		t.Errorf("config %v, summary %+v: want the run's", got.Config, got.Summary)
	}

	writeTestFile(t, dataFile, string(cards)+"\n")
	if _, err := remakeExamples(run); err == nil || !strings.Contains(err.Error(), "changed since the run") {
		t.Errorf("a changed flashcard file: err = %v", err)
	}
}
