package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// lostMints puts an issuer over HTTP in front of the rig's demo issuer
// that mints the credentials asked for and answers those mints 504, as a
// gateway does after the issuer's write: the first mint only, or every
// one (all); it returns the minted id and the count of mints asked for.
func lostMints(t *testing.T, g *rig, all bool) (lost *atomic.Value, mints *atomic.Int32) {
	t.Helper()
	lost, mints = &atomic.Value{}, &atomic.Int32{}
	g.overHandler(t, issuer.VerifyAuto, func(demo http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || r.URL.Path != "/credentials" || (mints.Add(1) > 1 && !all) {
				demo.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			demo.ServeHTTP(rec, r)
			var answer struct {
				ID string `json:"credential_id"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil || answer.ID == "" {
				t.Errorf("the issuer's mint answered %d %v", rec.Code, err)
			}
			lost.Store(answer.ID)
			http.Error(w, "gateway timeout", http.StatusGatewayTimeout)
		})
	})
	return lost, mints
}

// TestADeprovisioningAfterAMintWhoseAnswerWasLostLeavesNoCredentialUnknown:
// a rotation runs, the issuer mints its credential and the answer never
// comes back (a gateway's 504 after the issuer's write); the partner
// deprovisions the instance before the task's retry. The retry found the
// instance deprovisioned and ended the rotation without asking the issuer
// again: the credential it had minted stayed valid, named by no record of
// rekey's, never revoked (I3). The retry asks the mint once more with the
// same rotation id and records what it answers discarded, due for
// revocation, never pushed.
func TestADeprovisioningAfterAMintWhoseAnswerWasLostLeavesNoCredentialUnknown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	lost, _ := lostMints(t, g, false)
	task := rotateTask(t, "inst-1", "rot-d")
	if err := g.run(task); err == nil || isPermanent(err) {
		t.Fatalf("first run = %v, want a retryable error", err)
	}
	id, _ := lost.Load().(string)
	if id == "" || !g.demo.Valid(id) {
		t.Fatalf("the issuer minted nothing valid (%q)", id)
	}
	before := g.fake.Config("inst-1")[issuer.DefaultConfigVar]
	if err := g.st.Deprovision(ctx, "inst-1"); err != nil {
		t.Fatal(err)
	}
	if err := g.run(task); err == nil || !isPermanent(err) {
		t.Errorf("the retry = %v, want the rotation ended", err)
	}
	rot, _ := g.st.Rotation(ctx, "rot-d")
	if rot.State != store.RotationFailed {
		t.Errorf("rotation %s, want failed", rot.State)
	}
	if got := g.fake.Config("inst-1")[issuer.DefaultConfigVar]; got != before {
		t.Errorf("the add-on's config changed after the deprovisioning")
	}
	c, err := g.st.Credential(ctx, "inst-1", id)
	if err != nil {
		t.Fatalf("rotation %s (%s); credential %s minted for it: %v (the issuer honours it: %v); want it recorded, due for revocation",
			rot.State, rot.Error, id, err, g.demo.Valid(id))
	}
	if c.State != store.CredentialDiscarded || c.RevokeAt.IsZero() {
		t.Errorf("credential %s is %s, revoke at %v; want discarded, due for revocation", id, c.State, c.RevokeAt)
	}
	if g.enq.get(tasks.RevokeTaskID("inst-1", id)) == nil {
		t.Errorf("no revocation of %s scheduled", id)
	}
}

// TestADeprovisioningAfterAMintWhoseAnswerIsLostAgainSaysSo: as above, but
// the issuer's mint, asked again, is lost again (its gateway still answers
// 504). Nothing can name the credential: the rotation ends
// mint:answer_lost, and its failure on the instance's history says that
// the issuer may hold a credential minted for the rotation, naming the
// rotation only, so that the partner revokes it at the issuer.
func TestADeprovisioningAfterAMintWhoseAnswerIsLostAgainSaysSo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	lost, _ := lostMints(t, g, true)
	task := rotateTask(t, "inst-1", "rot-e")
	if err := g.run(task); err == nil || isPermanent(err) {
		t.Fatalf("first run = %v, want a retryable error", err)
	}
	id, _ := lost.Load().(string)
	if err := g.st.Deprovision(ctx, "inst-1"); err != nil {
		t.Fatal(err)
	}
	_ = g.run(task)
	in, err := g.st.Instance(ctx, "inst-1")
	if err != nil {
		t.Fatal(err)
	}
	if in.LastErrorCode != "mint:answer_lost" {
		t.Errorf("last error code %q (%s), want mint:answer_lost", in.LastErrorCode, in.LastError)
	}
	events, err := g.st.Events(ctx, "inst-1", 50)
	if err != nil {
		t.Fatal(err)
	}
	said := false
	for _, e := range events {
		if e.RotationID == "rot-e" && strings.Contains(e.Detail, "the issuer may hold a credential minted for rotation rot-e") {
			said = true
		}
		if id != "" && strings.Contains(e.Detail, id) {
			t.Errorf("event %s quotes the issuer's answer: %s", e.Type, e.Detail)
		}
	}
	if !said {
		t.Errorf("no event of rot-e says the issuer may hold its credential: %+v", events)
	}
}
