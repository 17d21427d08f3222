package assets

import (
	_ "embed"
	"strings"
)

//go:embed eval/prompts.txt
var evalPrompts string

// EvalPrompts are the manual test prompts that `medassist eval` has every model answer
// (eval/prompts.txt: one per line, '#' comments and blank lines skipped).
func EvalPrompts() []string { return ParsePromptLines(evalPrompts) }

// ParsePromptLines reads one prompt per line, skipping blank lines and lines starting with '#'.
func ParsePromptLines(text string) []string {
	var out []string
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	return out
}
