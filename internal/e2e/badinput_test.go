package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"maps"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/tasks"
)

// An undecodable payload is archived at once: retrying cannot fix it.
func TestUndecodablePayloadIsArchived(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{})
	w.startWorker(workerParams{retryDelay: fastRetry})
	queued, err := w.queue.Enqueue(asynq.NewTask(tasks.TypeRotate, []byte("{not json")),
		asynq.Queue(tasks.QueueDefault), asynq.MaxRetry(tasks.RotateMaxRetry))
	if err != nil {
		t.Fatal(err)
	}
	info := w.waitTask(tasks.QueueDefault, queued.ID, 10*time.Second)
	if info.State != asynq.TaskStateArchived || info.Retried != 0 || !strings.Contains(info.LastErr, "invalid task payload") {
		t.Errorf("task: %s after %d retries, last error %q; want archived at once, naming the invalid payload",
			info.State, info.Retried, info.LastErr)
	}
	if n := w.sb.Demo.Stats().MintCalls; n != 0 {
		t.Errorf("issuer asked to mint %d times for an undecodable task", n)
	}
	t.Logf("undecodable payload: %s, retried %d, last error %q", info.State, info.Retried, info.LastErr)
}

// A rotation request naming an unknown or deprovisioned instance is refused
// whole, with nothing enqueued and nothing stored; a rotate task for one
// (from another app) is archived with a sentence naming it.
func TestUnknownInstanceIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, worldParams{})
	samples := w.provision(2, sandbox.Mix{})
	live, gone := samples[0].ID, samples[1].ID
	if err := w.store.Deprovision(ctx, gone); err != nil {
		t.Fatal(err)
	}
	before := sortedDump(t, w.redis)

	producer := fleet.NewProducer(w.store, w.queue)
	_, err := producer.Rotate(ctx, fleet.Request{InstanceIDs: []string{live, "no-such-instance", gone}})
	var unknown *fleet.UnknownError
	if !errors.As(err, &unknown) || !slices.Equal(unknown.Unknown, []string{"no-such-instance"}) ||
		!slices.Equal(unknown.Deprovisioned, []string{gone}) {
		t.Fatalf("err = %v, want an UnknownError naming no-such-instance and %s", err, gone)
	}
	if !strings.Contains(err.Error(), "no-such-instance") || !strings.Contains(err.Error(), "nothing enqueued") {
		t.Errorf("error %q does not say what was refused", err)
	}
	if after := sortedDump(t, w.redis); after != before {
		t.Errorf("a refused request changed Redis:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if all := w.allTasks(); len(all) != 0 {
		t.Errorf("a refused request enqueued %d tasks", len(all))
	}

	w.startWorker(workerParams{retryDelay: fastRetry})
	for id, want := range map[string]string{"no-such-instance": "instance no-such-instance is not registered",
		gone: "instance " + gone + " is deprovisioned"} {
		task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: id})
		if err != nil {
			t.Fatal(err)
		}
		queued, err := w.queue.Enqueue(task)
		if err != nil {
			t.Fatal(err)
		}
		info := w.waitTask(queued.Queue, queued.ID, 10*time.Second)
		if info.State != asynq.TaskStateArchived || info.Retried != 0 || !strings.Contains(info.LastErr, want) {
			t.Errorf("rotate task for %s: %s after %d retries, last error %q; want archived at once with %q",
				id, info.State, info.Retried, info.LastErr, want)
		}
		t.Logf("rotate task for %s: %s, retried %d, last error %q", id, info.State, info.Retried, info.LastErr)
	}
	t.Logf("refused request: %v", err)
}

// sortedDump is Redis's content as sorted lines, to compare two moments.
func sortedDump(t *testing.T, r *redistest.Redis) string {
	t.Helper()
	lines := strings.Split(redistest.Dump(t, r), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// `rekey worker` refuses to start on bad configuration, with a sentence
// naming the variable, and starts (and stops on SIGTERM) on good.
func TestBadConfigurationStopsStartup(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	valid := map[string]string{
		"REDIS_URL":                  r.URL,
		"HEROKU_OAUTH_CLIENT_SECRET": "client-secret-of-the-test",
		"REKEY_ENCRYPTION_KEYS":      randomKey(t),
		"REKEY_ISSUER_URL":           "http://127.0.0.1:9",
		"REKEY_ISSUER_SECRET":        "issuer-secret-of-the-test",
		"REKEY_LOG_LEVEL":            "info",
	}
	for _, tc := range []struct {
		name     string
		set      map[string]string
		unset    string
		variable string
	}{
		{name: "grace not a duration", set: map[string]string{"REKEY_GRACE": "abc"}, variable: "REKEY_GRACE"},
		{name: "encryption keys missing", unset: "REKEY_ENCRYPTION_KEYS", variable: "REKEY_ENCRYPTION_KEYS"},
		{name: "encryption key too short", set: map[string]string{"REKEY_ENCRYPTION_KEYS": "c2hvcnQta2V5"}, variable: "REKEY_ENCRYPTION_KEYS"},
		{name: "rate not a number", set: map[string]string{"REKEY_HEROKU_RATE": "lots"}, variable: "REKEY_HEROKU_RATE"},
		{name: "redis url missing", unset: "REDIS_URL", variable: "REDIS_URL"},
		{name: "issuer url missing", unset: "REKEY_ISSUER_URL", variable: "REKEY_ISSUER_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := maps.Clone(valid)
			maps.Copy(env, tc.set)
			delete(env, tc.unset)
			p := startRekey(t, env, "worker")
			code := p.exit(20 * time.Second)
			out := strings.TrimSpace(p.stderr.String())
			if code == 0 || !strings.Contains(out, tc.variable) {
				t.Errorf("exit code %d, output %q; want non-zero and a sentence naming %s", code, out, tc.variable)
			}
			for name, v := range env {
				if strings.Contains(name, "SECRET") || name == "REKEY_ENCRYPTION_KEYS" {
					if strings.Contains(out, v) {
						t.Errorf("output echoes the value of %s", name)
					}
				}
			}
			t.Logf("exit %d: %s", code, out)
		})
	}
	t.Run("valid configuration", func(t *testing.T) {
		t.Parallel()
		p := startRekey(t, valid, "worker")
		waitFor(t, 20*time.Second, "worker start", func() (bool, string) {
			out := p.stderr.String()
			return strings.Contains(out, "worker_started"), out
		})
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := p.exit(25 * time.Second); code != 0 {
			t.Errorf("exit code after SIGTERM: %d, want 0", code)
		}
	})
}

func randomKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}
