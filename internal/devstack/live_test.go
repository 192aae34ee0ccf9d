package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/tasks"
)

// startServer runs a real asynq server on r polling queues, as another
// process's worker would, until the test ends, and waits for its
// heartbeat.
func startServer(t *testing.T, r *redistest.Redis, queues ...string) {
	t.Helper()
	weights := map[string]int{}
	for _, q := range queues {
		weights[q] = 1
	}
	srv := asynq.NewServerFromRedisClient(r.Client, asynq.Config{Queues: weights, LogLevel: asynq.FatalLevel})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	insp := asynq.NewInspectorFromRedisClient(r.Client)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if s, err := insp.Servers(); err == nil && len(s) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the asynq server wrote no heartbeat within 10s")
		}
	}
}

// TestClaimRedisRefusesLiveWorkers: asynq servers of another process
// polling rekey's queues refuse the database, named by host and pid,
// whether dev may share its data (--allow-foreign-redis) or would clear an
// earlier run's; --allow-live-workers runs beside them. A server on other
// queues is no reason to refuse.
func TestClaimRedisRefusesLiveWorkers(t *testing.T) {
	ctx := context.Background()
	host, _ := os.Hostname()
	process := fmt.Sprintf("1 process (%s pid %d)", host, os.Getpid())
	tests := []struct {
		name       string
		earlierRun bool
		queues     []string
		o          Options
		// refused: the count the refusal names; 0 means dev may run.
		refused int
	}{
		{name: "foreign data allowed", queues: []string{tasks.QueueBulk, tasks.QueueInteractive},
			o: Options{AllowForeignRedis: true}, refused: 1},
		{name: "an earlier dev run's data", earlierRun: true, queues: []string{tasks.QueueRevoke}, refused: 1},
		{name: "live workers allowed", queues: []string{tasks.QueueDefault},
			o: Options{AllowForeignRedis: true, AllowLiveWorkers: true}},
		{name: "another application's queues", queues: []string{"emails"}, o: Options{AllowForeignRedis: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, st := newStore(t)
			if tt.earlierRun {
				if err := st.MarkDev(ctx, "dev-1"); err != nil {
					t.Fatal(err)
				}
				register(t, st, "dev-1")
			}
			startServer(t, r, tt.queues...)
			var log bytes.Buffer
			tt.o.Stderr = &log
			release, err := claimRedis(ctx, st, tt.o)
			if tt.refused == 0 {
				if err != nil {
					t.Fatal(err)
				}
				release()
				if tt.o.AllowLiveWorkers && !strings.Contains(log.String(), "REDIS_URL has 1 live asynq server polling rekey's queues, in "+process+"; running beside them anyway") {
					t.Errorf("dev did not say it runs beside live workers: %q", log.String())
				}
				return
			}
			var live *LiveWorkersError
			if !errors.As(err, &live) {
				t.Fatalf("err = %v, want a refusal", err)
			}
			for _, want := range []string{fmt.Sprintf("has %d live asynq server polling rekey's queues, in %s", tt.refused, process),
				"rekey dev changed nothing", AllowLiveWorkersFlag} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("refusal lacks %q: %s", want, err)
				}
			}
			// An earlier run's data is not cleared, nor a database marked.
			mark, _ := st.DevMark(ctx)
			if n, _ := st.CountInstances(ctx); mark.Claimed != tt.earlierRun || (n == 1) != tt.earlierRun {
				t.Errorf("the refused database changed: claimed %v, %d instances", mark.Claimed, n)
			}
		})
	}
}

// TestClaimRedisRefusesForeignTasks: a database holding data dev did not
// write and tasks in rekey's queues is refused even with no worker polling
// them now (a fleet scaled to zero, or restarting), since dev's workers
// would take them; --allow-live-workers runs there anyway. An earlier dev
// run's data that live workers use is left, not cleared.
func TestClaimRedisRefusesForeignTasks(t *testing.T) {
	ctx := context.Background()
	r, st := newStore(t)
	register(t, st, "real-1") // not dev's: no dev mark
	revoke, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: "real-1", CredentialID: "cred-1"}, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := asynq.NewClientFromRedisClient(r.Client).Enqueue(revoke); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	_, err = claimRedis(ctx, st, Options{AllowForeignRedis: true, Stderr: &log})
	var live *LiveWorkersError
	if !errors.As(err, &live) || live.Tasks != 1 || !strings.Contains(err.Error(), "1 task waiting in rekey's queues") {
		t.Fatalf("err = %v, want a refusal naming the waiting task", err)
	}
	release, err := claimRedis(ctx, st, Options{AllowForeignRedis: true, AllowLiveWorkers: true, Stderr: &log})
	if err != nil {
		t.Fatalf("with %s: %v", AllowLiveWorkersFlag, err)
	}
	release()

	// Another dev run's data, its workers live: left as it is.
	r2, st2 := newStore(t)
	if err := st2.MarkDev(ctx, "dev-1"); err != nil {
		t.Fatal(err)
	}
	register(t, st2, "dev-1")
	startServer(t, r2, tasks.QueueDefault)
	log.Reset()
	release, err = claimRedis(ctx, st2, Options{AllowLiveWorkers: true, Stderr: &log})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if n, _ := st2.CountInstances(ctx); n != 1 || !strings.Contains(log.String(), "leaving it") {
		t.Errorf("%d instances after the claim (want the other run's 1 kept); log %q", n, log.String())
	}
}
