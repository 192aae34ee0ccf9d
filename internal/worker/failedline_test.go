package worker_test

import (
	"bufio"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/testbuf"
	"github.com/rekeyhq/rekey/internal/worker"
	"github.com/rekeyhq/rekey/tasks"
)

// lockedBuffer is a log sink the test's goroutines share.
type lockedBuffer = testbuf.Buffer

// maxFailedLine bounds the line a worker writes for a failed task: another
// app may enqueue a task of any type into rekey's queues (a megabyte of it,
// or one a loop writes again and again), and each run that fails writes a
// line naming it, twice (its type, and asynq's "handler not found for task
// %q"). A log drain, Heroku's among them, cuts or drops such lines.
const maxFailedLine = 4 << 10

func TestAFailedTaskOfAHugeTypeIsLoggedOnABoundedLine(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	logs := &lockedBuffer{}
	w, err := worker.New(worker.Params{Redis: r.Client, Handler: asynq.NewServeMux(), Concurrency: 4,
		Logger: zerolog.New(logs), PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	typ := "rekey:" + strings.Repeat("x", 1<<20)
	client := asynq.NewClientFromRedisClient(r.Client)
	if _, err := client.Enqueue(asynq.NewTask(typ, nil), asynq.Queue(tasks.QueueDefault), asynq.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), `"task_failed"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no task_failed line within 10s:\n%.2000s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		if line := sc.Text(); len(line) > maxFailedLine {
			t.Errorf("a log line of %d bytes (the bound is %d): %.300s…", len(line), maxFailedLine, line)
		}
	}
}
