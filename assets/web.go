package assets

import _ "embed"

//go:embed web/index.html
var chatPage []byte

// ChatPage is the embedded single-file chat web UI (no external resources: it works offline).
func ChatPage() []byte { return chatPage }
