package issuer_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// A usage answer naming last_used_at twice, in one case or two, with
// values that say the same (one instant, however written, or null twice)
// says one thing, and it is evidence: refused as malformed, a hold kept its
// last state on an answer that said plainly when the credential was last
// used. Values that say two things (a use and null, two instants, a time
// and text that is none) are still refused: which one the issuer meant
// cannot be told.
func TestUsageNamingLastUsedAtTwiceSayingTheSame(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	at := time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)
	for body, want := range map[string]time.Time{
		`{"last_used_at":"2026-01-15T10:00:00Z","Last_Used_At":"2026-01-15T10:00:00Z"}`:      at,
		`{"last_used_at":"2026-01-15T10:00:00Z","last_used_at":"2026-01-15T11:00:00+01:00"}`: at,
		`{"last_used_at":null,"LAST_USED_AT":null}`:                                          {},
	} {
		s := &scripted{status: http.StatusOK, body: body, header: "application/json"}
		if u, err := scriptedIssuer(t, s).Usage(ctx, "inst-1", "cred_1"); err != nil || !u.LastUsedAt.Equal(want) {
			t.Errorf("usage answered %s: %+v, %v, want last used at %v", body, u, err, want)
		}
	}
	for _, body := range []string{
		`{"last_used_at":"2026-01-15T10:00:00Z","Last_Used_At":null}`,
		`{"last_used_at":null,"last_used_at":"2026-01-15T10:00:00Z"}`,
		`{"last_used_at":"2026-01-15T10:00:00Z","last_used_at":"2026-01-15T10:00:01Z"}`,
		`{"last_used_at":null,"Last_Used_At":""}`,
		`{"last_used_at":"2026-01-15T10:00:00Z","laſt_used_at":"2026-01-14T10:00:00Z"}`,
	} {
		s := &scripted{status: http.StatusOK, body: body, header: "application/json"}
		if u, err := scriptedIssuer(t, s).Usage(ctx, "inst-1", "cred_1"); errCode(err) != issuer.CodeMalformed {
			t.Errorf("usage answered %s: %+v, %v, want malformed", body, u, err)
		}
	}
}
