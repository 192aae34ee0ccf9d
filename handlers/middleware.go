package handlers

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/tasks"
)

// Logging puts a logger with the task's fields into the context and logs
// each run's end once. Payloads are never logged; they hold ids only, but
// the habit keeps any future field out of the logs too.
func Logging(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		queue, _ := asynq.GetQueueName(ctx)
		retry, _ := asynq.GetRetryCount(ctx)
		log := zerolog.Ctx(ctx).With().Str("task_id", id).Str("task_type", t.Type()).
			Str("queue", queue).Int("retry", retry).Logger()
		start := time.Now()
		err := next.ProcessTask(log.WithContext(ctx), t)
		// Failures are logged once, by the server's error handler.
		log.Debug().Bool("ok", err == nil).Dur("took", time.Since(start)).Msg("task_done")
		return err
	})
}

// rekeyTypesOnly fails a task of a type no handler of mux takes, or one
// only a rekey handler's pattern prefixes (asynq matches patterns as
// prefixes: rekey:rotate takes rekey:rotate:v2), with an error that says
// what to change, in place of asynq's "handler not found" or a payload
// refused: rekey's workers serve the queues of the tasks package, asynq's
// default queue among them, so another app sharing the Redis and putting
// its own tasks there has some of them taken, failed and retried by rekey.
// A type the mux's owner registered itself, beside rekey's (Register),
// goes to its handler. The error quotes the start of the type alone (it
// may be of any size), never the payload.
func rekeyTypesOnly(mux *asynq.ServeMux) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			_, pattern := mux.Handler(t)
			rekeys := pattern == tasks.TypeRotate || pattern == tasks.TypeRevoke
			if pattern == "" || rekeys && t.Type() != pattern {
				return fmt.Errorf("task type %q is not rekey's: rekey's workers serve the queues %s, %s, %s and %s on this "+
					"Redis and take every task there; give your own tasks a queue of their own (asynq.Queue) or another "+
					"Redis database", secret.Clip(t.Type(), 100), tasks.QueueInteractive, tasks.QueueDefault, tasks.QueueBulk,
					tasks.QueueRevoke)
			}
			return next.ProcessTask(ctx, t)
		})
	}
}
