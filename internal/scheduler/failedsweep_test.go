package scheduler_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/scheduler"
)

// refused is an error Redis answered, as go-redis gives it (redis.Error).
type refused string

func (e refused) Error() string { return string(e) }
func (refused) RedisError()     {}

// refuseByScore makes Redis refuse ZRANGEBYSCORE, the due index's read,
// while on is true.
type refuseByScore struct{ on *atomic.Bool }

func (refuseByScore) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h refuseByScore) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.on.Load() && strings.EqualFold(cmd.Name(), "zrangebyscore") {
			err := refused("ERR syntax error near s3cr3t")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

func (refuseByScore) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A sweep that fails part-way is recorded as failed, with a class of its
// error in rekey's words and never the error's text, while the last good
// sweep's time stays apart: status and /metrics read a clock whose every
// sweep fails as failing since its first failure, not as one that swept.
// The next good sweep ends the run of failures.
func TestFailedSweepIsRecordedAsFailedKeepingTheLastGoodSweep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, simStart)
	w.register(t, "inst-1")
	s := w.scheduler(t, simParams())
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	good := w.now()
	if _, err := s.Sweep(ctx, good); err != nil {
		t.Fatal(err)
	}
	var refuse atomic.Bool
	w.st.Redis().AddHook(refuseByScore{on: &refuse})
	refuse.Store(true)

	w.advance(time.Minute)
	first := w.now()
	for range 2 {
		res, err := s.Sweep(ctx, w.now())
		if err == nil {
			t.Fatal("sweep with the due index refused did not fail")
		}
		if res.Outcome != scheduler.Failed || res.Error != "due_index: redis_error" {
			t.Errorf("failed sweep = %+v, want outcome %q, class due_index: redis_error", res, scheduler.Failed)
		}
		last, err := w.st.LastSweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if last.Outcome != scheduler.Failed || last.Error != "due_index: redis_error" || !last.Failed() {
			t.Errorf("recorded %+v, want outcome failed with class due_index: redis_error", last)
		}
		if !last.At.Equal(w.now()) || !last.FailingSince.Equal(first) || !last.GoodAt.Equal(good) {
			t.Errorf("recorded at %s, failing since %s, last good %s; want %s, %s, %s",
				last.At, last.FailingSince, last.GoodAt, w.now(), first, good)
		}
		if last.Next.IsZero() {
			t.Error("a failed sweep planned no next sweep: status would call the clock stopped")
		}
		if strings.Contains(last.Error, "s3cr3t") || strings.Contains(last.Error, "syntax") {
			t.Errorf("class %q holds the error's text", last.Error)
		}
		w.advance(time.Minute)
	}

	refuse.Store(false)
	if res, err := s.Sweep(ctx, w.now()); err != nil || res.Outcome != scheduler.Swept {
		t.Fatalf("sweep after Redis takes the read again = %+v, %v", res, err)
	}
	last, err := w.st.LastSweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last.Failed() || last.Outcome != scheduler.Swept || !last.GoodAt.Equal(w.now()) || !last.FailingSince.IsZero() {
		t.Errorf("after a good sweep recorded %+v, want swept, good now, no failure", last)
	}
}

func TestErrorClassNamesStepAndKindOnly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{context.DeadlineExceeded, "sweep: timeout"},
		{refused("OOM command not allowed"), "sweep: redis_error"},
		{errors.New("dial tcp: s3cr3t"), "sweep: error"},
	} {
		if got := scheduler.ErrorClass(tc.err); got != tc.want {
			t.Errorf("ErrorClass(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
