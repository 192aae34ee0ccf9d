package handlers_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/store"
)

// A DELETE answered 2xx {"revoked": 0} reads as "revoked": false, since 0 is
// false as PHP, MySQL or PostgreSQL write it; an issuer answering a count
// (rows deleted) means "nothing left to revoke" by it, as it answers a
// second DELETE once the first revoked the credential and its answer was
// lost. Either way the DELETE alone is no revocation: verify decides. Said
// no longer to work (410), or unknown (404) by an issuer known to answer
// verify, which is how an issuer that deletes what it revokes answers
// (the contract lets verify answer 404 for a revoked credential), it is
// recorded revoked: retried, it went dead after its last retry, for an
// operator to retry what was done. Still working, or a 404 from an issuer
// whose 404 says verify is unsupported, it is retried and the credential
// kept (I3).
func TestRevokeAnsweredRevokedZeroIsCheckedWithVerify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		mode        issuer.VerifyMode
		revokes     bool
		forgets     bool // verify answers 404 for a credential it revoked
		wantRevoked bool
	}{
		{"revoked at the issuer", issuer.VerifyAuto, true, false, true},
		{"revoked and forgotten", issuer.VerifyAuto, true, true, true},
		{"revoked and forgotten, required", issuer.VerifyRequired, true, true, true},
		{"revoked and forgotten, verify optional", issuer.VerifyOptional, true, true, false},
		{"still working", issuer.VerifyAuto, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newRig(t)
			var zero atomic.Bool
			var gone atomic.Value
			gone.Store("")
			g.overHandler(t, tc.mode, func(demo http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/credentials/"), "/verify")
					switch {
					case tc.forgets && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/verify") && id == gone.Load():
						_, _ = io.Copy(io.Discard, r.Body)
						w.Header().Set("Content-Type", "application/json")
						w.WriteHeader(http.StatusNotFound)
						_, _ = io.WriteString(w, `{"error":"unknown_credential"}`)
					case r.Method != http.MethodDelete || !zero.Load():
						demo.ServeHTTP(w, r)
					default:
						if tc.revokes {
							demo.ServeHTTP(httptest.NewRecorder(), r)
							gone.Store(id)
						} else {
							_, _ = io.Copy(io.Discard, r.Body)
						}
						w.Header().Set("Content-Type", "application/json")
						_, _ = io.WriteString(w, `{"revoked":0}`)
					}
				})
			})
			ctx := context.Background()
			old, revoke := g.rotatedPastGrace(t, "rot_z")
			zero.Store(true)
			err := g.run(revoke)
			c, _ := g.st.Credential(ctx, "inst-1", old)
			switch {
			case tc.wantRevoked && (err != nil || c.State != store.CredentialRevoked):
				t.Fatalf("DELETE answered {\"revoked\":0}: %v, %s; want recorded revoked", err, c.State)
			case !tc.wantRevoked && (err == nil || isPermanent(err) || c.State != store.CredentialPrevious):
				t.Fatalf("DELETE answered {\"revoked\":0}: %v, %s; want retried, previous", err, c.State)
			case !tc.revokes && !strings.Contains(err.Error(), issuer.CodeStillWorks):
				t.Errorf("DELETE answered {\"revoked\":0} of a working credential: %v; want still_works", err)
			}
			if g.demo.Valid(c.ID) != !tc.revokes {
				t.Errorf("credential valid at the issuer: %v, want %v", g.demo.Valid(c.ID), !tc.revokes)
			}
		})
	}
}
