package guard

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/medassist/medassist/hub"
	"github.com/medassist/medassist/internal/config"
)

// Config is what the guard can be told. Keys are flag names; under `medassist serve` they live in the
// guard section (MEDASSIST_GUARD__MAX_CHARS), under `medassist guard` at the top level.
type Config struct {
	// MaxChars is the longest message accepted, in Unicode characters.
	MaxChars int `koanf:"max-chars"`
	// Locales maps a detected language (en, es, fr, de, it, pt) to the locale whose emergency number and
	// crisis line are given, e.g. en: en-US. Text in an undetected language uses the en entry.
	Locales map[string]string `koanf:"locales"`
	// EmergencyNumbers maps a region (the part of a locale after '-', upper case: US, ES, GB) to the
	// number to call; "default" is used for regions not listed.
	EmergencyNumbers map[string]string `koanf:"emergency-numbers"`
	// CrisisLines maps a region to a suicide and crisis line; "default" is used for regions not listed.
	CrisisLines map[string]string `koanf:"crisis-lines"`
	// LexiconDir, when set, is a folder whose files replace the embedded ones of the same name
	// (emergency.txt, cues.txt, injection.txt, messages.json).
	LexiconDir string `koanf:"lexicon-dir"`
	// Encoder is the sentence encoder: a sentence-transformers model folder, or a Hugging Face repo
	// id looked up in the Hugging Face cache (fill it with `medassist pull REPO`).
	Encoder string `koanf:"encoder"`
	// EncoderThreads is ONNX Runtime's thread count for the encoder (0: one per core).
	EncoderThreads int `koanf:"encoder-threads"`
	// Head, when set, is a head file written by `medassist guard train` that replaces the embedded one.
	Head string `koanf:"head"`
	// ClientSystem says what happens to a client's system or developer message: "append" (screened
	// for instruction attacks, then added after the server's system prompt) or "reject" (the request
	// is refused).
	ClientSystem string `koanf:"client-system"`
	// Disclaimer is appended exactly once to every allowed answer.
	Disclaimer string `koanf:"disclaimer"`
	// SeekCare is the "When to seek care" section used when the model's answer has none.
	SeekCare string `koanf:"seek-care"`
}

// Disclaimer is the default medical disclaimer appended to every allowed answer.
const Disclaimer = "This information is general and educational; it is not a diagnosis and does not replace " +
	"advice from a doctor, nurse or pharmacist who knows your situation. If you think you may have a " +
	"medical emergency, call your local emergency number now."

// SeekCare is the default "When to seek care" text, used when the model's answer has no such section.
const SeekCare = "See a doctor if symptoms are severe, last longer than expected, keep coming back or worry you. " +
	"Get emergency help at once for chest pain, trouble breathing, signs of a stroke (face drooping, arm " +
	"weakness, slurred speech), heavy bleeding, fainting, a seizure or thoughts of harming yourself."

// DefaultConfig returns the defaults: 4,000 characters, 911/988 in the US, 112 in the EU.
func DefaultConfig() Config {
	return Config{
		MaxChars: 4000,
		Locales:  map[string]string{"en": "en-US", "es": "es-ES", "fr": "fr-FR", "de": "de-DE", "it": "it-IT", "pt": "pt-PT"},
		EmergencyNumbers: map[string]string{
			"default": "112", "US": "911", "CA": "911", "GB": "999", "IE": "112", "AU": "000",
			"EU": "112", "ES": "112", "FR": "112", "DE": "112", "AT": "112", "CH": "112", "BE": "112",
			"MX": "911", "AR": "107", "IT": "112", "PT": "112", "BR": "192",
		},
		CrisisLines: map[string]string{
			"US": "988 (Suicide & Crisis Lifeline, call or text)", "CA": "988 (call or text)",
			"GB": "116 123 (Samaritans)", "ES": "024 (línea de atención a la conducta suicida)",
			"FR": "3114 (numéro national de prévention du suicide)", "DE": "0800 111 0 111 (TelefonSeelsorge)",
		},
		Encoder:      DefaultEncoder,
		ClientSystem: ClientSystemAppend,
		Disclaimer:   Disclaimer,
		SeekCare:     SeekCare,
	}
}

// DefaultEncoder is the sentence encoder the embedded head was trained on.
const DefaultEncoder = "sentence-transformers/all-MiniLM-L6-v2"

// What happens to a client's system or developer message (Config.ClientSystem).
const (
	ClientSystemAppend = "append"
	ClientSystemReject = "reject"
)

var localeRe = regexp.MustCompile(`^[a-z]{2}(-[A-Za-z]{2})?$`)

// Validate names every bad field and what is allowed.
func (c Config) Validate() error {
	errs := []error{
		config.Check(c.MaxChars >= 1 && c.MaxChars <= 100000, "max-chars", c.MaxChars, "between 1 and 100000"),
		config.Check(strings.TrimSpace(c.Encoder) != "", "encoder", c.Encoder, "a sentence-transformers model folder or Hub repo id such as "+DefaultEncoder),
		config.Check(c.EncoderThreads >= 0, "encoder-threads", c.EncoderThreads, ">= 0 (0: one per core)"),
		config.Check(c.ClientSystem == ClientSystemAppend || c.ClientSystem == ClientSystemReject, "client-system", c.ClientSystem, `"append" or "reject"`),
		config.Check(strings.TrimSpace(c.Disclaimer) != "", "disclaimer", c.Disclaimer, "a non-empty text"),
		config.Check(strings.TrimSpace(c.SeekCare) != "", "seek-care", c.SeekCare, "a non-empty text"),
		config.Check(c.number(c.locale("en")) != "", "emergency-numbers", c.EmergencyNumbers, "a number for the en locale's region or a \"default\" entry"),
	}
	for lang, loc := range c.Locales {
		errs = append(errs, config.Check(localeRe.MatchString(loc), "locales", lang+"="+loc, "locales like en-US"))
	}
	if c.LexiconDir != "" {
		st, err := os.Stat(c.LexiconDir)
		errs = append(errs, config.Check(err == nil && st.IsDir(), "lexicon-dir", c.LexiconDir, "an existing folder (or empty for the embedded files)"))
	}
	return config.Join(errs...)
}

// locale is the locale configured for a detected language ("" → en).
func (c Config) locale(lang string) string {
	if loc := c.Locales[lang]; loc != "" {
		return loc
	}
	if loc := c.Locales["en"]; loc != "" {
		return loc
	}
	return "en-US"
}

// region is the upper-case region of a locale ("en-US" → "US"); "" when it has none.
func region(locale string) string {
	if _, r, ok := strings.Cut(locale, "-"); ok {
		return strings.ToUpper(r)
	}
	return ""
}

// number is the emergency number for a locale.
func (c Config) number(locale string) string {
	return lookupRegion(c.EmergencyNumbers, region(locale))
}

// crisisLine is the crisis line for a locale, "" when none is configured.
func (c Config) crisisLine(locale string) string {
	return lookupRegion(c.CrisisLines, region(locale))
}

// lookupRegion finds a region's entry, ignoring key case (koanf may lower-case keys from the
// environment), falling back to "default".
func lookupRegion(m map[string]string, reg string) string {
	var def string
	for k, v := range m {
		switch {
		case strings.EqualFold(k, reg) && reg != "":
			return v
		case strings.EqualFold(k, "default"):
			def = v
		}
	}
	return def
}

// EncoderDir is the encoder's folder: Encoder itself when it is a folder, else the snapshot of the
// Hub repo Encoder names in the Hugging Face cache.
func (c Config) EncoderDir() (string, error) {
	if st, err := os.Stat(c.Encoder); err == nil && st.IsDir() {
		return c.Encoder, nil
	}
	hc := hub.FromEnv(os.Getenv)
	hc.Offline = true // the guard reads the cache only; `medassist pull` fills it
	dir, err := cachedSnapshot(hc, c.Encoder)
	if err != nil {
		return "", fmt.Errorf("guard encoder %q is neither a folder nor in the Hugging Face cache (run `medassist pull %s`, or set encoder to a sentence-transformers folder): %w", c.Encoder, c.Encoder, err)
	}
	return dir, nil
}

// cachedSnapshot is the cached snapshot of a model repo at main, without network access.
func cachedSnapshot(hc hub.Config, repoID string) (string, error) {
	client, err := hub.New(hc)
	if err != nil {
		return "", err
	}
	return client.Snapshot(context.Background(), repoID, hub.Model, "main", nil)
}
