package engine

// ReleaseFreedMemory hands the C heap memory that creating an ONNX Runtime session freed back to
// the OS (see releaseFreedMemory), for other packages that open sessions (the sentence encoder).
func ReleaseFreedMemory() { releaseFreedMemory() }
