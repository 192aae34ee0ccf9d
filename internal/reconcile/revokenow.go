package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// RevokeTask says what RunRevokeNow did with a revocation's task.
type RevokeTask string

const (
	// RevokeTaskRun: the task waiting in asynq (scheduled for the old
	// revoke time, retrying, held for a re-check, or archived) runs now.
	RevokeTaskRun RevokeTask = "run"
	// RevokeTaskEnqueued: there was none, or a finished one: a new task
	// runs now.
	RevokeTaskEnqueued RevokeTask = "enqueued"
	// RevokeTaskPending: the task was already waiting for a worker.
	RevokeTaskPending RevokeTask = "pending"
	// RevokeTaskRunning: the task kept running for runningWait; it revokes
	// now, or, when it had read the old revoke time, goes back to wait for
	// it, and the sweep runs it (Sweeper.expedited).
	RevokeTaskRunning RevokeTask = "running"
)

// runningWait is how long RunRevokeNow waits for a running revoke task to
// end: a revocation or usage call to the issuer, which its HTTP client
// bounds. A run may take longer (a DELETE answered 404 asks verify and a
// probe, up to tasks.RevokeTimeout in all): RunRevokeNow then answers
// RevokeTaskRunning, and the sweep runs the task if it went back to wait.
const runningWait = 30 * time.Second

// runningPoll is how often RunRevokeNow looks at a running revoke task.
const runningPoll = 100 * time.Millisecond

// RunRevokeNow runs r's revoke task now, for a revocation whose revoke
// time was just brought forward (store.ExpediteRevocation). The sweep
// would too (Sweeper.expedited), but only once the revocation is past the
// sweep's slack, minutes later. A task running at that moment may have
// read the old revoke time and gone back to wait for it, so RunRevokeNow
// waits for it to end and looks again. p needs Store, Enqueuer and
// Inspector.
func RunRevokeNow(ctx context.Context, p Params, r store.Revocation) (RevokeTask, error) {
	s := New(p)
	id := tasks.RevokeTaskID(r.InstanceID, r.CredentialID)
	deadline := time.Now().Add(runningWait)
	for {
		done, err := s.revokeNow(ctx, r, id)
		switch {
		case done != "" || err != nil:
			return done, err
		case time.Now().After(deadline):
			return RevokeTaskRunning, nil
		}
		if err := retry.Sleep(ctx, runningPoll); err != nil {
			return "", err
		}
	}
}

// TryRevokeNow is one look of RunRevokeNow, for a caller that cannot wait
// (a dashboard request): it runs or enqueues r's revoke task, or returns ""
// when the task is running at that moment or changed state meanwhile; the
// sweep then runs it once it is past the sweep's slack
// (Sweeper.expedited), in asynq's retry set too should the running task
// have read the old revoke time. p needs Store, Enqueuer and Inspector.
func TryRevokeNow(ctx context.Context, p Params, r store.Revocation) (RevokeTask, error) {
	return New(p).revokeNow(ctx, r, tasks.RevokeTaskID(r.InstanceID, r.CredentialID))
}

// revokeNow is one look at r's revoke task (id): it runs or enqueues it,
// or returns "" when the task is running or changed state meanwhile.
func (s *Sweeper) revokeNow(ctx context.Context, r store.Revocation, id string) (RevokeTask, error) {
	info, err := s.p.Inspector.GetTaskInfo(tasks.QueueRevoke, id)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		enqueued, err := s.enqueueRevoke(ctx, r)
		if enqueued {
			return RevokeTaskEnqueued, nil
		}
		return "", err // or enqueued by a worker or the sweep meanwhile: look again
	case err != nil:
		return "", fmt.Errorf("revoke task of %s: %w", r.CredentialID, err)
	}
	switch info.State {
	case asynq.TaskStatePending:
		return RevokeTaskPending, nil
	case asynq.TaskStateActive:
		return "", nil
	case asynq.TaskStateCompleted:
		var res Result
		return RevokeTaskEnqueued, s.replaceRevoke(ctx, r, &res)
	}
	if err := s.p.Inspector.RunTask(tasks.QueueRevoke, id); err != nil {
		return "", nil // it changed state since it was read: look again
	}
	return RevokeTaskRun, nil
}

// queueInfo is the part of an *asynq.Inspector that says whether a queue
// is paused.
type queueInfo interface {
	GetQueueInfo(queue string) (*asynq.QueueInfo, error)
}

// RevokeQueuePaused reports whether the revoke queue is paused, which
// nothing of rekey's does (the circuit breaker pauses the bulk queue only,
// and /monitoring is read only): someone did with asynq's CLI or
// Inspector, and a forgotten pause revokes nothing until it is resumed.
// It is false when insp cannot tell.
func RevokeQueuePaused(insp any) bool {
	q, ok := insp.(queueInfo)
	if !ok {
		return false
	}
	info, err := q.GetQueueInfo(tasks.QueueRevoke)
	return err == nil && info.Paused
}
