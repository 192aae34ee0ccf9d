package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// rotations walks the rotations in flight past the slack: it re-enqueues
// those whose task is gone, and ends those whose task asynq archived
// (retries exhausted), so the instance is free to rotate again and the
// pending credential is revoked. A task archived while it was only waiting
// for Heroku's budget runs again instead: being rate limited must not use
// up a rotation's retries (docs/design.md, "Where the rules live").
func (s *Sweeper) rotations(ctx context.Context, cutoff time.Time, res *Result) error {
	return s.walk(ctx, store.CursorRotations, func(after store.Cursor) (int, store.Cursor, bool, error) {
		stale, next, done, err := s.p.Store.StaleRotationsAfter(ctx, cutoff, after, page)
		if err != nil {
			return 0, after, false, err
		}
		for _, ref := range stale {
			if err := s.rotation(ctx, ref, res); err != nil {
				return 0, after, false, err
			}
		}
		return len(stale), next, done, nil
	})
}

func (s *Sweeper) rotation(ctx context.Context, ref store.RotationRef, res *Result) error {
	rot, err := s.p.Store.Rotation(ctx, ref.RotationID)
	if err != nil {
		return nil
	}
	if rot.Queue == "" {
		rot.Queue = s.queueOfTask(rot.ID)
	}
	info, err := s.p.Inspector.GetTaskInfo(rot.Queue, tasks.RotateTaskID(rot.ID))
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound):
		held, err := s.enqueueRotation(ctx, rot, res)
		if err == nil && !held {
			res.RotationsEnqueued++
		}
		return err
	case err != nil:
		return fmt.Errorf("inspect rotation %s: %w", rot.ID, err)
	}
	why := retry.Classify(info)
	refused := false
	if why != retry.NotArchived && why != retry.Waited && rot.PushAttempted {
		// Every push answered with a refusal (a 409 each time): none can
		// land any more, and running the rotation again would only push
		// again. It ends; its credential is set aside as unconfirmed
		// (failScript), never revoked on its own (I1), and the instance is
		// free for the next rotation.
		attempts, settled, err := s.p.Store.PushAttempts(ctx, rot.ID)
		if err != nil {
			return err
		}
		refused = attempts > 0 && settled >= attempts
	}
	switch {
	case why == retry.NotArchived:
		return s.rehold(ctx, rot, info, res)
	case why == retry.Waited:
	case rot.PushAttempted && !refused:
		// Heroku may hold the credential: discarding it could break the
		// apps (I1). Run the rotation again, hourly, until it promotes.
		if s.p.Now().Sub(info.LastFailedAt) < archivedRetry {
			return nil
		}
	default:
		if err := s.giveUp(ctx, rot, info); err != nil {
			return err
		}
		res.RotationsFailed++
		return nil
	}
	if runsAgain(info, rot) {
		// Run again as it is: its retries stay used, so a rotation whose
		// pushes keep failing runs once an hour, not a whole round of
		// retries every hour.
		if err := s.p.Inspector.RunTask(rot.Queue, info.ID); err != nil {
			if s.busy(rot.Queue, info.ID) {
				return nil
			}
			return fmt.Errorf("run rotation %s again: %w", rot.ID, err)
		}
		res.RotationsResumed++
		return nil
	}
	// Another app's task (through the tasks package) with a deadline fails
	// every run past it before the handler, and one with a short timeout
	// cuts every run off: run again as it is, it would be archived again,
	// the rotation in flight for good. It makes way for rekey's own, from
	// the rotation's record, as a revocation's does.
	if err := s.p.Inspector.DeleteTask(rot.Queue, info.ID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
		if s.busy(rot.Queue, info.ID) {
			return nil
		}
		return fmt.Errorf("run rotation %s again: %w", rot.ID, err)
	}
	held, err := s.enqueueRotation(ctx, rot, res)
	if err != nil {
		return fmt.Errorf("run rotation %s again: %w", rot.ID, err)
	}
	if !held {
		res.RotationsResumed++
	}
	return nil
}

// runsAgain reports whether the archived task info describes can run
// rot again as it is: it is a rotate task naming rot, and no deadline nor
// timeout shorter than tasks.RotateTimeout (which rekey never gives;
// another app may, through the tasks package) cuts its runs short. A run
// cut off before it can end (a slow push, a wait for Heroku's budget)
// would be archived again, hourly, the rotation never promoted.
func runsAgain(info *asynq.TaskInfo, rot store.Rotation) bool {
	if info.Type != tasks.TypeRotate || !info.Deadline.IsZero() || info.Timeout < tasks.RotateTimeout {
		return false
	}
	p, err := tasks.ParseRotate(asynq.NewTask(info.Type, info.Payload))
	return err == nil && p.InstanceID == rot.InstanceID && p.RotationID == rot.ID
}

// enqueueRotation gives rot, whose task is gone, a new one with rekey's
// options, from its record. A bulk rotation has no task until the feeder
// releases it: it is held again, at its place in line (its claim's Hold
// failed, or its task was lost or archived). The feeder may have released
// it since the caller found no task: HoldAgain looks again once the id is
// in. It reports whether rot went to the held set rather than to asynq.
func (s *Sweeper) enqueueRotation(ctx context.Context, rot store.Rotation, res *Result) (held bool, err error) {
	if h, ok := s.p.Enqueuer.(reholder); ok && rot.Queue == pacing.Queue {
		added, err := h.HoldAgain(ctx, rot.ID, rot.RequestedAt)
		return true, reheld(res, added, err)
	}
	return false, fleet.Enqueue(ctx, s.p.Enqueuer, rot.InstanceID, rot.ID, rot.BatchID, rot.Reason, rot.Queue, rot.Grace)
}

// queueOfTask is the queue that holds rotation id's task, for a record
// written before rotations kept their queue: the default queue when none
// does, where a task enqueued anew cannot run beside one in another queue
// (asynq's task ids are unique within a queue only).
func (s *Sweeper) queueOfTask(id string) string {
	for _, q := range []string{tasks.QueueInteractive, tasks.QueueDefault, tasks.QueueBulk} {
		if _, err := s.p.Inspector.GetTaskInfo(q, tasks.RotateTaskID(id)); err == nil {
			return q
		}
	}
	return tasks.QueueDefault
}

// reholder is the pacing client (*pacing.Client) the sweep enqueues with.
type reholder interface {
	HoldAgain(ctx context.Context, rotationID string, heldAt time.Time) (bool, error)
}

// rehold makes sure a bulk rotate task an earlier version held (scheduled
// pacing.HoldFor ahead) is in the feeder's held set: a Hold that enqueued
// the task and then failed to add its id left it for asynq to run on its
// own a week later, the instance in flight until then.
func (s *Sweeper) rehold(ctx context.Context, rot store.Rotation, info *asynq.TaskInfo, res *Result) error {
	h, ok := s.p.Enqueuer.(reholder)
	if !ok || rot.Queue != pacing.Queue || info.State != asynq.TaskStateScheduled {
		return nil
	}
	added, err := h.HoldAgain(ctx, rot.ID, info.NextProcessAt.Add(-pacing.HoldFor))
	return reheld(res, added, err)
}

// reheld counts a rotation put back in the held set.
func reheld(res *Result, added bool, err error) error {
	if added {
		res.RotationsReheld++
	}
	return err
}

// codeRetriesExhausted is the failure code of a rotation the sweep ends.
const codeRetriesExhausted = "retries_exhausted"

// giveUp ends a rotation whose task asynq archived. The cause is a sentence
// of rekey's own: the task's last error may hold a party's text, which is
// never stored as is.
//
// Retries used up by transient failures (an issuer or Heroku down for
// longer than the task's retries) say nothing of the instance, and every
// scheduled rotation of those hours meets them alike: such an end does not
// count towards the instance's quarantine (store.Failure.Fleetwide), which
// would otherwise stop the schedule of every instance until an operator
// cleared it. A task refused permanently still counts.
//
// A rotation a run started (StartedAt) with no credential recorded may
// have had its mint written by the issuer and its answer lost (a gateway's
// 504 after the issuer's write, a timeout), every retry's answer lost too:
// the issuer may hold a valid credential minted for it that no record
// names, which nothing revokes. The sweep cannot ask the issuer again (it
// is, most often, the party that was down for the task's retries), so the
// failure says so (store.AnswerLostCause), on the rotation's "failed"
// event and the instance's last error, naming the rotation only; the
// code stays retries_exhausted, which rekey batches failed selects to
// rotate again.
func (s *Sweeper) giveUp(ctx context.Context, rot store.Rotation, info *asynq.TaskInfo) error {
	f := store.Failure{Code: codeRetriesExhausted, Cause: fmt.Sprintf("gave up after %d retries", info.Retried), Fleetwide: true}
	if retry.Classify(info) == retry.Refused {
		f.Cause, f.Fleetwide = "gave up: the rotation's task was refused permanently", false
	}
	if rot.CredentialID == "" && !rot.StartedAt.IsZero() && rot.State == store.RotationRequested {
		f.Cause += "; " + store.AnswerLostCause(rot.ID)
	}
	res, err := s.p.Store.FailRotation(ctx, rot.InstanceID, rot.ID, f)
	if err != nil || res.Discarded == nil {
		return err
	}
	_, err = s.enqueueRevoke(ctx, *res.Discarded)
	return err
}
