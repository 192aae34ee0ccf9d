package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// testKey is the encryption key of every test environment.
var testKey = bytes.Repeat([]byte{9}, seal.KeySize)

// The tests of this package do not run in parallel: every command builds
// its logger with logging.New, which sets zerolog's global time format.

// cli is one test's environment: its own Redis database, a store on it
// for setting up and checking, and the streams a command writes to.
type cli struct {
	r      *redistest.Redis
	st     *store.Store
	stdout *syncBuffer
	stderr *syncBuffer
	stdin  io.Reader
	// terminal makes the commands take stdin for a person's answers.
	terminal bool
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	r := redistest.New(t)
	sealer, err := seal.New(testKey)
	if err != nil {
		t.Fatal(err)
	}
	return &cli{r: r, st: store.New(r.Client, sealer), stdout: &syncBuffer{}, stderr: &syncBuffer{},
		stdin: strings.NewReader("")}
}

// vars are the variables a command sees: REDIS_URL, REKEY_ENCRYPTION_KEYS
// and the budget.
func (c *cli) vars() map[string]string {
	return map[string]string{
		"REDIS_URL":             c.r.URL,
		"REKEY_ENCRYPTION_KEYS": base64.StdEncoding.EncodeToString(testKey),
		"REKEY_HEROKU_RATE":     "4000",
	}
}

// env is the environment a command sees: vars and the test's buffers.
func (c *cli) env() *environ {
	vars := c.vars()
	return &environ{
		lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		stdin:  c.stdin, stdout: c.stdout, stderr: c.stderr, terminal: c.terminal,
	}
}

// run runs `rekey name args...` with fresh output buffers.
func (c *cli) run(t *testing.T, name string, args ...string) error {
	t.Helper()
	c.stdout.Reset()
	c.stderr.Reset()
	return runCommand(context.Background(), c.env(), name, args...)
}

// runCommand runs `rekey name args...` in env, through the command tree.
func runCommand(ctx context.Context, env *environ, name string, args ...string) error {
	return run(ctx, env, append([]string{name}, args...))
}

// isUsage reports whether err is a usage error (exit status 2).
func isUsage(err error) bool {
	_, ok := asUsage(err)
	return ok
}

func instanceID(i int) string { return fmt.Sprintf("inst-%05d", i) }

// register registers n V3 instances, inst-00000 on, from 32 goroutines.
func (c *cli) register(t testing.TB, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = instanceID(i)
	}
	var mu sync.Mutex
	var firstErr error
	next := make(chan string)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for id := range next {
				err := c.st.PutInstance(context.Background(), store.Registration{ID: id, APIVersion: store.APIv3,
					ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-0"})
				if err != nil {
					mu.Lock()
					firstErr = cmpOr(firstErr, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, id := range ids {
		next <- id
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	return ids
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// snapshot returns every key of the database with its serialized value.
func (c *cli) snapshot(t *testing.T) map[string]string {
	t.Helper()
	ctx := context.Background()
	keys, err := c.r.Client.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	pipe := c.r.Client.Pipeline()
	dumps := make([]interface{ Val() string }, len(keys))
	for i, k := range keys {
		dumps[i] = pipe.Dump(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string, len(keys))
	for i, k := range keys {
		out[k] = dumps[i].Val()
	}
	return out
}

// pending counts the rotations of a queue waiting to run: its pending
// tasks, and on the bulk queue the rotations held for the pacing feeder
// (internal/pacing).
func (c *cli) pending(t *testing.T, queue string) int {
	t.Helper()
	ctx := context.Background()
	n, err := c.r.Client.LLen(ctx, "asynq:{"+queue+"}:pending").Result()
	if err != nil {
		t.Fatal(err)
	}
	var held int64
	if queue == pacing.Queue {
		// Bulk rotations wait for the pacing feeder, without a task.
		if held, err = pacing.Held(ctx, c.r.Client); err != nil {
			t.Fatal(err)
		}
	}
	return int(n + held)
}

// batchKeys lists the batches in the database.
func (c *cli) batchKeys(t *testing.T) []string {
	t.Helper()
	keys, err := c.r.Client.Keys(context.Background(), "rekey:batch:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// batchID reads the batch id from `rekey rotate`'s output.
func batchID(t *testing.T, out string) string {
	t.Helper()
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "bat_") {
			return strings.TrimSuffix(f, ":")
		}
	}
	t.Fatalf("no batch id in %q", out)
	return ""
}

// complete finishes the rotation in flight of each instance as a worker
// would: mint (SavePending), push, then Promote. Instances in fail fail
// with code "push:not_found" instead.
func (c *cli) complete(t *testing.T, ids []string, fail map[string]bool) {
	t.Helper()
	ctx := context.Background()
	for _, id := range ids {
		in, err := c.st.Instance(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if in.InFlight == "" {
			t.Fatalf("%s has no rotation in flight", id)
		}
		cred := "cred-" + in.InFlight
		if err := c.st.SavePending(ctx, id, in.InFlight, cred, map[string]secret.String{"MYADDON_URL": secret.New("postgres://new-" + cred)}); err != nil {
			t.Fatal(err)
		}
		if fail[id] {
			if _, err := c.st.Fail(ctx, id, in.InFlight, "push:not_found", "push: add-on not found"); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := c.st.Promote(ctx, id, in.InFlight, cred, time.Hour, "test"); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor polls cond until it holds, failing the test after ten seconds.
func (c *cli) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitEnded waits for a `rotate --wait` run in the background (done gets
// its error) to end with its batch, and fails the test if it failed.
func (c *cli) waitEnded(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("rotate --wait: %v\n%s", err, c.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("rotate --wait did not end with its batch")
	}
}

// syncBuffer is a bytes.Buffer a command may write while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Bytes() []byte { return []byte(b.String()) }

func (b *syncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}
