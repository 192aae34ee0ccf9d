package handlers_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/issuer"
)

// An operator releases a hold (`rekey holds release`): the next run of the
// revoke task revokes without asking the issuer about usage. When that
// run's DELETE fails for a moment (a 503), the release must still stand
// for the retry: the retry revokes, rather than ask about usage again and
// hold the credential the operator wanted gone until the hold's cap.
func TestReleasedHoldStaysReleasedAfterAFailedRevoke(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	g.deps.HoldStore = g.st
	g.deps.Holds = handlers.HoldPolicy{Quiet: 3 * grace, Recheck: time.Hour, Max: 24 * time.Hour}
	var answer atomic.Pointer[frontAnswer]
	g.overFront(t, issuer.VerifyAuto, http.MethodDelete, "", &answer)
	ctx := context.Background()
	old, revoke := g.rotatedPastGrace(t, "rot_release_retry")
	g.demo.UseUntil(old, time.Now().Add(100*time.Hour), "web.1")

	var wait *handlers.RetryLaterError
	if err := g.run(revoke); !errors.As(err, &wait) {
		t.Fatalf("first run: want a hold, got %v", err)
	}
	if err := g.st.RequestHoldRelease(ctx, "inst-1", old, "an operator"); err != nil {
		t.Fatal(err)
	}
	answer.Store(&frontAnswer{status: http.StatusServiceUnavailable, contentType: "application/json", body: `{"error":"busy"}`})
	if err := g.run(revoke); err == nil || isPermanent(err) || errors.As(err, &wait) {
		t.Fatalf("run after the release, DELETE answered 503: want a transient failure, got %v", err)
	}
	answer.Store(nil)
	err := g.run(revoke)
	_, held, _ := g.st.HoldOf(ctx, "inst-1", old)
	if err != nil || held || g.demo.Valid(old) {
		t.Fatalf("retry after the released hold's failed DELETE: run returned %v, held again %v, still valid at the issuer %v; "+
			"want it revoked: an operator's release is never held again", err, held, g.demo.Valid(old))
	}
}
