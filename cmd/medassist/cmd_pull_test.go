package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medassist/medassist/hub/hubtest"
)

// runCaptured runs the binary's main in-process with stdout and stderr captured.
func runCaptured(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	dir := t.TempDir()
	outF, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	errF, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = outF, errF
	code = runMain(args)
	os.Stdout, os.Stderr = oldOut, oldErr
	outF.Close()
	errF.Close()
	o, _ := os.ReadFile(outF.Name())
	e, _ := os.ReadFile(errF.Name())
	return code, string(o), string(e)
}

// pullEnv points the Hugging Face variables at a fake Hub and an empty HF_HOME.
func pullEnv(t *testing.T, endpoint string) (hfHome string) {
	hfHome = filepath.Join(t.TempDir(), "hf")
	t.Setenv("HF_ENDPOINT", endpoint)
	t.Setenv("HF_HOME", hfHome)
	for _, k := range []string{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN",
		"HF_TOKEN_PATH", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "MEDASSIST_CONFIG"} {
		t.Setenv(k, "")
	}
	return hfHome
}

func TestPullCommand(t *testing.T) {
	const commit = "c0ffee0123456789abcdef0123456789abcdef01"
	weights := []byte(strings.Repeat("safetensors bytes ", 10_000))
	model := hubtest.Repo{ID: "TinyLlama/TinyLlama-1.1B-Chat-v1.0", Commits: []hubtest.Commit{{SHA: commit, Refs: []string{"main"}, Files: []hubtest.File{
		{Path: "config.json", Data: []byte(`{"model_type": "llama"}`)},
		{Path: "tokenizer.model", Data: []byte("sentencepiece"), LFS: true},
		{Path: "model.safetensors", Data: weights, LFS: true},
		{Path: "pytorch_model.bin", Data: []byte("pickled"), LFS: true},
	}}}}
	data := hubtest.Repo{ID: "medalpaca/medical_meadow_medical_flashcards", Type: "dataset", Commits: []hubtest.Commit{{SHA: commit, Refs: []string{"main"}, Files: []hubtest.File{
		{Path: "medical_meadow_wikidoc_medical_flashcards.json", Data: []byte(`[{"input": "q", "output": "a"}]`), LFS: true},
	}}}}
	gated := hubtest.Repo{ID: "org/gated", Private: true, Commits: []hubtest.Commit{{SHA: commit, Refs: []string{"main"}, Files: []hubtest.File{
		{Path: "config.json", Data: []byte(`{}`)},
	}}}}
	s := hubtest.New(t, hubtest.Options{CDN: true, Token: "hf_ok"}, model, data, gated)
	hfHome := pullEnv(t, s.URL)

	code, out, errOut := runCaptured(t, "pull", model.ID, "--include", "*.safetensors,config.json")
	snap := filepath.Join(hfHome, "hub", "models--TinyLlama--TinyLlama-1.1B-Chat-v1.0", "snapshots", commit)
	if code != 0 || out != snap+"\n" {
		t.Fatalf("pull: exit %d, stdout %q, want %q; stderr:\n%s", code, out, snap, errOut)
	}
	got, err := os.ReadFile(filepath.Join(snap, "model.safetensors"))
	if err != nil || string(got) != string(weights) {
		t.Fatalf("model.safetensors: %d bytes, %v", len(got), err)
	}
	if _, err := os.Lstat(filepath.Join(snap, "tokenizer.model")); err == nil {
		t.Fatal("tokenizer.model was not included")
	}

	// Default selection: everything but the other weight format; cached files are not fetched again.
	s.Reset()
	if code, out, errOut := runCaptured(t, "pull", model.ID, "-q"); code != 0 || out != snap+"\n" {
		t.Fatalf("second pull: exit %d, %q\n%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(snap, "tokenizer.model")); err != nil {
		t.Fatal(err)
	}
	if s.Count("GET", "model.safetensors") != 0 || s.Count("GET", "pytorch_model.bin") != 0 || s.Downloads() != 1 {
		t.Fatalf("second pull downloaded %d files: %+v", s.Downloads(), s.Requests())
	}

	// Offline: served from the cache, with no request; a missing file is named with the fix.
	s.Reset()
	t.Setenv("HF_HUB_OFFLINE", "1")
	if code, out, errOut := runCaptured(t, "pull", model.ID, "--include", "config.json,tokenizer.model"); code != 0 || out != snap+"\n" {
		t.Fatalf("offline pull: exit %d, %q\n%s", code, out, errOut)
	}
	code, _, errOut = runCaptured(t, "pull", model.ID, "--offline", "--include", "pytorch_model.bin")
	if code != 1 || !strings.Contains(errOut, "pytorch_model.bin") || !strings.Contains(errOut, "medassist pull "+model.ID) {
		t.Fatalf("offline miss: exit %d, stderr:\n%s", code, errOut)
	}
	if n := len(s.Requests()); n != 0 {
		t.Fatalf("offline pulls made %d requests", n)
	}
	t.Setenv("HF_HUB_OFFLINE", "")

	// A dataset.
	code, out, errOut = runCaptured(t, "pull", data.ID, "--type", "dataset", "--revision", commit)
	dsSnap := filepath.Join(hfHome, "hub", "datasets--medalpaca--medical_meadow_medical_flashcards", "snapshots", commit)
	if code != 0 || out != dsSnap+"\n" {
		t.Fatalf("dataset pull: exit %d, %q\n%s", code, out, errOut)
	}

	// Gated without, then with, a token.
	code, _, errOut = runCaptured(t, "pull", gated.ID)
	if code != 1 || !strings.Contains(errOut, "gated or private") || !strings.Contains(errOut, "HF_TOKEN") {
		t.Fatalf("gated pull: exit %d\n%s", code, errOut)
	}
	t.Setenv("HF_TOKEN", "hf_ok")
	if code, _, errOut := runCaptured(t, "pull", gated.ID); code != 0 {
		t.Fatalf("gated pull with HF_TOKEN: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := runCaptured(t, "pull", "org/missing"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("missing repo: exit %d\n%s", code, errOut)
	}
}

func TestPullUsageErrors(t *testing.T) {
	pullEnv(t, "http://127.0.0.1:1")
	for _, args := range [][]string{
		{"pull"},
		{"pull", "a/b", "c/d"},
		{"pull", "a/b", "--type", "space"},
		{"pull", "a/b", "--retries", "-1"},
	} {
		if code, _, errOut := runCaptured(t, args...); code != 2 || !strings.Contains(errOut, "Usage: medassist pull") {
			t.Errorf("%v: exit %d, want 2 with usage\n%s", args, code, errOut)
		}
	}
}
