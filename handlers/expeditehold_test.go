package handlers_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// TestNoHoldOutlastsAnAnswerGivenDuringTheUsageQuestion: a customer's
// "revoke now" (store.Expedite, as the dashboard does), or an operator's
// release of a hold (`rekey holds release`), lands while the revoke task's
// run waits on the issuer's usage answer, and the issuer (over HTTP) then
// says the old credential is still in use. Neither is ever held: the hold
// is refused, and the run reads the credential again and revokes it,
// rather than wait a whole REKEY_HOLD_RECHECK. The dashboard and the
// command, finding the task active, leave it to that run.
func TestNoHoldOutlastsAnAnswerGivenDuringTheUsageQuestion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// blockAt is the usage question the answer lands during: the first
		// for a revocation never held, the second for a held one's re-check.
		blockAt int32
		answer  func(ctx context.Context, g *rig, cred string) error
	}{
		{"a customer's revoke now", 1, func(ctx context.Context, g *rig, cred string) error {
			_, moved, err := g.storeOnClock().Expedite(ctx, "inst-1", cred, store.ExpeditedByCustomer)
			if err == nil && !moved {
				err = errors.New("not moved")
			}
			return err
		}},
		{"an operator's release", 2, func(ctx context.Context, g *rig, cred string) error {
			return g.st.RequestHoldRelease(ctx, "inst-1", cred, "operator")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newRig(t)
			g.deps.HoldStore = g.st
			g.deps.Holds = handlers.HoldPolicy{Quiet: 3 * grace, Recheck: time.Hour, Max: 24 * time.Hour}
			entered, release := make(chan struct{}), make(chan struct{})
			var asked atomic.Int32
			g.overHandler(t, issuer.VerifyAuto, func(demo http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if strings.HasSuffix(r.URL.Path, "/usage") && asked.Add(1) == tc.blockAt {
						entered <- struct{}{}
						<-release
					}
					demo.ServeHTTP(w, r)
				})
			})
			ctx := context.Background()
			before, _ := g.st.Instance(ctx, "inst-1")
			old := before.CurrentCredential
			if err := g.run(rotateTask(t, "inst-1", "rot_answer_"+strconv.Itoa(int(tc.blockAt)))); err != nil {
				t.Fatal(err)
			}
			revoke := g.enq.get(tasks.RevokeTaskID("inst-1", old))
			if revoke == nil {
				t.Fatal("no revoke task")
			}
			g.later.Store(int64(grace + time.Second))
			g.demo.UseUntil(old, time.Now().Add(100*time.Hour), "web.1")
			for range tc.blockAt - 1 {
				var wait *handlers.RetryLaterError
				if err := g.run(revoke); !errors.As(err, &wait) {
					t.Fatalf("the run before: want a hold, got %v", err)
				}
			}

			done := make(chan error, 1)
			go func() { done <- g.run(revoke) }()
			<-entered
			if err := tc.answer(ctx, g, old); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			close(release)
			err := <-done
			_, held, _ := g.st.HoldOf(ctx, "inst-1", old)
			if err != nil || held || g.demo.Valid(old) {
				t.Fatalf("after %s during the usage question: run returned %v, held %v, still valid at the issuer %v; "+
					"want it revoked by this run", tc.name, err, held, g.demo.Valid(old))
			}
		})
	}
}
