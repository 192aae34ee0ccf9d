package web

import (
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/store"
)

func TestCustomerSentencesHoldNoInternals(t *testing.T) {
	t.Parallel()
	cases := []struct{ code, cause, want string }{
		{"mint:issuer_503", "mint: issuer 503: database unreachable at postgres://u17:pw17@db/x", "The credential service could not create a new credential."},
		{"push:not_found", "push: heroku 404 not_found: Couldn't find that add-on.", "Heroku reports that this add-on could not be found"},
		{"mint:config_mismatch", "mint: issuer returned MYADDON_URL only; missing MYADDON_PASSWORD", "did not carry the expected config vars"},
		{"verify:issuer_422", "verify: issuer 422: pw17 rejected", "did not pass its check"},
		{"", "push: heroku 422 invalid_params: pw17", "Heroku did not accept"},
		{"", "INC-4711 leaked key in public gist", "The rotation could not be completed."},
		{"weird:thing", "pw17", "The rotation could not be completed."},
	}
	for _, c := range cases {
		got := failureSentence(c.code, c.cause)
		if !strings.Contains(got, c.want) || !strings.HasSuffix(got, keepsWorking) {
			t.Errorf("failureSentence(%q) = %q, want it to say %q", c.code, got, c.want)
		}
		for _, never := range []string{"pw17", "postgres://", "INC-4711", "503", "404"} {
			if strings.Contains(got, never) {
				t.Errorf("failureSentence(%q) = %q shows %q", c.code, got, never)
			}
		}
	}
	for reason, want := range map[string]string{customerReason: "you", store.ReasonScheduled: "the rotation schedule",
		"INC-4711 leaked key in public gist": "an operator", "": "an operator"} {
		if got := requester(reason); got != want {
			t.Errorf("requester(%q) = %q, want %q", reason, got, want)
		}
	}
	e := store.Event{Type: store.EventFailed, Detail: "push:not_found"}
	if got := describe(e); !strings.Contains(got, "could not be found") {
		t.Errorf("describe(failed with a code) = %q", got)
	}
	e = store.Event{Type: store.EventRequested, Detail: "INC-4711 leaked key in public gist"}
	if got := describe(e); got != "Rotation requested by an operator" {
		t.Errorf("describe(requested) = %q, want the operator's reason left out", got)
	}
}
