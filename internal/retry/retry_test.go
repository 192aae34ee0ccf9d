package retry_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/tasks"
)

func TestDelayAndIsFailure(t *testing.T) {
	t.Parallel()
	task := asynq.NewTask("t", nil)
	later := &retry.Later{After: 2 * time.Second, Reason: "waiting"}
	wrapped := fmt.Errorf("push: %w", later)
	for range 20 {
		if d := retry.Delay(3, wrapped, task); d < 2*time.Second || d > 2200*time.Millisecond {
			t.Fatalf("Later delay %s, want 2s to 2.2s", d)
		}
	}
	for _, tc := range []struct {
		err       error
		failure   bool
		delayFrom time.Duration
		delayTo   time.Duration
	}{
		{errors.New("boom"), true, time.Second, 2 * time.Second},
		{later, false, 2 * time.Second, 2200 * time.Millisecond},
		{asynq.ErrLeaseExpired, false, 0, 2 * time.Second},
		{retry.Permanent(errors.New("refused")), true, time.Second, 2 * time.Second},
		// A refusal asked again waits the minute, a failure all the same.
		{fmt.Errorf("mint: refused; %w", retry.ErrConfirm), true, retry.ConfirmAfter, retry.ConfirmAfter * 7 / 6},
	} {
		if got := retry.IsFailure(tc.err); got != tc.failure {
			t.Errorf("IsFailure(%v) = %v, want %v", tc.err, got, tc.failure)
		}
		if d := retry.Delay(0, tc.err, task); d < tc.delayFrom || d > tc.delayTo {
			t.Errorf("Delay(%v) = %s, want %s to %s", tc.err, d, tc.delayFrom, tc.delayTo)
		}
	}
	// A failure is retried within seconds FastRetries times, then backs off.
	boom := errors.New("boom")
	for n := range retry.FastRetries {
		from := time.Second << n
		if d := retry.Delay(n, boom, task); d < from || d > from+time.Second {
			t.Errorf("Delay(%d, boom) = %s, want %s to %s", n, d, from, from+time.Second)
		}
	}
	if d := retry.Delay(retry.FastRetries, boom, task); d < 15*time.Second {
		t.Errorf("Delay(%d, boom) = %s after the fast retries, want asynq's back-off of 15s or more", retry.FastRetries, d)
	}
	if !errors.Is(retry.Permanent(errors.New("x")), asynq.SkipRetry) {
		t.Error("Permanent does not wrap asynq.SkipRetry")
	}
}

// A push sent again within its run waits less than one budget interval at
// the default rate (900 ms), jittered.
func TestAgainDelay(t *testing.T) {
	t.Parallel()
	lo, hi := time.Hour, time.Duration(0)
	for range 1000 {
		d := retry.AgainDelay()
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 250*time.Millisecond || hi >= 750*time.Millisecond || hi-lo < 250*time.Millisecond {
		t.Errorf("AgainDelay ranged over %s to %s, want within 250ms to 750ms and spread", lo, hi)
	}
}

// Classify falls back on the counts when a task carries no mark: archived
// before its retries were used up means refused.
func TestClassifyWithoutMark(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		info *asynq.TaskInfo
		want retry.Why
	}{
		{nil, retry.NotArchived},
		{&asynq.TaskInfo{State: asynq.TaskStateRetry, Retried: 3, MaxRetry: 3}, retry.NotArchived},
		{&asynq.TaskInfo{State: asynq.TaskStateArchived, Retried: 0, MaxRetry: 25}, retry.Refused},
		{&asynq.TaskInfo{State: asynq.TaskStateArchived, Retried: 25, MaxRetry: 25}, retry.Exhausted},
		{&asynq.TaskInfo{State: asynq.TaskStateArchived, Retried: 25, MaxRetry: 25, Result: []byte("not json")}, retry.Exhausted},
	} {
		if got := retry.Classify(tc.info); got != tc.want {
			t.Errorf("Classify(%+v) = %q, want %q", tc.info, got, tc.want)
		}
	}
}

// Record leaves, on each run asynq archives, a typed mark saying why, and
// Classify reads it back from the task: a real asynq server on real Redis.
func TestRecordMarksWhyATaskWasArchived(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	errs := map[string]error{
		"waits":   &retry.Later{After: time.Millisecond, Reason: "waiting for budget"},
		"fails":   errors.New("issuer answered 503"),
		"refused": retry.Permanent(errors.New("issuer answered 422")),
	}
	want := map[string]retry.Why{"waits": retry.Waited, "fails": retry.Exhausted, "refused": retry.Refused}
	srv := asynq.NewServerFromRedisClient(r.Client, asynq.Config{Concurrency: 3, IsFailure: retry.IsFailure,
		RetryDelayFunc: retry.Delay, LogLevel: asynq.FatalLevel, DelayedTaskCheckInterval: 50 * time.Millisecond,
		TaskCheckInterval: 50 * time.Millisecond})
	if err := srv.Start(retry.Record(asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		return errs[t.Type()]
	}))); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	q := asynq.NewClientFromRedisClient(r.Client)
	insp := asynq.NewInspectorFromRedisClient(r.Client)
	for typ := range errs {
		// Retries are used up at once, so even a waiting run is archived.
		if _, err := q.Enqueue(asynq.NewTask(typ, nil), asynq.TaskID(typ), asynq.MaxRetry(0)); err != nil {
			t.Fatal(err)
		}
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for typ, why := range want {
		deadline := time.Now().Add(10 * time.Second)
		for {
			info, err := insp.GetTaskInfo("default", typ)
			if err == nil && info.State == asynq.TaskStateArchived {
				if got := retry.Classify(info); got != why {
					t.Errorf("task %s archived; Classify = %q, want %q (result %q)", typ, got, why, info.Result)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %s not archived: %+v, %v", typ, info, err)
			}
			<-tick.C
		}
	}
}

// Record notes the time a retried run asked to wait for (a Later with
// Until), and WaitsFor reads it back from the task, as long as no run
// failed since: a wait for anything else notes nothing, and a task that
// waited for its time and then failed waits out its back-off, whatever it
// waited for before. A real asynq server on real Redis.
func TestWaitsForReadsTheTimeALaterAskedFor(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	until := time.Now().Add(time.Hour).Truncate(time.Millisecond).UTC()
	var ran sync.Map // the task types that ran before
	runs := map[string]func(first bool) error{
		"waits_for_time":   func(bool) error { return &retry.Later{After: time.Hour, Reason: "not due", Until: until} },
		"waits_for_budget": func(bool) error { return &retry.Later{After: time.Hour, Reason: "waiting for budget"} },
		"waits_then_fails": func(first bool) error {
			if first {
				return &retry.Later{After: time.Millisecond, Reason: "not due", Until: until}
			}
			return errors.New("issuer answered 503")
		},
	}
	want := map[string]time.Time{"waits_for_time": until, "waits_for_budget": {}, "waits_then_fails": {}}
	srv := asynq.NewServerFromRedisClient(r.Client, asynq.Config{Concurrency: 3, IsFailure: retry.IsFailure,
		RetryDelayFunc: func(n int, err error, t *asynq.Task) time.Duration {
			if retry.IsLater(err) {
				return retry.Delay(n, err, t)
			}
			return time.Hour // a back-off the test outlasts
		}, LogLevel: asynq.FatalLevel, DelayedTaskCheckInterval: 50 * time.Millisecond, TaskCheckInterval: 50 * time.Millisecond})
	if err := srv.Start(retry.Record(asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		_, ranBefore := ran.LoadOrStore(t.Type(), true)
		return runs[t.Type()](!ranBefore)
	}))); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	q := asynq.NewClientFromRedisClient(r.Client)
	insp := asynq.NewInspectorFromRedisClient(r.Client)
	for typ := range runs {
		if _, err := q.Enqueue(asynq.NewTask(typ, nil), asynq.TaskID(typ)); err != nil {
			t.Fatal(err)
		}
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for typ, waitsFor := range want {
		failed := typ == "waits_then_fails"
		deadline := time.Now().Add(10 * time.Second)
		for {
			info, err := insp.GetTaskInfo("default", typ)
			if err == nil && info.State == asynq.TaskStateRetry && (info.Retried > 0) == failed {
				if got := retry.WaitsFor(info); !got.Equal(waitsFor) {
					t.Errorf("task %s retrying; WaitsFor = %s, want %s (result %q)", typ, got, waitsFor, info.Result)
				}
				if failed && len(info.Result) == 0 {
					t.Errorf("task %s: the mark of its wait is gone; the test shows nothing", typ)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %s not retrying: %+v, %v", typ, info, err)
			}
			<-tick.C
		}
	}
	if got := retry.WaitsFor(&asynq.TaskInfo{State: asynq.TaskStateScheduled}); !got.IsZero() {
		t.Errorf("WaitsFor of a scheduled task = %s, want zero", got)
	}
}

// TestRotateRetriesLastAboutFourAndAHalfHours pins the span docs/design.md
// ("Inputs rekey does not trust", the outage row) and tasks.RotateMaxRetry
// give a rotate task's retries of transient failures: the back-off alone,
// before each run's own time, is 4h17m to 4h41m, so an outage shorter than
// that ends no rotation as retries_exhausted.
func TestRotateRetriesLastAboutFourAndAHalfHours(t *testing.T) {
	t.Parallel()
	task := asynq.NewTask("t", nil)
	for range 20 {
		var total time.Duration
		for n := range tasks.RotateMaxRetry {
			total += retry.Delay(n, errors.New("issuer down"), task)
		}
		if total < 4*time.Hour+15*time.Minute || total > 4*time.Hour+45*time.Minute {
			t.Fatalf("a rotate task's %d retries wait %v in all, not about 4.5 hours", tasks.RotateMaxRetry, total)
		}
	}
}
