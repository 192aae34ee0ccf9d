package web_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/web"
)

// A click whose claim fails (Redis refuses the claim's script, as one
// failing over does) requested nothing: the customer is told so, not
// "Rotation requested", and nothing is in flight.
func TestDashboardClickThatClaimedNothingSaysSo(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	session := f.login("inst-1")
	token := f.csrf(session)
	hook := &failingClaims{}
	rdb := redis.NewClient(&redis.Options{Addr: f.r.Client.Options().Addr, DB: f.r.Client.Options().DB})
	t.Cleanup(func() { _ = rdb.Close() })
	rdb.AddHook(hook)
	p := f.params
	p.Producer = fleet.NewProducer(store.New(rdb, fixtureSealer(t), store.WithClock(f.clock.Now)), asynq.NewClientFromRedisClient(rdb))
	h, err := web.New(p)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)

	resp := f.postForm("/dashboard/rotate", url.Values{"csrf_token": {token}}, session)
	if resp.status != http.StatusInternalServerError || !strings.Contains(resp.body, "could not be requested") {
		t.Errorf("click whose claim failed: %d, want 500 saying nothing was requested: %.300s", resp.status, resp.body)
	}
	if !hook.failed.Load() {
		t.Error("no claim was refused")
	}
	if in, err := f.st.Instance(context.Background(), "inst-1"); err != nil || in.InFlight != "" {
		t.Errorf("instance after the failed click: %+v, %v; want nothing in flight", in, err)
	}
}

// failingClaims fails the first pipeline of script calls (a producer's
// claims), as a Redis that is failing over answers.
type failingClaims struct{ failed atomic.Bool }

func (h *failingClaims) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *failingClaims) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *failingClaims) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && cmds[0].Name() == "evalsha" && h.failed.CompareAndSwap(false, true) {
			err := errors.New("LOADING Redis is loading the dataset in memory")
			for _, c := range cmds {
				c.SetErr(err)
			}
			return err
		}
		return next(ctx, cmds)
	}
}

// A deprovisioned add-on has no rotation to wait for: its page promises no
// time to rotate again, and a stale tab's click is told the add-on is
// deprovisioned, not to come back later.
func TestDashboardDeprovisionedPromisesNoRetry(t *testing.T) {
	t.Parallel()
	f := newFixture(t, withCustomerLimits(3, true))
	f.register("inst-1", "cred-0")
	f.rotate("inst-1", "rot-1", "cred-1", 2*time.Hour)
	session := f.login("inst-1")
	token := f.csrf(session)
	if err := f.st.Deprovision(context.Background(), "inst-1"); err != nil {
		t.Fatal(err)
	}
	page := f.get("/dashboard", session).body
	for _, stale := range []string{"You can rotate again", "You can rotate up to"} {
		if strings.Contains(page, stale) {
			t.Errorf("deprovisioned add-on's page says %q", stale)
		}
	}
	resp := f.postForm("/dashboard/rotate", url.Values{"csrf_token": {token}}, session)
	if resp.status != http.StatusConflict || !strings.Contains(resp.body, "deprovisioned") {
		t.Errorf("stale tab's click: %d, want 409 saying deprovisioned: %.300s", resp.status, resp.body)
	}
}

// A revocation held while the old credential is in use may wait for hours:
// the status says so rather than "Revoking", and the page does not poll.
// A failure newer than the last rotation that succeeded is not hidden
// behind "Rotated.".
func TestDashboardStatusTellsHeldAndNewerFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.register("inst-1", "cred-0")
	f.rotate("inst-1", "rot-1", "cred-1", 2*time.Hour)
	f.clock.Advance(3 * time.Hour)
	now := f.clock.Now()
	h := store.Hold{InstanceID: "inst-1", CredentialID: "cred-0", RevokeAt: now.Add(-time.Hour), HeldAt: now.Add(-time.Hour),
		CapAt: now.Add(23 * time.Hour), LastUsedAt: now.Add(-time.Minute), CheckedAt: now, NextCheckAt: now.Add(5 * time.Minute), Checks: 12}
	if err := f.st.SaveHold(ctx, h, store.EventRevocationHeld, h.UsedText(now)); err != nil {
		t.Fatal(err)
	}
	session := f.login("inst-1")
	var st struct {
		Status string `json:"status"`
		Busy   bool   `json:"busy"`
	}
	f.get("/dashboard/status", session).json(t, &st)
	if st.Busy || !strings.Contains(st.Status, "still in use") {
		t.Errorf("status with the only due revocation held: %+v; want not busy, saying it is still in use", st)
	}
	if page := f.get("/dashboard", session).body; strings.Contains(page, `http-equiv="refresh"`) || !strings.Contains(page, `data-busy="false"`) {
		t.Error("the page of a held revocation reloads itself")
	}

	if _, err := f.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-2", Reason: "scheduled"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.FailRotation(ctx, "inst-1", "rot-2", store.Failure{Code: "push:forbidden", Cause: "Heroku refused"}); err != nil {
		t.Fatal(err)
	}
	f.get("/dashboard/status", session).json(t, &st)
	if !strings.HasPrefix(st.Status, "The last rotation failed.") {
		t.Errorf("status after a failure newer than the last rotation: %q, want the failure", st.Status)
	}
}
