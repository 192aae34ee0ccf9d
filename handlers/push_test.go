package handlers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/store"
)

// TestRefusedRepushOfAnAppliedCredentialPromotes covers a push whose answer
// was lost although Heroku applied it (a 500): when the push sent again is
// refused (here 422), the handler reads the config back, finds the
// credential there and promotes it, instead of discarding and revoking a
// credential the apps already use (I1).
func TestRefusedRepushOfAnAppliedCredentialPromotes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	var patches atomic.Int32
	g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPatch {
			g.fake.ServeHTTP(w, r)
			return
		}
		switch patches.Add(1) {
		case 1: // the lost answer: Heroku applied the push all the same
			g.fake.ServeHTTP(httptest.NewRecorder(), r)
			w.WriteHeader(http.StatusInternalServerError)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = w.Write([]byte(`{"id":"invalid_params","message":"refused"}`))
		}
	}), 5*time.Second)
	if err := g.run(rotateTask(t, "inst-1", "rot-1")); err != nil {
		t.Fatalf("run after a 500 and a refused push = %v, want the rotation promoted", err)
	}
	if n := patches.Load(); n != 2 {
		t.Errorf("%d pushes, want the first and the one sent again", n)
	}
	rot, _ := g.st.Rotation(ctx, "rot-1")
	in, _ := g.st.Instance(ctx, "inst-1")
	if in.CurrentCredential != rot.CredentialID || g.configCredential(t, "inst-1") != rot.CredentialID {
		t.Fatalf("current %s, config holds %s; want both %s", in.CurrentCredential, g.configCredential(t, "inst-1"), rot.CredentialID)
	}
	if !g.demo.Valid(rot.CredentialID) {
		t.Fatal("the credential Heroku holds was revoked")
	}
}

// TestRefusedPushOfAnUnappliedCredentialDiscards is the other side: when
// Heroku does not hold the credential and refused every push (a 429, then
// a 422), the read-back proves it and the credential is discarded. (A push
// answered 5xx may have been applied: pushanswer_test.go.)
func TestRefusedPushOfAnUnappliedCredentialDiscards(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	g.fake.Script(herokufake.PatchConfig, herokufake.Respond(429), herokufake.Respond(422))
	_ = g.run(rotateTask(t, "inst-1", "rot-1"))
	if err := g.run(rotateTask(t, "inst-1", "rot-1")); err == nil {
		t.Fatal("rerun succeeded, want the 422 to end the rotation")
	}
	rot, _ := g.st.Rotation(ctx, "rot-1")
	c, _ := g.st.Credential(ctx, "inst-1", rot.CredentialID)
	if rot.State != store.RotationFailed || c.State != store.CredentialDiscarded {
		t.Fatalf("rotation %s, credential %s; want failed and discarded", rot.State, c.State)
	}
}
