package gguf

import (
	"errors"
	"fmt"
	"strconv"
)

// asInt converts any integer metadata value to int64.
func asInt(v any) (int64, error) {
	switch x := v.(type) {
	case uint8:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int64:
		return x, nil
	case uint64:
		if x > 1<<62 {
			return 0, fmt.Errorf("%d is too large", x)
		}
		return int64(x), nil
	}
	return 0, fmt.Errorf("%v (%T) is not an integer", v, v)
}

// meta reads typed metadata values and keeps the first error, so that a converter reads every
// key it needs and checks once.
type meta struct {
	gf  *File
	err error
}

func (m *meta) fail(key string, err error) {
	if m.err == nil {
		m.err = fmt.Errorf("metadata %s: %w", key, err)
	}
}

// has reports whether key is present.
func (m *meta) has(key string) bool { _, ok := m.gf.Metadata[key]; return ok }

// str is a string value, def when absent.
func (m *meta) str(key, def string) string {
	v, ok := m.gf.Metadata[key]
	if !ok {
		return def
	}
	s, isStr := v.(string)
	if !isStr {
		m.fail(key, fmt.Errorf("%v (%T) is not a string", v, v))
	}
	return s
}

// integer is an integer value of any width, def when absent.
func (m *meta) integer(key string, def int64) int64 {
	v, ok := m.gf.Metadata[key]
	if !ok {
		return def
	}
	n, err := asInt(v)
	if err != nil {
		m.fail(key, err)
	}
	return n
}

// required is an integer value that must be present.
func (m *meta) required(key string) int {
	if !m.has(key) {
		m.fail(key, errors.New("missing (the file does not describe the model's shape)"))
		return 0
	}
	return int(m.integer(key, 0))
}

// float is a float32 or float64 value as float64, def when absent. A float32 is converted through
// its shortest decimal form, so 1e-5 stored as float32 reads as 1e-05, not 9.999999747378752e-06.
func (m *meta) float(key string, def float64) float64 {
	v, ok := m.gf.Metadata[key]
	if !ok {
		return def
	}
	switch x := v.(type) {
	case float32:
		f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(x), 'g', -1, 32), 64)
		return f
	case float64:
		return x
	}
	m.fail(key, fmt.Errorf("%v (%T) is not a float", v, v))
	return def
}

// boolean is a bool value, def when absent.
func (m *meta) boolean(key string, def bool) bool {
	v, ok := m.gf.Metadata[key]
	if !ok {
		return def
	}
	b, isBool := v.(bool)
	if !isBool {
		m.fail(key, fmt.Errorf("%v (%T) is not a bool", v, v))
	}
	return b
}

// tokenID is an optional token id: -1 when absent.
func (m *meta) tokenID(key string) int {
	return int(m.integer(key, -1))
}

// strings is an array of strings; nil when absent.
func (m *meta) strings(key string) []string {
	v, ok := m.gf.Metadata[key]
	if !ok {
		return nil
	}
	s, isStrs := v.([]string)
	if !isStrs {
		m.fail(key, fmt.Errorf("%T is not an array of strings", v))
	}
	return s
}

// int32s is an array of int32; nil when absent.
func (m *meta) int32s(key string) []int32 {
	v, ok := m.gf.Metadata[key]
	if !ok {
		return nil
	}
	s, isInts := v.([]int32)
	if !isInts {
		m.fail(key, fmt.Errorf("%T is not an array of int32", v))
	}
	return s
}

// float32s is an array of float32; nil when absent.
func (m *meta) float32s(key string) []float32 {
	v, ok := m.gf.Metadata[key]
	if !ok {
		return nil
	}
	s, isFloats := v.([]float32)
	if !isFloats {
		m.fail(key, fmt.Errorf("%T is not an array of float32", v))
	}
	return s
}
