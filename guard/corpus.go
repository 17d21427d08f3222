package guard

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/medassist/medassist/model"
)

// Item is one labelled example: a corpus line or a `medassist guard eval` line. It holds a single
// message (Text) or a conversation (Messages), whose latest user turn carries the label.
type Item struct {
	Label    string          `json:"label"` // emergency, medical or nonmedical
	Text     string          `json:"text,omitempty"`
	Messages []model.Message `json:"messages,omitempty"`
	// Source says where the example comes from: written by hand, generated (by which generator and
	// version) or taken from a public source (which, under which licence).
	Source string `json:"source,omitempty"`
}

// Conversation is the item as a conversation: its messages, or its text as one user turn.
func (it Item) Conversation() []model.Message {
	if len(it.Messages) > 0 {
		return it.Messages
	}
	return []model.Message{{Role: RoleUser, Content: it.Text}}
}

// Class is the item's class index (see ClassNames).
func (it Item) Class() int { return classOf(it.Label) }

// ReadItems reads labelled JSON Lines; name is used in errors.
func ReadItems(r io.Reader, name string) ([]Item, error) {
	var out []Item
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var it Item
		if err := json.Unmarshal([]byte(line), &it); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		if it.Class() < 0 {
			return nil, fmt.Errorf("%s:%d: label %q: want emergency, medical or nonmedical", name, n, it.Label)
		}
		if (it.Text == "") == (len(it.Messages) == 0) {
			return nil, fmt.Errorf("%s:%d: want exactly one of text and messages", name, n)
		}
		out = append(out, it)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// ReadItemsFile reads one labelled JSON Lines file.
func ReadItemsFile(path string) ([]Item, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadItems(f, path)
}

// LoadCorpus reads every *.jsonl file of dir, in name order.
func LoadCorpus(dir string) ([]Item, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("guard corpus: no *.jsonl files in %s", dir)
	}
	sort.Strings(paths)
	var all []Item
	for _, p := range paths {
		items, err := ReadItemsFile(p)
		if err != nil {
			return nil, fmt.Errorf("guard corpus: %w", err)
		}
		for _, it := range items {
			if it.Source == "" {
				return nil, fmt.Errorf("guard corpus: %s: an example without a source (%q); every example says where it comes from", p, it.Text)
			}
		}
		all = append(all, items...)
	}
	return all, nil
}

// TrainingTexts are the texts the head learns from, with their classes: a message as it is; for a
// conversation, its latest user turn alone and, when that turn is a follow-up, read with the turn
// before it, as Check reads it. Conversations labelled emergency are left out: their label may
// come from an earlier turn, which Check handles apart.
func TrainingTexts(items []Item) ([]string, []int) {
	var texts []string
	var ys []int
	for _, it := range items {
		if len(it.Messages) == 0 {
			texts, ys = append(texts, it.Text), append(ys, it.Class())
			continue
		}
		if it.Class() == classEmergency {
			continue
		}
		for _, t := range turnTexts(it.Messages) {
			texts, ys = append(texts, t), append(ys, it.Class())
		}
	}
	return texts, ys
}

// turnTexts are the texts the head reads for a conversation's latest user turn: the turn alone and,
// for a follow-up, the turn with the user turn and the assistant's question before it.
func turnTexts(conv []model.Message) []string {
	last := lastUserTurn(conv)
	if last < 0 {
		return nil
	}
	text := conv[last].Content
	prev, question := contextOf(conv[:last])
	if !isFollowUp(len(analyze(text).toks), prev, question) {
		return []string{text}
	}
	return []string{text, joinTurns(prev, question, text)}
}
