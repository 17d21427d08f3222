package main

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// configField is one koanf key of a (flattened) config struct.
type configField struct {
	Key   string
	Index []int // reflect field index path from the top struct
	Help  string
	Type  reflect.Type
}

// configFields lists the koanf keys of a struct type in declaration order, flattening squashed
// structs; a key seen twice (a seed shared by two sections) is listed once.
func configFields(t reflect.Type) []configField {
	var out []configField
	seen := map[string]bool{}
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("koanf")
			idx := append(slices.Clone(index), i)
			name, opts, _ := strings.Cut(tag, ",")
			if opts == "squash" && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			if name == "" || name == "-" || !f.IsExported() || seen[name] {
				continue
			}
			seen[name] = true
			help, ok := f.Tag.Lookup("help")
			if !ok {
				help = trainFlagHelp[name] // train's settings live in train/data and train
			}
			out = append(out, configField{Key: name, Index: idx, Help: help, Type: f.Type})
		}
	}
	walk(t, nil)
	return out
}

var durationType = reflect.TypeOf(time.Duration(0))

// structFlags is a command's flags function: one flag per koanf key of the config struct v (its
// help tag says what it does), with v's values as the defaults, in declaration order after the
// leading keys.
func structFlags(v any, leading ...string) func(*pflag.FlagSet) {
	return func(fs *pflag.FlagSet) { defineStructFlags(fs, reflect.ValueOf(v), leading) }
}

func defineStructFlags(fs *pflag.FlagSet, v reflect.Value, leading []string) {
	fields := configFields(v.Type())
	rank := func(k string) int {
		if i := slices.Index(leading, k); i >= 0 {
			return i
		}
		return len(leading)
	}
	slices.SortStableFunc(fields, func(a, b configField) int { return rank(a.Key) - rank(b.Key) })
	for _, f := range fields {
		if fs.Lookup(f.Key) != nil {
			continue
		}
		def := v.FieldByIndex(f.Index)
		switch {
		case f.Type == durationType:
			fs.Duration(f.Key, time.Duration(def.Int()), f.Help)
		case f.Type.Kind() == reflect.String:
			fs.String(f.Key, def.String(), f.Help)
		case f.Type.Kind() == reflect.Bool:
			fs.Bool(f.Key, def.Bool(), f.Help)
		case f.Type.Kind() == reflect.Int:
			fs.Int(f.Key, int(def.Int()), f.Help)
		case f.Type.Kind() == reflect.Int64:
			fs.Int64(f.Key, def.Int(), f.Help)
		case f.Type.Kind() == reflect.Float64:
			fs.Float64(f.Key, def.Float(), f.Help)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.String:
			fs.StringSlice(f.Key, def.Interface().([]string), f.Help+" (comma-separated)")
		default:
			panic(fmt.Sprintf("config field %s has type %s, which has no flag kind; add it to defineStructFlags", f.Key, f.Type))
		}
	}
}
