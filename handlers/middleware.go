package handlers

import (
	"context"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"
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
