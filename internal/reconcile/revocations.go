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

// archivedRetry is how long a task asynq archived after its retries were
// used up by failures (an issuer down for days, a push whose outcome is
// unknown) rests before the sweep runs it again: the work must be done in
// the end (I1, I3), without hammering a service that is down.
const archivedRetry = time.Hour

// revocations walks the revocations past due: it re-enqueues those whose
// task is gone, runs again those whose task asynq archived, and sets aside
// in the dead-letter set those whose task was refused permanently.
func (s *Sweeper) revocations(ctx context.Context, cutoff time.Time, res *Result) error {
	return s.walk(ctx, store.CursorRevocations, func(after store.Cursor) (int, store.Cursor, bool, error) {
		revs, next, done, err := s.p.Store.DueRevocationsAfter(ctx, cutoff, after, page)
		if err != nil {
			return 0, after, false, err
		}
		for _, r := range revs {
			if err := s.revocation(ctx, r, res); err != nil {
				return 0, after, false, err
			}
		}
		return len(revs), next, done, nil
	})
}

// revocation brings one due revocation's task back to life, or sets the
// revocation aside when its task was refused for good.
func (s *Sweeper) revocation(ctx context.Context, r store.Revocation, res *Result) error {
	enqueued, err := s.enqueueRevoke(ctx, r)
	switch {
	case err != nil:
		return err
	case enqueued:
		res.RevokesEnqueued++
		return nil
	}
	info, err := s.p.Inspector.GetTaskInfo(tasks.QueueRevoke, tasks.RevokeTaskID(r.InstanceID, r.CredentialID))
	if err != nil {
		return nil // gone since the enqueue: the next sweep enqueues it
	}
	if info.State == asynq.TaskStateCompleted {
		// A task of this id ran before (the entry was retried by an
		// operator, or due again after an expedite), or another app's
		// stray task for the credential, kept by its own retention, was
		// dropped: run it anew.
		return s.replaceRevoke(ctx, r, res)
	}
	if info.State != asynq.TaskStateActive && !ownRevokeTask(info, r) {
		// A task under this revocation's id that names another
		// credential, or carries options rekey does not give (another
		// app's, through the tasks package: a deadline long past, no
		// retries), is not this revocation's, whatever state it is in:
		// one waiting in the retry set (asynq fails a task past its
		// deadline before any handler runs, so the handler never drops
		// it as a stray) would hold the id, and the revocation, for as
		// long as its own retries last.
		return s.replaceRevoke(ctx, r, res)
	}
	if s.waitsPastRevokeTime(info, r) {
		return s.expedited(ctx, r, info, res)
	}
	if info.State == asynq.TaskStateRetry && info.Timeout == tasks.LegacyRevokeTimeout {
		// An earlier version's task keeps its minute through every retry,
		// which an issuer slow to answer cut off at each run until the
		// retries ran out, weeks with the credential valid. Once it waits
		// to be retried (after a failure, or a hold's re-check) it is
		// replaced by rekey's own (tasks.RevokeTimeout), run now: one
		// scheduled for its back-off would read as waiting for a revoke
		// time since brought forward, and be run now anyway.
		return s.replaceRevoke(ctx, r, res)
	}
	switch retry.Classify(info) {
	case retry.Refused:
		dead, err := s.p.Store.SetRevocationDead(ctx, r, store.DeadRefused)
		if dead {
			res.RevocationsDead++
		}
		return err
	case retry.Waited:
	case retry.Exhausted:
		if s.p.Now().Sub(info.LastFailedAt) < archivedRetry {
			return nil
		}
	default:
		return nil // pending, scheduled, retrying or running: nothing to do
	}
	// A fresh task rather than the archived one run again: the archived
	// task carries whatever options its producer gave it, and another
	// app's task for this credential (through the tasks package) may have
	// a deadline long past or no retries, and so fail every run.
	if err := s.p.Inspector.DeleteTask(tasks.QueueRevoke, info.ID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
		if s.busy(tasks.QueueRevoke, info.ID) {
			return nil
		}
		return fmt.Errorf("run revocation of %s again: %w", r.CredentialID, err)
	}
	if _, err := s.enqueueRevoke(ctx, r, asynq.ProcessIn(0)); err != nil {
		return fmt.Errorf("run revocation of %s again: %w", r.CredentialID, err)
	}
	res.RevokesRetried++
	return nil
}

// ownRevokeTask reports whether the task info describes is r's revoke task
// as rekey enqueues it: it names r's credential and has rekey's options
// (an earlier version's timeout included).
func ownRevokeTask(info *asynq.TaskInfo, r store.Revocation) bool {
	if info.Type != tasks.TypeRevoke || info.MaxRetry != tasks.RevokeMaxRetry ||
		info.Timeout != tasks.RevokeTimeout && info.Timeout != tasks.LegacyRevokeTimeout ||
		!info.Deadline.IsZero() || info.Retention != 0 {
		return false
	}
	p, err := tasks.ParseRevoke(asynq.NewTask(info.Type, info.Payload))
	return err == nil && p.InstanceID == r.InstanceID && p.CredentialID == r.CredentialID
}

// waitsPastRevokeTime reports whether r's task waits in asynq, past r's
// revoke time and the slack, for a time that r's revoke time was before it
// was brought forward: scheduled for later, or in the retry set after a
// run that read the old revoke time and asked to wait for it
// (retry.WaitsFor: a customer's "revoke now" while that run was active,
// which TryRevokeNow leaves to the sweep). A task retrying after a failure
// is not: it waits out its back-off, so that an issuer that is down is
// not asked again for every due revocation at every sweep.
//
// The note a not-yet-due run leaves (one write, on that path only) is what
// tells the two retries apart; asynq's own fields cannot (retry.WaitsFor).
// Re-reading the revoke time in the handler before it waits would narrow
// the race, not close it (an expedite between that read and asynq moving
// the task), and the dashboard cannot wait out a run that may spend
// seconds at the issuer, as RunRevokeNow does.
func (s *Sweeper) waitsPastRevokeTime(info *asynq.TaskInfo, r store.Revocation) bool {
	if !info.NextProcessAt.After(r.RevokeAt.Add(s.p.Slack)) {
		return false
	}
	switch info.State {
	case asynq.TaskStateScheduled:
		return true
	case asynq.TaskStateRetry:
		return retry.WaitsFor(info).After(r.RevokeAt)
	}
	return false
}

// expedited runs now the task of a due revocation that asynq holds for a
// later time (waitsPastRevokeTime): its revoke time was brought forward
// after the task was scheduled, or after its run read the old time (an
// expedite, from the dashboard or rekey revocations expedite, whose own
// run of the task failed, was interrupted or found the task running), and
// the credential would otherwise stay valid for the rest of its old grace.
// A held revocation's task waits for its re-check, later than its revoke
// time, by design: it is left to wait, unless the credential was expedited
// since the hold was saved (a "revoke now" whose own run of the task found
// it running or failed), which no hold outlasts.
func (s *Sweeper) expedited(ctx context.Context, r store.Revocation, info *asynq.TaskInfo, res *Result) error {
	_, held, err := s.p.Store.HoldOf(ctx, r.InstanceID, r.CredentialID)
	if err != nil {
		return err
	}
	if held {
		c, err := s.p.Store.Credential(ctx, r.InstanceID, r.CredentialID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil // its record gone: its run is refused, and the sweep sets it aside
		case err != nil || c.ExpeditedAt.IsZero():
			return err
		}
	}
	if err := s.p.Inspector.RunTask(tasks.QueueRevoke, info.ID); err != nil {
		if errors.Is(err, asynq.ErrTaskNotFound) || s.busy(tasks.QueueRevoke, info.ID) {
			return nil // runs, ran or gone since: the next sweep looks again
		}
		return fmt.Errorf("run expedited revocation of %s: %w", r.CredentialID, err)
	}
	res.RevokesExpedited++
	return nil
}

// enqueueRevoke enqueues r's revoke task, with opts after rekey's own; an
// existing task is no error.
func (s *Sweeper) enqueueRevoke(ctx context.Context, r store.Revocation, opts ...asynq.Option) (bool, error) {
	t, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: r.InstanceID, CredentialID: r.CredentialID}, r.RevokeAt, opts...)
	if err != nil {
		return false, err
	}
	return s.enqueue(ctx, t)
}

// replaceRevoke deletes the finished task under due revocation r's task id
// and enqueues r's own, to run now (the handler still waits for r's revoke
// time, I2).
func (s *Sweeper) replaceRevoke(ctx context.Context, r store.Revocation, res *Result) error {
	id := tasks.RevokeTaskID(r.InstanceID, r.CredentialID)
	err := s.p.Inspector.DeleteTask(tasks.QueueRevoke, id)
	if err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
		if s.busy(tasks.QueueRevoke, id) {
			return nil
		}
		return fmt.Errorf("replace revocation of %s: %w", r.CredentialID, err)
	}
	enqueued, err := s.enqueueRevoke(ctx, r, asynq.ProcessIn(0))
	if enqueued {
		res.RevokesEnqueued++
	}
	return err
}
