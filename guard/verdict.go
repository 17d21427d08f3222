package guard

import "fmt"

// Kind is what the guard decided about a message.
type Kind int

const (
	// Allow: an ordinary health question; the model answers it.
	Allow Kind = iota
	// Emergency: the message describes an emergency happening now; answer at once with emergency
	// guidance and never call the model.
	Emergency
	// OutOfDomain: not a health question (or an attempt to change the assistant's instructions);
	// answer with a polite refusal.
	OutOfDomain
	// Invalid: empty, too long, not valid UTF-8 or holding control characters.
	Invalid
)

var kindNames = [...]string{"allow", "emergency", "out_of_domain", "invalid"}

// String is the verdict's name in responses, metrics and `medassist guard`.
func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

// ParseKind is the inverse of String.
func ParseKind(s string) (Kind, error) {
	for i, n := range kindNames {
		if n == s {
			return Kind(i), nil
		}
	}
	return 0, fmt.Errorf("unknown verdict %q: want one of allow, emergency, out_of_domain, invalid", s)
}

// MarshalText writes the verdict's name.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a verdict's name.
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := ParseKind(string(b))
	if err == nil {
		*k = v
	}
	return err
}

// Verdict is the guard's decision about one message.
type Verdict struct {
	Kind Kind
	// Reason is human-readable and starts with Code, e.g.
	// `cardiac: "crushing chest pain" + "arm is numb"` or `not_medical: score 0.91 >= 0.55 (...)`.
	Reason string
	// Message is what the user is told instead of a model answer: emergency guidance with the number
	// to call, a polite refusal, what is wrong with the input, or, on an Allow verdict, the guard's
	// own short reply to a greeting or thanks (the model is not called). Empty when the model answers.
	Message string
	// Locale is the locale of the guidance (en-US, es-ES, ...), from the message's detected language.
	Locale string
	// Score is the guard's confidence in the verdict, in [0, 1]: for Allow and OutOfDomain the
	// classifier's probability of the chosen side, for Emergency the strength of the evidence.
	Score float64
	// Guidance, on an Allow verdict, is emergency guidance to put in front of the answer: an
	// emergency was stated in one of the last user turns.
	Guidance string
	// Code is the short, bounded cause used as the metrics label: medical, cardiac, stroke, ...,
	// prompt_injection, not_medical, empty, too_long, invalid_utf8, control_chars.
	Code string
}
