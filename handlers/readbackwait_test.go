package handlers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// answer429 answers w as Heroku does when its budget is spent, asking to
// come back after retryAfter seconds.
func answer429(w http.ResponseWriter, retryAfter string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", retryAfter)
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write([]byte(`{"id":"rate_limit","message":"Your account reached the API rate limit"}`))
}

// frontedRig is a rig whose Heroku sits behind a front: push answers every
// config push, and read may answer the n-th read of inst-1's config itself
// (it says whether it did); everything else reaches the fake Heroku. It
// returns the pushes and reads the front saw.
func frontedRig(t *testing.T, push func(g *rig, w http.ResponseWriter, r *http.Request),
	read func(n int32, w http.ResponseWriter) bool) (g *rig, pushes, reads *atomic.Int32) {
	g = newRig(t)
	pushes, reads = new(atomic.Int32), new(atomic.Int32)
	g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPatch:
			pushes.Add(1)
			push(g, w, r)
		case r.Method == http.MethodGet && r.URL.Path == "/addons/inst-1/config" && read(reads.Add(1), w):
		default:
			g.fake.ServeHTTP(w, r)
		}
	}), 0)
	return g, pushes, reads
}

// throttled answers a read 429 when n is one of the reads listed, or
// every read when none is.
func throttled(reads ...int32) func(n int32, w http.ResponseWriter) bool {
	return func(n int32, w http.ResponseWriter) bool {
		if len(reads) > 0 && !slices.Contains(reads, n) {
			return false
		}
		answer429(w, "1")
		return true
	}
}

// appliedAnswered204 hands the push to Heroku and answers 204, which
// proves nothing: Heroku answers a push with the config it holds.
func appliedAnswered204(g *rig, w http.ResponseWriter, r *http.Request) {
	g.fake.ServeHTTP(httptest.NewRecorder(), r)
	w.WriteHeader(http.StatusNoContent)
}

// A rotation that failed after a push reads Heroku's config back, and a
// read answered 429 is put off, the run to come back later. Each run came
// back from the start and pushed again, so a read answered 429 for good (a
// front that throttles reads, an account another client drains) used to
// push for ever, no failure counted, every push of an applied config a
// release of the app's dynos. Now a rerun resumes at the read, the read is
// put off three times, and then the failure is recorded without it, the
// credential kept unconfirmed and unrevoked, since Heroku may hold it (I1).
func TestAReadBackPutOffForGoodEndsTheRotation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		push func(g *rig, w http.ResponseWriter, r *http.Request)
	}{
		{"push applied, answered 204 by a front", appliedAnswered204},
		{"push refused", func(_ *rig, w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = w.Write([]byte(`{"id":"invalid_params","message":"refused"}`))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			g, pushes, reads := frontedRig(t, tc.push, throttled())
			task := rotateTask(t, "inst-1", "rot-1")
			runs, put := 0, 0
			var err error
			for runs < 10 {
				runs++
				if err = g.run(task); err == nil || isPermanent(err) {
					break
				}
				if retry.IsFailure(err) {
					t.Fatalf("run %d: %v, a failure; want the read put off or the rotation ended", runs, err)
				}
				put++
			}
			if !isPermanent(err) {
				t.Fatalf("after %d runs, %d pushes: %v; want the rotation ended", runs, pushes.Load(), err)
			}
			// A rerun resumes at the read it put off (landedBefore): the
			// second and third waits cost a read each and no push; the
			// fourth run, the waits used up, pushes once more and records
			// the failure unread.
			if put != 3 || pushes.Load() != 2 || reads.Load() != 5 {
				t.Errorf("%d runs put off, %d pushes, %d reads; want 3 put off, 2 pushes, 5 reads", put, pushes.Load(), reads.Load())
			}
			rot, err := g.st.Rotation(ctx, "rot-1")
			if err != nil {
				t.Fatal(err)
			}
			if rot.State != store.RotationFailed {
				t.Errorf("rotation %s, want failed", rot.State)
			}
			c, err := g.st.Credential(ctx, "inst-1", rot.CredentialID)
			if err != nil {
				t.Fatal(err)
			}
			if c.State != store.CredentialUnconfirmed {
				t.Errorf("credential %s, want it kept unconfirmed: nothing proved Heroku holds none of it", c.State)
			}
			if task := g.enq.get(tasks.RevokeTaskID("inst-1", c.ID)); task != nil || !g.demo.Valid(c.ID) {
				t.Errorf("the credential Heroku may hold is revoked or due (task %v, valid %v): I1", task != nil, g.demo.Valid(c.ID))
			}
		})
	}
}

// A push Heroku applied, answered by a front with what proves nothing (a
// 204 where Heroku answers with the config), then a read-back answered 429:
// the rerun resumes at the read, finds the config pushed, and promotes the
// credential without pushing again, which would release the app again.
func TestARerunResumesAtThePutOffReadBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g, pushes, reads := frontedRig(t, appliedAnswered204, throttled(1))
	task := rotateTask(t, "inst-1", "rot-1")
	if err := g.run(task); err == nil || retry.IsFailure(err) {
		t.Fatalf("first run: %v; want the read-back put off", err)
	}
	if err := g.run(task); err != nil {
		t.Fatalf("second run: %v; want the rotation promoted", err)
	}
	if pushes.Load() != 1 || reads.Load() != 2 {
		t.Errorf("%d pushes, %d reads; want 1 push, 2 reads", pushes.Load(), reads.Load())
	}
	rot, err := g.st.Rotation(ctx, "rot-1")
	if err != nil || rot.State != store.RotationPromoted {
		t.Errorf("rotation %+v (%v), want promoted", rot.State, err)
	}
}

// A rerun that resumes at a put-off read whose read then fails with a 5xx
// goes back to asynq rather than push a config Heroku may hold: the run
// after it reads again, finds the config, and promotes with one push in
// all.
func TestAResumedReadThatFailsIsRetriedNotPushed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g, pushes, reads := frontedRig(t, appliedAnswered204, func(n int32, w http.ResponseWriter) bool {
		switch n {
		case 1:
			answer429(w, "1")
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			return false
		}
		return true
	})
	task := rotateTask(t, "inst-1", "rot-1")
	if err := g.run(task); err == nil || retry.IsFailure(err) {
		t.Fatalf("first run: %v; want the read-back put off", err)
	}
	if err := g.run(task); !retry.IsFailure(err) || isPermanent(err) {
		t.Fatalf("second run: %v; want a transient failure, retried", err)
	}
	if err := g.run(task); err != nil {
		t.Fatalf("third run: %v; want the rotation promoted", err)
	}
	if pushes.Load() != 1 || reads.Load() != 3 {
		t.Errorf("%d pushes, %d reads; want 1 push, 3 reads", pushes.Load(), reads.Load())
	}
	if rot, err := g.st.Rotation(ctx, "rot-1"); err != nil || rot.State != store.RotationPromoted {
		t.Errorf("rotation %+v (%v), want promoted", rot.State, err)
	}
}

// A front that answers 429 to every push of one add-on, asking each time
// for 15 minutes: the rotation used to wait for ever, no failure counted,
// in flight for good with every later request for the instance joined to
// it. Ten waits, then the run fails as transient, so that asynq's retries,
// their back-off and their limit end it.
func TestPushesAnswered429ForGoodFailTheRun(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	var pushes atomic.Int32
	g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch {
			pushes.Add(1)
			answer429(w, "900")
			return
		}
		g.fake.ServeHTTP(w, r)
	}), 0)
	task := rotateTask(t, "inst-1", "rot-1")
	for run := 1; run <= 11; run++ {
		err := g.run(task)
		switch {
		case run <= 10 && (err == nil || retry.IsFailure(err)):
			t.Fatalf("run %d: %v; want a wait for the Retry-After, no failure", run, err)
		case run == 11 && (!retry.IsFailure(err) || isPermanent(err)):
			t.Fatalf("run 11: %v; want a transient failure, asynq's retries to end it", err)
		}
	}
	if n := pushes.Load(); n != 11 {
		t.Errorf("%d pushes in 11 runs, want one each", n)
	}
}
