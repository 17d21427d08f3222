package tokenizer

import (
	"slices"
	"strings"
	"testing"

	"github.com/medassist/medassist/internal/testutil"
)

// all-MiniLM-L6-v2's tokenizer.json pads and truncates to 128 tokens; Encode must do neither,
// as transformers' encode() does not.
func TestEncodeIgnoresFileTruncationAndPadding(t *testing.T) {
	tok, err := Load(testutil.MiniLM(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if ids := tok.Encode("hello world", true); len(ids) != 4 {
		t.Errorf("Encode(hello world) = %v, want [CLS] hello world [SEP] unpadded", ids)
	}
	if ids := tok.Encode(strings.Repeat("word ", 300), false); len(ids) != 300 {
		t.Errorf("300 words gave %d ids, want 300 (no truncation)", len(ids))
	}
	prefix, suffix := tok.SpecialAround()
	if !slices.Equal(prefix, []int{101}) || !slices.Equal(suffix, []int{102}) {
		t.Errorf("SpecialAround = %v, %v; want [CLS]=101, [SEP]=102", prefix, suffix)
	}
}
