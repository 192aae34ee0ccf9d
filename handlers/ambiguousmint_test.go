package handlers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/store"
)

// TestAMintAnswerNamingItsIDOrConfigTwiceIsNotPushed: an issuer whose
// answer names credential_id twice, or also in another case, gave two ids
// (encoding/json keeps the last, matching keys without case), and one that
// names config twice gave two configs: the credential pushed could be
// recorded, and later revoked, under an id that is not its own, leaving
// the one the apps run on unrevoked for good. Such an answer is refused
// before any push; the id encoding/json reads is discarded and revoked, as
// any unusable answer's.
func TestAMintAnswerNamingItsIDOrConfigTwiceIsNotPushed(t *testing.T) {
	t.Parallel()
	for i, answer := range []string{
		`{"credential_id":"cred_a1","credential_id":"cred_b1","config":{%q:"postgres://u:p4ssw0rd-a@db/x"}}`,
		`{"credential_id":"cred_a2","Credential_ID":"cred_b2","config":{%q:"postgres://u:p4ssw0rd-a@db/x"}}`,
		`{"credential_id":"cred_b3","config":{%q:"postgres://u:p4ssw0rd-a@db/x"},"CONFIG":{"X":"y"}}`,
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			g := newRig(t)
			// An issuer without verify, which would otherwise find the id
			// it does not know.
			g.mintAnswers(t, fmt.Sprintf(answer, issuer.DefaultConfigVar), false)
			ctx := context.Background()
			rotID := fmt.Sprintf("rot-twice-%d", i)
			if err := g.run(rotateTask(t, "inst-1", rotID)); err == nil {
				t.Fatal("a rotation whose mint answer names its id or config twice succeeded")
			}
			if n := g.fake.ConfigChanges("inst-1"); n != 0 {
				t.Errorf("the config was pushed %d times, want never", n)
			}
			rot, _ := g.st.Rotation(ctx, rotID)
			id := fmt.Sprintf("cred_b%d", i+1)
			if c, err := g.st.Credential(ctx, "inst-1", id); err != nil || c.State != store.CredentialDiscarded {
				t.Errorf("rotation %s (%s), credential %s: %+v, %v; want it discarded", rotID, rot.State, id, c, err)
			}
		})
	}
}

// TestAMintAnswerWithANumericIDIsRevokedAtOnce: an issuer that writes
// credential_id as a number minted that credential all the same. Its
// answer was retried as malformed until the retries ran out, a working
// credential left at the issuer for each, recorded nowhere. Now the first
// run records it as discarded, due for revocation at once, and the
// rotation fails saying why.
func TestAMintAnswerWithANumericIDIsRevokedAtOnce(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	g.mintAnswers(t, fmt.Sprintf(`{"credential_id":4217,"config":{%q:"postgres://u:p4ssw0rd-n@db/x"}}`, issuer.DefaultConfigVar), false)
	ctx := context.Background()
	err := g.run(rotateTask(t, "inst-1", "rot-number"))
	if !isPermanent(err) {
		t.Fatalf("run = %v, want the rotation ended", err)
	}
	if n := g.fake.ConfigChanges("inst-1"); n != 0 {
		t.Errorf("the config was pushed %d times, want never", n)
	}
	rot, _ := g.st.Rotation(ctx, "rot-number")
	if c, err := g.st.Credential(ctx, "inst-1", "4217"); err != nil || c.State != store.CredentialDiscarded || c.RevokeAt.IsZero() {
		t.Errorf("credential 4217: %+v, %v; want it discarded, due for revocation", c, err)
	}
	if rot.State != store.RotationFailed || !strings.Contains(rot.Error, issuer.CodeIDNotString) {
		t.Errorf("rotation %s, error %q; want failed, naming %s", rot.State, rot.Error, issuer.CodeIDNotString)
	}
}

// A 2xx mint answer that is not exactly JSON but names its credential (a
// second write after the contract's object, as Go's http.Error after an
// encoder's write leaves; a byte-order mark before it, as .NET and PHP
// write) ends the rotation with that credential discarded and due for
// revocation, never pushed: retried as merely malformed, each answer left
// one more working credential that rekey never recorded (I3).
func TestAMintAnswerAroundTheContractsObjectIsRevokedAtOnce(t *testing.T) {
	t.Parallel()
	object := fmt.Sprintf(`{"credential_id":"cred-around","config":{%q:"postgres://u:p4ssw0rd-n@db/x"}}`, issuer.DefaultConfigVar)
	for name, answer := range map[string]string{
		"a second write after it": object + "\n" + `{"error":"audit_log_unavailable"}` + "\n",
		"a byte-order mark":       "\xef\xbb\xbf" + object,
		"both":                    "\xef\xbb\xbf" + object + "Internal Server Error\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := newRig(t)
			g.mintAnswers(t, answer, false)
			ctx := context.Background()
			if err := g.run(rotateTask(t, "inst-1", "rot-around")); !isPermanent(err) {
				t.Fatalf("run = %v, want the rotation ended", err)
			}
			if n := g.fake.ConfigChanges("inst-1"); n != 0 {
				t.Errorf("the config was pushed %d times, want never", n)
			}
			if c, err := g.st.Credential(ctx, "inst-1", "cred-around"); err != nil || c.State != store.CredentialDiscarded || c.RevokeAt.IsZero() {
				t.Errorf("credential cred-around: %+v, %v; want it discarded, due for revocation", c, err)
			}
			rot, _ := g.st.Rotation(ctx, "rot-around")
			if rot.State != store.RotationFailed || !strings.Contains(rot.Error, issuer.CodeMalformed) {
				t.Errorf("rotation %s, error %q; want failed, naming %s", rot.State, rot.Error, issuer.CodeMalformed)
			}
		})
	}
}
