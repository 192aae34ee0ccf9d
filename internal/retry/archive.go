package retry

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/hibiken/asynq"
)

// Why says why asynq archived a task. asynq keeps only an archived task's
// last error as text; Record leaves this typed fact beside it instead, in
// the task's result, so that the reconcile sweep never reads error text.
type Why string

// Reasons a task is archived.
const (
	// NotArchived: the task is not archived (or is unknown).
	NotArchived Why = ""
	// Waited: the last run only asked to wait (a Later). asynq archives a
	// task whose retries are used up whatever its last run returned, so a
	// task that waits after earlier failures is archived too; it did not
	// fail and must run again.
	Waited Why = "waited"
	// Exhausted: the task's retries were used up by failures.
	Exhausted Why = "exhausted"
	// Refused: a run failed permanently (asynq.SkipRetry), or an operator
	// archived the task by hand: retrying as it is cannot help.
	Refused Why = "refused"
)

// mark is what Record writes into a task's result.
type mark struct {
	Why Why       `json:"archived_because"`
	At  time.Time `json:"at"`
}

// markWindow is how close to the archive a mark must have been written to
// describe the archiving run. asynq archives a task right after its handler
// returns; a mark older than this is from an earlier run (a later run's
// write failed, for example because its deadline had passed).
const markWindow = 30 * time.Second

// Record wraps the server's handler so that every run that asynq will
// archive leaves a mark saying why (Waited, Exhausted or Refused) in the
// task's result, and every other run that asks to wait for a time of its
// own (a Later with Until) notes that time (WaitsFor). Other runs, those
// that fail and are retried included, write nothing, so the cost is one
// Redis write per archived run or per such wait.
func Record(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		err := next.ProcessTask(ctx, t)
		if b := markOf(ctx, err); b != nil && t.ResultWriter() != nil {
			// Without a mark, Classify falls back on the counts and
			// WaitsFor says nothing: the task waits as asynq has it.
			_, _ = t.ResultWriter().Write(b)
		}
		return err
	})
}

// markOf is what Record writes in the task's result after a run that
// returned err: why asynq will archive the task, else the time it waits
// for, else nothing (nil).
func markOf(ctx context.Context, err error) []byte {
	if why := archivedBecause(ctx, err); why != NotArchived {
		b, _ := json.Marshal(mark{Why: why, At: time.Now().UTC()})
		return b
	}
	return waitMark(ctx, err)
}

// archivedBecause says why asynq will archive the task after a run that
// returned err, or NotArchived when it will not (asynq's processor: a
// SkipRetry error, or any error once the retries are used up).
func archivedBecause(ctx context.Context, err error) Why {
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	switch {
	case err == nil || errors.Is(err, asynq.RevokeTask):
		return NotArchived
	case errors.Is(err, asynq.SkipRetry):
		return Refused
	case retried < maxRetry:
		return NotArchived
	case IsLater(err):
		return Waited
	}
	return Exhausted
}

// Classify says why asynq archived the task info describes: from the mark
// Record left when there is one, else from the counts (archived before its
// retries were used up means refused). It returns NotArchived for a task in
// any other state.
func Classify(info *asynq.TaskInfo) Why {
	if info == nil || info.State != asynq.TaskStateArchived {
		return NotArchived
	}
	var m mark
	if json.Unmarshal(info.Result, &m) == nil && m.Why != NotArchived && info.LastFailedAt.Sub(m.At) < markWindow {
		return m.Why
	}
	if info.Retried < info.MaxRetry {
		return Refused
	}
	return Exhausted
}
