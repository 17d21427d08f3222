package assets

import (
	_ "embed"
	"strings"
)

//go:embed prompts/system.txt
var systemPrompt string

// SystemPrompt is the default system message of a chat (prompts/system.txt, without the final
// newline): what `medassist generate` and the server put first when none is configured. It is the
// system message the fine-tuning data uses, so the model sees at inference what it saw in training.
func SystemPrompt() string { return strings.TrimSpace(systemPrompt) }
