// Package config loads a command's typed configuration with koanf, from these layers, each
// overriding the ones before it:
//
//  1. flag defaults (the values the command's config struct starts with);
//  2. per-run values a command layers itself (`medassist train --sweep`: the sweep's defaults, then
//     one variant's values) — the only layer a file other than --config gives;
//  3. the YAML file given by --config (or MEDASSIST_CONFIG);
//  4. MEDASSIST_* environment variables;
//  5. flags given on the command line.
//
// Keys are the flag names (kebab-case). In the YAML file they live under a section named after
// the command (serve:, train:, ...) or at the top level; in the environment a key is upper-cased
// with '-' written as '_' and '.' as '__' (MEDASSIST_MAX_NEW_TOKENS, MEDASSIST_GUARD__MAX_CHARS).
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// EnvPrefix is the prefix of environment variables that configure medassist.
const EnvPrefix = "MEDASSIST_"

// Validator is implemented by config structs that check their own fields.
type Validator interface{ Validate() error }

// Sections are the names a YAML file may group a command's keys under.
var Sections = []string{"pull", "import", "tokenize", "init", "train", "sweep", "merge", "export", "generate", "bench", "eval", "guard", "serve"}

// Load fills out (a pointer to a struct whose koanf tags equal the flag names) for the command
// named section from every layer (see the package comment); below are layer 2's maps, lowest
// first. path may be empty. out is validated when it implements Validator.
func Load(out any, section, path string, fs *pflag.FlagSet, below ...map[string]any) error {
	if err := Decode(out, section, path, fs, below...); err != nil {
		return err
	}
	if v, ok := out.(Validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("invalid configuration: %w", err)
		}
	}
	return nil
}

// Decode is Load without the validation, for a caller that completes out before checking it.
func Decode(out any, section, path string, fs *pflag.FlagSet, below ...map[string]any) error {
	k := koanf.New(".")
	for _, m := range below {
		if err := k.Load(confmap.Provider(m, ""), nil); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	if err := loadFileAndEnv(k, section, path); err != nil {
		return err
	}
	if fs != nil {
		// Flags not given on the command line fill only the keys no layer set: they are layer 1.
		if err := k.Load(posflag.Provider(fs, ".", k), nil); err != nil {
			return fmt.Errorf("flags: %w", err)
		}
	}
	if err := k.UnmarshalWithConf("", out, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// Explicit returns the keys that layers 3 to 5 set for the command named section: the keys the
// user gave rather than left at their defaults.
func Explicit(section, path string, fs *pflag.FlagSet) (map[string]bool, error) {
	k := koanf.New(".")
	if err := loadFileAndEnv(k, section, path); err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	for _, key := range k.Keys() {
		keys[key] = true
	}
	if fs != nil {
		fs.Visit(func(f *pflag.Flag) { keys[f.Name] = true })
	}
	return keys, nil
}

// loadFileAndEnv merges layers 3 (the YAML file at path, when given) and 4 (MEDASSIST_*) into k.
func loadFileAndEnv(k *koanf.Koanf, section, path string) error {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		fk := koanf.New(".")
		if err := fk.Load(file.Provider(path), yaml.Parser()); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
		// Top-level keys apply to every command; the command's own section wins over them.
		top := fk.Copy()
		for _, s := range Sections {
			top.Delete(s)
		}
		if err := k.Merge(top); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
		if section != "" && fk.Exists(section) {
			if err := k.Merge(fk.Cut(section)); err != nil {
				return fmt.Errorf("config file %s: %w", path, err)
			}
		}
	}
	if err := k.Load(env.Provider(".", env.Opt{
		Prefix: EnvPrefix,
		TransformFunc: func(key, value string) (string, any) {
			key = strings.ToLower(strings.TrimPrefix(key, EnvPrefix))
			key = strings.ReplaceAll(key, "__", ".")
			return strings.ReplaceAll(key, "_", "-"), value
		},
	}), nil); err != nil {
		return fmt.Errorf("environment: %w", err)
	}
	return nil
}

// FieldError names a bad configuration field and what is allowed.
type FieldError struct {
	Field   string // the flag/key name, e.g. "max-new-tokens"
	Value   any
	Allowed string // e.g. "between 1 and 4096" or "one of cpu, cuda, auto"
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s = %v: must be %s", e.Field, e.Value, e.Allowed)
}

// Check returns a *FieldError when ok is false. Validate methods join several with errors.Join
// so that every bad field is reported at once.
func Check(ok bool, field string, value any, allowed string) error {
	if ok {
		return nil
	}
	return &FieldError{Field: field, Value: value, Allowed: allowed}
}

// Join is errors.Join, so a Validate method reads as one expression.
func Join(errs ...error) error { return errors.Join(errs...) }
