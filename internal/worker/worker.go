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
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/logging"
	"github.com/rekeyhq/rekey/internal/retry"
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
	// Concurrency is how many tasks run at once; 0 means 10.
	Concurrency int
	// Logger receives asynq's own logs and the handlers'.
	Logger zerolog.Logger
	// PollInterval is how often scheduled and retry tasks are moved to
	// their queues, and how often idle queues are checked for new tasks;
	// 0 means one second for the first and IdlePoll for the second.
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

// Worker is one asynq server running rekey's handlers.
type Worker struct {
	srv     *asynq.Server
	handler asynq.Handler
	log     zerolog.Logger
}

// New builds a Worker. It does not start it.
func New(p Params) (*Worker, error) {
	if p.Redis == nil || p.Handler == nil {
		return nil, errors.New("worker: Redis and Handler are required")
	}
	if p.Concurrency <= 0 {
		p.Concurrency = 10
	}
	taskCheck := p.PollInterval
	if p.PollInterval <= 0 {
		p.PollInterval, taskCheck = time.Second, p.IdlePoll
		if taskCheck <= 0 {
			taskCheck = DefaultIdlePoll
		}
	}
	if p.RetryDelay == nil {
		p.RetryDelay = retry.Delay
	}
	log := p.Logger
	srv := asynq.NewServerFromRedisClient(p.Redis, asynq.Config{
		Concurrency:              p.Concurrency,
		Queues:                   tasks.Queues(),
		IsFailure:                retry.IsFailure,
		RetryDelayFunc:           p.RetryDelay,
		ShutdownTimeout:          ShutdownTimeout,
		DelayedTaskCheckInterval: p.PollInterval,
		TaskCheckInterval:        taskCheck,
		Logger:                   logging.Asynq{L: log.With().Str("component", "asynq").Logger(), Quiet: p.QuietLogs},
		LogLevel:                 asynq.WarnLevel,
		BaseContext:              func() context.Context { return log.WithContext(context.Background()) },
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			if !retry.IsFailure(err) {
				return
			}
			zerolog.Ctx(ctx).Warn().Str("task_type", t.Type()).Err(err).Msg("task_failed")
		}),
	})
	// Record leaves, on every run asynq archives, why it did, for the
	// reconcile sweep (retry.Classify).
	return &Worker{srv: srv, handler: retry.Record(p.Handler), log: log}, nil
}

// Run serves tasks until ctx is done, then shuts down gracefully.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.srv.Start(w.handler); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	w.log.Info().Msg("worker_started")
	<-ctx.Done()
	w.log.Info().Msg("worker_stopping")
	w.srv.Shutdown()
	w.log.Info().Msg("worker_stopped")
	return nil
}
