// Package worker runs rekey's asynq server: the task handlers it is given,
// rekey's retry and failure rules (internal/retry), and a shutdown that fits
// in the 30 seconds Heroku allows between SIGTERM and SIGKILL.
//
// It does not import the handlers package: cmd/rekey builds the handlers
// (handlers.NewMux) and hands them over, so the retry contract between them
// is the typed one of internal/retry.
package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/logging"
	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/tasks"
)

// ShutdownTimeout is how long running tasks get to finish after SIGTERM.
// Heroku kills a dyno 30 s after SIGTERM; what does not finish in time is
// re-queued by asynq and, every step being idempotent, runs again.
const ShutdownTimeout = 20 * time.Second

// DefaultIdlePoll is Params.IdlePoll's default.
const DefaultIdlePoll = 500 * time.Millisecond

// Params build a Worker.
type Params struct {
	// Redis is the connection shared with the store.
	Redis redis.UniversalClient
	// Handler runs the tasks (handlers.NewMux).
	Handler asynq.Handler
	// Concurrency is how many tasks run at once, shared between the lanes
	// by their Share (at least one slot each); 0 means 10.
	Concurrency int
	// Logger receives asynq's own logs and the handlers'.
	Logger zerolog.Logger
	// PollInterval is how often scheduled and retry tasks are moved to
	// their queues, and how often idle queues are checked for new tasks;
	// 0 means one second for the first and IdlePoll for the second, and
	// SlowForward and SlowPoll in slow lanes (Lane.Slow).
	PollInterval time.Duration
	// IdlePoll is how often a worker with nothing to run looks for new
	// tasks when PollInterval is 0: half a second, so that an interactive
	// rotation requested during a paced wave, when the slots are mostly
	// idle, starts within it (docs/design.md, "Pacing a wave").
	IdlePoll time.Duration
	// RetryDelay is how long a task that returned an error waits before it
	// runs again; nil means retry.Delay. Tests shorten it.
	RetryDelay asynq.RetryDelayFunc
	// QuietLogs, when set and true, demotes asynq's own warnings and errors
	// to debug: while Redis is down asynq repeats them every second and
	// keeps retrying on its own (health.Redis.LibraryError). nil never demotes.
	QuietLogs func() bool
}

// Worker is the asynq servers of one process running rekey's handlers: one
// per lane (Lanes), each polling only its own queues.
type Worker struct {
	srvs    []*asynq.Server
	handler asynq.Handler
	// running counts the tasks under way, for the line that says what a
	// shutdown waits for.
	running atomic.Int64
	log     zerolog.Logger
}

// Lane is a group of queues one asynq server of each worker process polls,
// with its own slots.
type Lane struct {
	// Name says what the lane carries, in logs.
	Name string
	// Queues maps the lane's queues to their weights.
	Queues map[string]int
	// Share is the lane's part of Params.Concurrency, in quarters, rounded
	// down; every lane has at least one slot.
	Share int
	// Slow lanes carry nothing a person or a paid token waits for: they
	// look at their empty queues every SlowPoll rather than every IdlePoll,
	// and move their due scheduled and retry tasks every SlowForward
	// rather than every second.
	Slow bool
}

// A slow lane's intervals. A revocation runs at most about 8 s after its
// revoke time (never before: I2); a default-queue rotation (a few instances
// named by an operator) starts within about 3 s, a retry of one a few
// seconds after its delay.
const (
	SlowPoll    = 2 * time.Second
	SlowForward = 5 * time.Second
)

// Lanes are the worker's lanes. asynq looks at every queue of a server, one
// script each, every time it looks for a task, and looks once more at once
// after every task it finds: with all four queues on one server that was
// about half of a paced rotation's Redis bill (docs/benchmarks.md,
// "Real-time waves"). A lane per kind of work makes each look cost what
// that kind needs, and gives interactive work slots of its own, which no
// wave or backlog of revocations can fill. Revoke and default share a lane:
// a lane of its own for either would save about four commands a rotation
// and cost more than that every second in heartbeats and polls.
func Lanes() []Lane {
	return []Lane{
		{Name: "interactive", Queues: map[string]int{tasks.QueueInteractive: 1}, Share: 1},
		{Name: "bulk", Queues: map[string]int{tasks.QueueBulk: 1}, Share: 2},
		{Name: "background", Queues: map[string]int{tasks.QueueRevoke: 4, tasks.QueueDefault: 3}, Share: 1, Slow: true},
	}
}

// Slots is lane l's part of concurrency: how many of its tasks one worker
// process runs at once.
func (l Lane) Slots(concurrency int) int { return max(1, concurrency*l.Share/4) }

// intervals are how often lane l looks at its empty queues and moves its
// due tasks, under p.
func (l Lane) intervals(p Params) (check, forward time.Duration) {
	switch {
	case p.PollInterval > 0:
		return p.PollInterval, p.PollInterval
	case l.Slow:
		return SlowPoll, SlowForward
	case p.IdlePoll > 0:
		return p.IdlePoll, time.Second
	}
	return DefaultIdlePoll, time.Second
}

// New builds a Worker. It does not start it.
func New(p Params) (*Worker, error) {
	if p.Redis == nil || p.Handler == nil {
		return nil, errors.New("worker: Redis and Handler are required")
	}
	if p.Concurrency <= 0 {
		p.Concurrency = 10
	}
	if p.RetryDelay == nil {
		p.RetryDelay = retry.Delay
	}
	// Record leaves, on every run asynq archives, why it did, and on a run
	// that waits for a time of its own, that time, for the reconcile sweep
	// (retry.Classify, retry.WaitsFor).
	w := &Worker{log: p.Logger}
	recorded := retry.Record(p.Handler)
	w.handler = asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		w.running.Add(1)
		defer w.running.Add(-1)
		return recorded.ProcessTask(ctx, t)
	})
	for _, lane := range Lanes() {
		w.srvs = append(w.srvs, newServer(p, lane))
	}
	return w, nil
}

// maxLoggedType and maxLoggedError bound what a task_failed line keeps
// of a task's type and error. rekey's types are a dozen bytes, and the
// errors its handlers return are scrubbed and capped far below this.
const (
	maxLoggedType  = 100
	maxLoggedError = 1 << 10
)

// newServer builds the asynq server of one lane.
func newServer(p Params, lane Lane) *asynq.Server {
	log := p.Logger
	check, forward := lane.intervals(p)
	return asynq.NewServerFromRedisClient(p.Redis, asynq.Config{
		Concurrency:              lane.Slots(p.Concurrency),
		Queues:                   lane.Queues,
		IsFailure:                retry.IsFailure,
		RetryDelayFunc:           p.RetryDelay,
		ShutdownTimeout:          ShutdownTimeout,
		DelayedTaskCheckInterval: forward,
		TaskCheckInterval:        check,
		Logger: logging.Asynq{L: log.With().Str("component", "asynq").Str("lane", lane.Name).Logger(),
			Quiet: p.QuietLogs},
		LogLevel:    asynq.WarnLevel,
		BaseContext: func() context.Context { return log.WithContext(context.Background()) },
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			if !retry.IsFailure(err) {
				return
			}
			// Another app's task may be of any type, of any size, and
			// asynq's error for a type no handler takes quotes it: the
			// line keeps the start of each.
			zerolog.Ctx(ctx).Warn().Str("task_type", secret.Clip(t.Type(), maxLoggedType)).
				Str(zerolog.ErrorFieldName, secret.Clip(err.Error(), maxLoggedError)).Msg("task_failed")
		}),
	})
}

// Run serves tasks until ctx is done, then shuts every lane down gracefully
// at once, so the whole shutdown still fits in ShutdownTimeout.
func (w *Worker) Run(ctx context.Context) error {
	for i, srv := range w.srvs {
		if err := srv.Start(w.handler); err != nil {
			w.shutdown(w.srvs[:i])
			return fmt.Errorf("start worker: %w", err)
		}
	}
	w.log.Info().Msg("worker_started")
	<-ctx.Done()
	w.log.Info().Int64("running_tasks", w.running.Load()).Dur("deadline", ShutdownTimeout).
		Str("detail", "takes no new task and waits for the running ones until the deadline; anything cut short "+
			"runs again later; a second signal exits at once").Msg("worker_stopping")
	w.shutdown(w.srvs)
	w.log.Info().Msg("worker_stopped")
	return nil
}

// shutdown shuts srvs down in parallel.
func (w *Worker) shutdown(srvs []*asynq.Server) {
	var wg sync.WaitGroup
	for _, srv := range srvs {
		wg.Go(srv.Shutdown)
	}
	wg.Wait()
}
