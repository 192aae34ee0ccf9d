package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/printable"
)

// A batch's reason another app gave through the tasks package (the API
// refuses such a reason itself) may hold C1 controls and bidi overrides,
// which Go's JSON encoder leaves raw and a terminal acts on: an operator
// reading the API with curl had the reason recolour the terminal or show
// reversed. The API writes them as JSON's \u escapes: the same text to a
// client that decodes it.
func TestAPIAnswersAreSafeOnATerminal(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reason := "incident \u009b31m \u202eRTL\u2066 42"
	if err := f.st.CreateBatch(context.Background(), "bat_outside", reason, 1); err != nil {
		t.Fatal(err)
	}
	resp := f.api(http.MethodGet, "/api/v1/batches/bat_outside", "")
	if resp.status != http.StatusOK {
		t.Fatalf("GET the batch: %d %s", resp.status, resp.body)
	}
	if i := strings.IndexFunc(resp.body, func(r rune) bool { return r != '\n' && printable.Unsafe(r) }); i >= 0 {
		t.Errorf("the answer holds %q raw:\n%q", []rune(resp.body[i:])[0], resp.body)
	}
	var b struct {
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(resp.body), &b); err != nil || b.Reason != reason {
		t.Errorf("the answer's reason decodes to %q (%v), want %q", b.Reason, err, reason)
	}
}

// A reason whose characters show as nothing (zero-width space and joiner,
// byte order mark, soft hyphen, tag characters) is answered with those as
// \u escapes, so that two reasons that differ do not look the same in a
// terminal; accents and other scripts are left as they are.
func TestAPIAnswersShowInvisibleCharacters(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reason := "caf\u00e9 鍵 inc\u200bident\u200d \ufeff\u00ad\U000E0072"
	if err := f.st.CreateBatch(context.Background(), "bat_invisible", reason, 1); err != nil {
		t.Fatal(err)
	}
	resp := f.api(http.MethodGet, "/api/v1/batches/bat_invisible", "")
	if resp.status != http.StatusOK {
		t.Fatalf("GET the batch: %d %s", resp.status, resp.body)
	}
	for _, want := range []string{`inc\u200bident\u200d \ufeff\u00ad\udb40\udc72`, "caf\u00e9 鍵"} {
		if !strings.Contains(resp.body, want) {
			t.Errorf("the answer lacks %q:\n%q", want, resp.body)
		}
	}
	var b struct {
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(resp.body), &b); err != nil || b.Reason != reason {
		t.Errorf("the answer's reason decodes to %q (%v), want %q", b.Reason, err, reason)
	}
}
