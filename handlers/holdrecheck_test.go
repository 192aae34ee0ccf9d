package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// TestHoldRecheckNeverPassesTheCap: a held revocation is asked about again
// after REKEY_HOLD_RECHECK, but never later than its cap (REKEY_HOLD_MAX
// past the grace): with a re-check longer than the cap (REKEY_HOLD_RECHECK=720h
// beside REKEY_HOLD_MAX=24h) the old credential would otherwise stay valid
// the whole re-check past the cap that bounds every hold.
func TestHoldRecheckNeverPassesTheCap(t *testing.T) {
	t.Parallel()
	var later atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(later.Load())) }
	g := newRig(t, issuer.WithDemoClock(clock))
	const holdMax = 24 * time.Hour
	before, _, wait := g.holdInUse(t, &later, handlers.HoldPolicy{Quiet: 15 * time.Minute, Recheck: 720 * time.Hour, Max: holdMax},
		"one-off dyno run.1")
	if wait.After > holdMax {
		t.Errorf("held revocation asks again in %s, past its cap %s after the grace", wait.After, holdMax)
	}
	if !g.demo.Valid(before.CurrentCredential) {
		t.Fatal("a credential in use was revoked at its grace")
	}
}

// A usage answer 2xx whose JSON body says it failed (an issuer that
// answers every call 200 and puts its error in the body: {"error":
// "rate_limited"}) carries no last_used_at, which read as "never used"
// released a hold at once and revoked a credential the issuer had just
// reported in use. It is no evidence either way: the hold keeps its last.
func TestUsageAnswered2xxWithAnErrorBodyKeepsTheHold(t *testing.T) {
	t.Parallel()
	recheckAnswered(t, func(time.Time) frontAnswer {
		return frontAnswer{http.StatusOK, "application/json", `{"error":"rate_limited"}`}
	})
}

// A usage answer naming last_used_at twice, a recent use and null (or two
// times), in one case or two, says two things: encoding/json kept the
// last, and a null there read as "never used" released the hold at once,
// revoking a credential the same answer reported in use. It is no evidence
// either way: the hold keeps its last.
func TestUsageAnsweredLastUsedAtTwiceKeepsTheHold(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"then null":          `{"last_used_at":%q,"last_used_at":null}`,
		"then null, cased":   `{"last_used_at":%q,"Last_Used_At":null}`,
		"then an older time": `{"last_used_at":%q,"last_used_at":"2020-01-01T00:00:00Z"}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			recheckAnswered(t, func(now time.Time) frontAnswer {
				return frontAnswer{http.StatusOK, "application/json", fmt.Sprintf(body, now.Format(time.RFC3339))}
			})
		})
	}
}

// recheckAnswered holds the rig's old credential, in use, then has a
// front answer the hold's re-check with answer (given the issuer's clock
// then) in the issuer's place: the hold must be kept, the credential
// valid.
func recheckAnswered(t *testing.T, answer func(now time.Time) frontAnswer) {
	t.Helper()
	var later atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(later.Load())) }
	g := newRig(t, issuer.WithDemoClock(clock))
	var front atomic.Pointer[frontAnswer]
	key := secret.New("issuer-signing-secret")
	demo := issuer.NewDemoServer(g.demo, key)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := front.Load(); a != nil && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/usage") {
			w.Header().Set("Content-Type", a.contentType)
			w.WriteHeader(a.status)
			_, _ = io.WriteString(w, a.body)
			return
		}
		demo.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	h, err := issuer.NewHTTP(srv.URL, key, issuer.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	g.deps.Issuer = h
	before, revoke, wait := g.holdInUse(t, &later, handlers.HoldPolicy{Quiet: 15 * time.Minute, Recheck: 5 * time.Minute, Max: 24 * time.Hour},
		"web.1")

	g.later.Add(int64(6 * time.Minute))
	later.Add(int64(6 * time.Minute))
	a := answer(clock())
	front.Store(&a)
	err = g.run(revoke)
	if !errors.As(err, &wait) || !g.demo.Valid(before.CurrentCredential) {
		t.Fatalf("re-check answered %d %s = %v, valid %v; want still held", a.status, a.body, err, g.demo.Valid(before.CurrentCredential))
	}
}

// holdInUse rotates the rig's instance under policy, has its old
// credential used by by for good, moves the handlers' and the issuer's
// clocks (later) past the grace, and runs the old credential's
// revocation, which must be held. It returns the instance as it was
// before the rotation, the revoke task and its wait.
func (g *rig) holdInUse(t *testing.T, later *atomic.Int64, policy handlers.HoldPolicy, by string) (store.Instance, *asynq.Task, *handlers.RetryLaterError) {
	t.Helper()
	g.deps.HoldStore = g.st
	g.deps.Holds = policy
	before, _ := g.st.Instance(context.Background(), "inst-1")
	if err := g.run(rotateTask(t, "inst-1", "rot_hold")); err != nil {
		t.Fatal(err)
	}
	revoke := g.enq.get(tasks.RevokeTaskID("inst-1", before.CurrentCredential))
	if revoke == nil {
		t.Fatal("no revoke task")
	}
	g.demo.UseUntil(before.CurrentCredential, time.Now().Add(10000*time.Hour), by)
	step := int64(grace + time.Second)
	g.later.Store(step)
	later.Store(step)
	var wait *handlers.RetryLaterError
	if err := g.run(revoke); !errors.As(err, &wait) {
		t.Fatalf("revoke of a credential in use: %v, want it held", err)
	}
	return before, revoke, wait
}
