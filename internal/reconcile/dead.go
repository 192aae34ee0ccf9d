package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// ErrNotDead means a revocation named for RetryDead is not in the
// dead-letter set (never was, was revoked, or was retried already).
var ErrNotDead = errors.New("not in the dead-letter set")

// RetryDead moves dead revocations back to the revoke-due index and runs
// their revoke tasks again: those named by ids ("instance_id/credential_id"),
// or every one when all is set. by names who asked, for the audit events.
// Named ids are checked first: if any is malformed or not dead, nothing is
// moved and the error names them. It returns the revocations it moved,
// those it moved before an error included.
// p needs Store, Enqueuer and Inspector.
func RetryDead(ctx context.Context, p Params, ids []string, all bool, by string) ([]store.Revocation, error) {
	s := New(p)
	if all {
		return s.retryAllDead(ctx, by)
	}
	refs, err := s.checkDead(ctx, ids)
	if err != nil {
		return nil, err
	}
	var out []store.Revocation
	for _, r := range refs {
		moved, err := s.retryDead(ctx, r, by)
		if moved != nil {
			out = append(out, *moved) // moved back to due, even when its task failed: the sweep enqueues it
		}
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// checkDead parses ids and makes sure each is in the dead-letter set.
func (s *Sweeper) checkDead(ctx context.Context, ids []string) ([]store.Revocation, error) {
	refs := make([]store.Revocation, 0, len(ids))
	var notDead []string
	for _, id := range ids {
		inst, cred, err := store.ParseDeadID(id)
		if err != nil {
			return nil, err
		}
		dead, err := s.p.Store.IsRevocationDead(ctx, inst, cred)
		if err != nil {
			return nil, err
		}
		if !dead {
			notDead = append(notDead, id)
		}
		refs = append(refs, store.Revocation{InstanceID: inst, CredentialID: cred})
	}
	if len(notDead) > 0 {
		return nil, fmt.Errorf("%s: %w; nothing was retried", strings.Join(notDead, ", "), ErrNotDead)
	}
	return refs, nil
}

// retryAllDead empties the dead-letter set a page at a time.
func (s *Sweeper) retryAllDead(ctx context.Context, by string) ([]store.Revocation, error) {
	var out []store.Revocation
	for {
		dead, err := s.p.Store.DeadRevocations(ctx, 0, page)
		if err != nil || len(dead) == 0 {
			return out, err
		}
		moved := 0
		for _, d := range dead {
			r, err := s.retryDead(ctx, store.Revocation{InstanceID: d.InstanceID, CredentialID: d.CredentialID}, by)
			if r != nil {
				out = append(out, *r) // moved back to due, even when its task failed: the sweep enqueues it
				moved++
			}
			if err != nil {
				return out, err
			}
		}
		if moved == 0 {
			return out, nil // another operator retried them meanwhile
		}
	}
}

// retryDead moves one dead revocation back to due and runs its task again:
// a new one when it is gone or finished, the archived one otherwise.
func (s *Sweeper) retryDead(ctx context.Context, r store.Revocation, by string) (*store.Revocation, error) {
	moved, err := s.p.Store.RetryDeadRevocation(ctx, r.InstanceID, r.CredentialID, by)
	if err != nil || moved == nil {
		return nil, err
	}
	var res Result
	enqueued, err := s.enqueueRevoke(ctx, *moved)
	if err != nil || enqueued {
		return moved, err
	}
	info, err := s.p.Inspector.GetTaskInfo(tasks.QueueRevoke, tasks.RevokeTaskID(r.InstanceID, r.CredentialID))
	switch {
	case err != nil:
		return moved, nil // gone since the enqueue: the sweep enqueues it
	case info.State == asynq.TaskStateArchived:
		if err := s.p.Inspector.RunTask(tasks.QueueRevoke, info.ID); err != nil {
			return moved, fmt.Errorf("run revocation of %s again: %w", r.CredentialID, err)
		}
	case info.State == asynq.TaskStateCompleted:
		return moved, s.replaceRevoke(ctx, *moved, &res)
	}
	return moved, nil
}
