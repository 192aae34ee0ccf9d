package secret_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/secret"
)

func TestStringNeverPrintsItsValue(t *testing.T) {
	const value = "postgres://u:hunter2@db/x"
	s := secret.New(value)
	holder := struct {
		Name  string
		Token secret.String
	}{"x", s}
	b, err := json.Marshal(holder)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v":   fmt.Sprintf("%v", s),
		"%+v":  fmt.Sprintf("%+v", holder),
		"%#v":  fmt.Sprintf("%#v", holder),
		"%s":   fmt.Sprintf("%s", s),
		"%q":   fmt.Sprintf("%q", s),
		"%x":   fmt.Sprintf("%x", s),
		"json": string(b),
	}
	for name, out := range outputs {
		if strings.Contains(out, "hunter2") {
			t.Errorf("%s leaked the secret: %s", name, out)
		}
		if !strings.Contains(out, secret.Redacted) {
			t.Errorf("%s = %q, want the redaction", name, out)
		}
	}
	if s.Reveal() != value {
		t.Errorf("Reveal() = %q, want %q", s.Reveal(), value)
	}
}

func TestUnmarshalJSONReadsTheValue(t *testing.T) {
	var in struct {
		Token secret.String `json:"token"`
	}
	if err := json.Unmarshal([]byte(`{"token":"abc"}`), &in); err != nil {
		t.Fatal(err)
	}
	if in.Token.Reveal() != "abc" {
		t.Fatalf("Reveal() = %q, want abc", in.Token.Reveal())
	}
	if err := json.Unmarshal([]byte(`{"token":5}`), &in); err == nil || strings.Contains(err.Error(), "5") {
		t.Fatalf("decoding a number: %v", err)
	}
}
