package retry

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/hibiken/asynq"
)

// wait is what Record writes into a task's result after a run that asked
// to wait for a time of its own (a Later with Until) and that asynq
// retries: the time, and asynq's count of the task's failed runs at that
// run. asynq counts a failure, and only a failure, when it puts a task back
// in its retry set, so a later run that failed leaves the count past the
// mark's; the mark then describes a run before the one the task waits after.
type wait struct {
	Until   time.Time `json:"waits_for"`
	Retried int       `json:"retried"`
}

// waitMark is the wait mark of a run that returned err, or nil when err
// asks for no wait of a time of the task's own.
func waitMark(ctx context.Context, err error) []byte {
	var later *Later
	if !errors.As(err, &later) || later.Until.IsZero() {
		return nil
	}
	retried, _ := asynq.GetRetryCount(ctx)
	b, _ := json.Marshal(wait{Until: later.Until.UTC(), Retried: retried})
	return b
}

// WaitsFor returns the time that the task info describes waits for in
// asynq's retry set, when no run failed since one asked to wait for it (a
// Later with Until, noted by Record); zero for any other task, one
// retrying after a failure among them: that one waits out its back-off,
// whatever an earlier run waited for. A later run that waited for
// something else (a hold's re-check) leaves the time as it was, so the
// caller checks that the wait it finds still applies.
//
// The reconcile sweep reads it to run a revoke task that waits for a
// revoke time since brought forward (Sweeper.expedited). It is a mark of
// rekey's own, with asynq's failure count, because nothing asynq keeps
// tells the two waits apart: the last error is text for people; a wait
// and a failure both set LastFailedAt, in whole seconds on the worker's
// own clock; and Retried counts failures, not what the last run returned.
func WaitsFor(info *asynq.TaskInfo) time.Time {
	if info == nil || info.State != asynq.TaskStateRetry {
		return time.Time{}
	}
	var w wait
	if json.Unmarshal(info.Result, &w) != nil || w.Retried != info.Retried {
		return time.Time{}
	}
	return w.Until
}
