// Package reconcile is rekey's safety net: a periodic sweep that compares
// the store with asynq's queues and re-enqueues what was lost, so every old
// credential is revoked (I3) and every requested rotation finishes, across
// crashes, failed enqueues and Redis failovers.
//
// Every worker process runs a Sweeper; a short Redis lock lets only one
// sweep at a time, and every action it takes is idempotent (deterministic
// TaskIDs), so two sweeps at once would still do no harm. The lock is not
// renewed: a sweep that outlasts it runs beside another process's, and a
// task one of them read may be run or started by the time it acts on it,
// which asynq refuses (Sweeper.busy); the record is left to the next sweep.
//
// A sweep walks each index (due revocations, rotations in flight, retiring
// instances) a page at a time from where the last sweep stopped
// (store.Cursor), up to PerSweep entries, so entries that stay at the head
// of an index (revocations whose tasks keep failing) never hide those
// behind them.
//
// Why asynq archived a task is read from the typed mark internal/retry
// leaves on it (retry.Classify), never from its error text:
//   - Waited: the last run only waited for budget or time: run it again now.
//   - Exhausted: failures used up its retries (an issuer or Heroku down for
//     long): run it again hourly; a revocation must happen in the end (I3).
//   - Refused: a run failed permanently (asynq.SkipRetry: the issuer
//     answered a 4xx other than 404, the credential is unknown) or an
//     operator archived the task. A revocation goes to the store's
//     dead-letter set (rekey_revocations_dead, a "revocation_dead" event),
//     where only an operator brings it back once the cause is fixed
//     (RetryDead, `rekey revocations retry`): retrying as it is would be
//     refused again. A rotation ends, unless Heroku may hold its credential.
//
// A revoke task in asynq's retry set is run early only when the note its
// last run left says it waits for a revoke time since brought forward
// (retry.WaitsFor); one retrying after a failure waits out its back-off.
//
// A deprovisioned instance's keys get their expiry once none of its
// credentials waits for revocation (store.ExpireRetired); once they have
// expired, its entry in the index of live configs goes too
// (store.PruneLiveGoneAfter).
//
// Once an hour the sweep lists asynq's servers, which drops the heartbeat
// entries that worker processes dead without shutting down left behind.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/store"
)

// Inspector is what the sweep needs of an *asynq.Inspector.
type Inspector interface {
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
	RunTask(queue, id string) error
	DeleteTask(queue, id string) error
}

// serverLister is the part of an *asynq.Inspector that lists the asynq
// servers that run. Listing them drops the heartbeat entries of those whose
// heartbeat lapsed (asynq:servers, asynq:workers): a worker process that
// died without shutting down (killed, out of memory) leaves one of each a
// lane, which nothing else removes.
type serverLister interface {
	Servers() ([]*asynq.ServerInfo, error)
}

// serversEvery is how often a sweeper lists the asynq servers, to drop the
// heartbeat entries of dead processes (serverLister).
const serversEvery = time.Hour

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
	// PerSweep is how many entries of each index one sweep looks at; the
	// next sweep carries on from there. 0 means 5,000.
	PerSweep int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Sweeper re-enqueues lost work. It is safe for concurrent use.
type Sweeper struct {
	p   Params
	rdb redis.UniversalClient
	// serversAt is when the sweeper last listed the asynq servers, in
	// Unix nanoseconds (forgetDeadServers).
	serversAt atomic.Int64
}

// Result counts what one sweep did.
type Result struct {
	RevokesEnqueued int
	// RevokesRetried counts archived revoke tasks run again.
	RevokesRetried int
	// RevokesExpedited counts revoke tasks that asynq held for a revoke
	// time since brought forward, run now.
	RevokesExpedited  int
	RotationsEnqueued int
	// RotationsResumed counts archived rotate tasks run again: their last
	// run was only waiting for Heroku's budget, or Heroku may hold their
	// credential.
	RotationsResumed int
	RotationsFailed  int
	// RotationsReheld counts held bulk rotations put back in the feeder's
	// held set, which a failed Hold had left out.
	RotationsReheld int
	// RevocationsDead counts revocations moved to the dead-letter set.
	RevocationsDead int
	// InstancesExpiring counts deprovisioned instances whose keys were
	// given their expiry.
	InstancesExpiring int
	// LiveConfigsPruned counts entries of the index of live configs whose
	// deprovisioned instance's records had expired, removed.
	LiveConfigsPruned int
}

// lockKey is the STRING that lets one process sweep at a time.
const lockKey = "rekey:reconcile:lock"

// page is how many entries the sweep reads from Redis at a time.
const page = 500

// defaultPerSweep is how many entries of each index one sweep looks at.
// Every entry costs a few round trips, so this keeps a sweep to seconds
// even with a large backlog; the cursor carries the rest to the next sweep.
const defaultPerSweep = 5000

// New returns a Sweeper.
func New(p Params) *Sweeper {
	if p.Interval <= 0 {
		p.Interval = time.Minute
	}
	if p.Slack <= 0 {
		p.Slack = 2 * time.Minute
	}
	if p.PerSweep <= 0 {
		p.PerSweep = defaultPerSweep
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
				Int("revokes_expedited", res.RevokesExpedited).
				Int("revocations_dead", res.RevocationsDead).Int("rotations", res.RotationsEnqueued).
				Int("rotations_resumed", res.RotationsResumed).Int("rotations_failed", res.RotationsFailed).
				Int("rotations_reheld", res.RotationsReheld).
				Int("instances_expiring", res.InstancesExpiring).
				Int("live_configs_pruned", res.LiveConfigsPruned).Msg("reconciled")
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
	if err := s.rotations(ctx, cutoff, &res); err != nil {
		return res, err
	}
	if err := s.retire(ctx, &res); err != nil {
		return res, err
	}
	if err := s.pruneLiveGone(ctx, &res); err != nil {
		return res, err
	}
	return res, s.forgetDeadServers()
}

// forgetDeadServers lists the asynq servers, at most once every
// serversEvery, so that the heartbeat entries of worker processes that
// died without shutting down are dropped though nothing scrapes /metrics
// (which lists them too).
func (s *Sweeper) forgetDeadServers() error {
	l, ok := s.p.Inspector.(serverLister)
	if !ok {
		return nil
	}
	// The process's own clock, not Params.Now: asynq dates the heartbeats
	// by it, and this only spaces the listings.
	now, last := time.Now(), s.serversAt.Load()
	if last != 0 && now.Sub(time.Unix(0, last)) < serversEvery || !s.serversAt.CompareAndSwap(last, now.UnixNano()) {
		return nil
	}
	if _, err := l.Servers(); err != nil {
		return fmt.Errorf("list the asynq servers: %w", err)
	}
	return nil
}

// walk runs one sweep's share of the walk through an index: from the
// cursor the last sweep saved, a page at a time, until PerSweep entries
// were looked at or the index ends (then the next walk starts from its
// head). visit reads and handles one page after a cursor; it returns how
// many entries it saw, the cursor of the last, and whether none follows.
func (s *Sweeper) walk(ctx context.Context, index string,
	visit func(after store.Cursor) (int, store.Cursor, bool, error)) error {
	cur, err := s.p.Store.SweepCursor(ctx, index)
	if err != nil {
		return err
	}
	for seen := 0; seen < s.p.PerSweep; {
		n, next, done, err := visit(cur)
		if err != nil {
			return err
		}
		seen += n
		if done {
			cur = store.Cursor{}
			break
		}
		cur = next
	}
	return s.p.Store.SaveSweepCursor(ctx, index, cur)
}

// busy reports whether the task id in queue is running or waiting for a
// worker. asynq deletes no running task and runs no task that waits already,
// so a task the sweep read that has started since (a worker took it, or
// another sweep ran it) refuses what the sweep meant to do with it. It will
// run, or ran: the next sweep finds it so, and this one goes on rather than
// stop before every record behind it.
func (s *Sweeper) busy(queue, id string) bool {
	info, err := s.p.Inspector.GetTaskInfo(queue, id)
	return err == nil && (info.State == asynq.TaskStateActive || info.State == asynq.TaskStatePending)
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
