// Package secret holds values that must never be printed: credential config
// values, OAuth tokens, encryption keys and passwords.
//
// A String formats as a fixed redaction in every verb of package fmt, in
// zerolog fields and in JSON, so a secret that reaches a log line, an error
// string or a task payload by mistake shows as "[redacted]" instead of
// leaking. The value is read only on purpose, through Reveal.
package secret

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

// Redacted is what every printed form of a String shows.
const Redacted = "[redacted]"

// String is a secret text value. The zero value is the empty secret.
// It is a plain value and safe for concurrent use.
type String struct {
	v string
}

// New wraps s as a secret.
func New(s string) String { return String{v: s} }

// Reveal returns the secret text. Call it only where the value leaves rekey
// on purpose: an HTTP request to Heroku or the issuer, or the sealer.
func (s String) Reveal() string { return s.v }

// IsZero reports whether the secret is empty.
func (s String) IsZero() bool { return s.v == "" }

// String returns the redaction, never the value.
func (s String) String() string { return Redacted }

// GoString returns the redaction, never the value, for %#v.
func (s String) GoString() string { return Redacted }

// Format prints the redaction for every verb, including %v, %+v, %#v, %s,
// %q and %x.
func (s String) Format(f fmt.State, verb rune) { fmt.Fprint(f, Redacted) }

// MarshalJSON encodes the redaction, so a struct holding a secret cannot
// leak it through encoding/json.
func (s String) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// UnmarshalJSON reads a secret from a JSON string, so request bodies can
// carry one in; encoding it again yields only the redaction.
func (s *String) UnmarshalJSON(b []byte) error {
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("secret: want a JSON string")
	}
	s.v = v
	return nil
}

// MarshalText encodes the redaction, for encoders that use TextMarshaler.
func (s String) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue keeps the value out of log/slog output.
func (s String) LogValue() slog.Value { return slog.StringValue(Redacted) }
