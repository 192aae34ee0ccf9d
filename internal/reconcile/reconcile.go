// Package reconcile is rekey's safety net: a periodic sweep that compares
// the store with asynq's queues and re-enqueues what was lost, so every old
// credential is revoked (I3) and every requested rotation finishes, across
// crashes, failed enqueues and Redis failovers.
//
// Every worker process runs a Sweeper; a short Redis lock lets only one
// sweep at a time, and every action it takes is idempotent (deterministic
// TaskIDs), so two sweeps at once would still do no harm.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// Inspector is what the sweep needs of an *asynq.Inspector.
type Inspector interface {
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
	RunTask(queue, id string) error
}

// Params build a Sweeper.
type Params struct {
	Store     *store.Store
	Enqueuer  fleet.Enqueuer
	Inspector Inspector
	Logger    zerolog.Logger
	// Interval between sweeps; 0 means one minute.
	Interval time.Duration
	// Slack is how long past its due time a revocation or a rotation may
	// wait for its task before the sweep steps in; 0 means two minutes.
	Slack time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Sweeper re-enqueues lost work. It is safe for concurrent use.
type Sweeper struct {
	p   Params
	rdb redis.UniversalClient
}

// Result counts what one sweep did.
type Result struct {
	RevokesEnqueued int
	// RevokesRetried counts archived revoke tasks run again.
	RevokesRetried    int
	RotationsEnqueued int
	// RotationsResumed counts archived rotate tasks run again because their
	// last run was only waiting for Heroku's budget.
	RotationsResumed int
	RotationsFailed  int
}

// lockKey is the STRING that lets one process sweep at a time.
const lockKey = "rekey:reconcile:lock"

// batch is how many items one sweep looks at, per kind.
const batch = 500

// New returns a Sweeper.
func New(p Params) *Sweeper {
	if p.Interval <= 0 {
		p.Interval = time.Minute
	}
	if p.Slack <= 0 {
		p.Slack = 2 * time.Minute
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	return &Sweeper{p: p, rdb: p.Store.Redis()}
}

// Run sweeps every interval until ctx is done.
func (s *Sweeper) Run(ctx context.Context) error {
	t := time.NewTicker(s.p.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		ok, err := s.rdb.SetNX(ctx, lockKey, "1", s.p.Interval/2).Result()
		if err != nil || !ok {
			continue
		}
		res, err := s.Sweep(ctx)
		if err != nil && ctx.Err() == nil {
			s.p.Logger.Warn().Err(err).Msg("reconcile_failed")
		} else if res != (Result{}) {
			s.p.Logger.Info().Int("revokes", res.RevokesEnqueued).Int("revokes_retried", res.RevokesRetried).
				Int("rotations", res.RotationsEnqueued).
				Int("rotations_resumed", res.RotationsResumed).Int("rotations_failed", res.RotationsFailed).Msg("reconciled")
		}
	}
}

// Sweep runs one sweep now.
func (s *Sweeper) Sweep(ctx context.Context) (Result, error) {
	var res Result
	cutoff := s.p.Now().Add(-s.p.Slack)
	if err := s.revocations(ctx, cutoff, &res); err != nil {
		return res, err
	}
	err := s.rotations(ctx, cutoff, &res)
	return res, err
}

// archivedRevokeRetry is how long a revoke task asynq archived (the issuer
// kept refusing for its 25 retries), or a rotate task archived after a push
// whose outcome is unknown, rests before the sweep runs it again: the work
// must be done in the end (I1, I3), without hammering a service that is
// down for days.
const archivedRevokeRetry = time.Hour

// revocations re-enqueues revocations past due whose task is gone, and
// runs again, hourly, those whose task was archived.
func (s *Sweeper) revocations(ctx context.Context, cutoff time.Time, res *Result) error {
	revs, err := s.p.Store.DueRevocations(ctx, cutoff, batch)
	if err != nil {
		return err
	}
	for _, r := range revs {
		t, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: r.InstanceID, CredentialID: r.CredentialID}, r.RevokeAt)
		if err != nil {
			return err
		}
		enqueued, err := s.enqueue(ctx, t)
		switch {
		case err != nil:
			return err
		case enqueued:
			res.RevokesEnqueued++
			continue
		}
		info, err := s.p.Inspector.GetTaskInfo(tasks.QueueRevoke, tasks.RevokeTaskID(r.InstanceID, r.CredentialID))
		if err != nil || info.State != asynq.TaskStateArchived || s.p.Now().Sub(info.LastFailedAt) < archivedRevokeRetry {
			continue
		}
		if err := s.p.Inspector.RunTask(tasks.QueueRevoke, info.ID); err != nil {
			return fmt.Errorf("run revocation of %s again: %w", r.CredentialID, err)
		}
		res.RevokesRetried++
	}
	return nil
}

// rotations re-enqueues stale rotations whose task is gone, and ends those
// whose task asynq archived (retries exhausted), so the instance is free
// to rotate again and the pending credential is revoked. A task archived
// while it was only waiting for Heroku's budget runs again instead: being
// rate limited must not use up a rotation's retries (DESIGN.md).
func (s *Sweeper) rotations(ctx context.Context, cutoff time.Time, res *Result) error {
	stale, err := s.p.Store.StaleRotations(ctx, cutoff, batch)
	if err != nil {
		return err
	}
	for _, ref := range stale {
		rot, err := s.p.Store.Rotation(ctx, ref.RotationID)
		if err != nil {
			continue
		}
		info, err := s.p.Inspector.GetTaskInfo(rot.Queue, tasks.RotateTaskID(rot.ID))
		switch {
		case errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound):
			if err := fleet.Enqueue(ctx, s.p.Enqueuer, rot.InstanceID, rot.ID, rot.BatchID, rot.Reason, rot.Queue, rot.Grace); err != nil {
				return err
			}
			res.RotationsEnqueued++
		case err != nil:
			return fmt.Errorf("inspect rotation %s: %w", rot.ID, err)
		case info.State == asynq.TaskStateArchived && handlers.IsWaiting(info.LastErr):
			if err := s.p.Inspector.RunTask(rot.Queue, info.ID); err != nil {
				return fmt.Errorf("run rotation %s again: %w", rot.ID, err)
			}
			res.RotationsResumed++
		case info.State == asynq.TaskStateArchived && rot.PushAttempted:
			// Heroku may hold the credential: discarding it could break the
			// apps (I1). Run the rotation again, hourly, until it promotes.
			if s.p.Now().Sub(info.LastFailedAt) < archivedRevokeRetry {
				continue
			}
			if err := s.p.Inspector.RunTask(rot.Queue, info.ID); err != nil {
				return fmt.Errorf("run rotation %s again: %w", rot.ID, err)
			}
			res.RotationsResumed++
		case info.State == asynq.TaskStateArchived:
			if err := s.giveUp(ctx, rot, info); err != nil {
				return err
			}
			res.RotationsFailed++
		}
	}
	return nil
}

func (s *Sweeper) giveUp(ctx context.Context, rot store.Rotation, info *asynq.TaskInfo) error {
	cause := "gave up after retries: " + info.LastErr
	discarded, err := s.p.Store.Fail(ctx, rot.InstanceID, rot.ID, "retries_exhausted", cause)
	if err != nil || discarded == nil {
		return err
	}
	t, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: discarded.InstanceID, CredentialID: discarded.CredentialID}, discarded.RevokeAt)
	if err != nil {
		return err
	}
	_, err = s.enqueue(ctx, t)
	return err
}

// enqueue reports whether t was enqueued; an existing task is not an error.
func (s *Sweeper) enqueue(ctx context.Context, t *asynq.Task) (bool, error) {
	_, err := s.p.Enqueuer.EnqueueContext(ctx, t)
	switch {
	case errors.Is(err, asynq.ErrTaskIDConflict):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("reconcile enqueue: %w", err)
	}
	return true, nil
}
