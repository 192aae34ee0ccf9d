package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/testbuf"
)

func newStore(t *testing.T) (*redistest.Redis, *store.Store) {
	t.Helper()
	r := redistest.New(t)
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return r, store.New(r.Client, sealer)
}

func register(t *testing.T, st *store.Store, id string) {
	t.Helper()
	if err := st.PutInstance(context.Background(), store.Registration{ID: id, APIVersion: store.APIv3,
		ConfigVars: []string{"MYADDON_URL"}}); err != nil {
		t.Fatal(err)
	}
}

func TestClaimRedis(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// setup fills the database before dev looks at it.
		setup func(t *testing.T, r *redistest.Redis, st *store.Store)
		// found is what the refusal must name; empty means dev may run.
		found   []string
		cleared bool
	}{
		{name: "empty", setup: func(*testing.T, *redistest.Redis, *store.Store) {}},
		{name: "a registered instance", setup: func(t *testing.T, _ *redistest.Redis, st *store.Store) {
			register(t, st, "inst-1")
		}, found: []string{"1 instance registered by something else, such as inst-1"}},
		{name: "asynq queues of real workers", setup: func(t *testing.T, r *redistest.Redis, _ *store.Store) {
			r.Client.SAdd(ctx, "asynq:queues", "default", "bulk")
		}, found: []string{"asynq queues bulk, default"}},
		{name: "another application's key", setup: func(t *testing.T, r *redistest.Redis, _ *store.Store) {
			r.Client.Set(ctx, "session:42", "x", 0)
		}, found: []string{`1 key that is neither rekey's nor asynq's, such as "session:42"`}},
		{name: "an earlier dev run", setup: func(t *testing.T, r *redistest.Redis, st *store.Store) {
			if err := st.MarkDev(ctx, "dev-1"); err != nil {
				t.Fatal(err)
			}
			register(t, st, "dev-1")
			r.Client.SAdd(ctx, "asynq:queues", "default")
		}, cleared: true},
		{name: "an earlier dev run cut short while its Heroku budget's key lives", setup: func(t *testing.T, r *redistest.Redis, st *store.Store) {
			if err := st.MarkDev(ctx, "dev-1"); err != nil {
				t.Fatal(err)
			}
			register(t, st, "dev-1")
			lim, err := ratelimit.New(r.Client, ratelimit.Params{PerHour: 4000, Burst: 11, Reserve: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer lim.Close()
			if err := lim.Wait(ctx, "dev-1"); err != nil {
				t.Fatal(err)
			}
		}, cleared: true},
		{name: "an earlier dev run, then a stranger", setup: func(t *testing.T, r *redistest.Redis, st *store.Store) {
			if err := st.MarkDev(ctx, "dev-1"); err != nil {
				t.Fatal(err)
			}
			register(t, st, "dev-1")
			register(t, st, "real-1")
		}, found: []string{"1 instance registered by something else, such as real-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, st := newStore(t)
			tt.setup(t, r, st)
			before := redistest.Dump(t, r)
			var log bytes.Buffer
			release, err := claimRedis(ctx, st, Options{Stderr: &log})
			if len(tt.found) > 0 {
				var f *ForeignRedisError
				if !errors.As(err, &f) {
					t.Fatalf("err = %v, want a refusal", err)
				}
				for _, want := range append(tt.found, "rekey dev changed nothing", AllowForeignRedisFlag) {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("refusal lacks %q: %s", want, err)
					}
				}
				if after := redistest.Dump(t, r); after != before {
					t.Errorf("the refused database changed:\nbefore %s\nafter  %s", before, after)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			mark, err := st.DevMark(ctx)
			if err != nil || !mark.Claimed {
				t.Fatalf("not claimed: %+v, %v", mark, err)
			}
			if n, _ := st.CountInstances(ctx); tt.cleared != strings.Contains(log.String(), "clearing") || n != 0 {
				t.Errorf("cleared=%v, log %q, %d instances left", tt.cleared, log.String(), n)
			}
		})
	}
}

func TestClaimRedisAllowForeignLeavesTheDataAlone(t *testing.T) {
	ctx := context.Background()
	_, st := newStore(t)
	register(t, st, "real-1")
	var log bytes.Buffer
	release, err := claimRedis(ctx, st, Options{AllowForeignRedis: true, Stderr: &log})
	if err != nil {
		t.Fatal(err)
	}
	release()
	if ids, _ := st.CountInstances(ctx); ids != 1 {
		t.Fatalf("%d instances, want the foreign one kept", ids)
	}
	if !strings.Contains(log.String(), "running there anyway") {
		t.Errorf("log: %q", log.String())
	}
	// The mark names no foreign instance, so a later run without the flag still refuses.
	if _, err := claimRedis(ctx, st, Options{Stderr: &log}); !errors.As(err, new(*ForeignRedisError)) {
		t.Fatalf("a later run without the flag: %v, want a refusal of the foreign data", err)
	}
}

// TestClaimRedisRefusesAnotherDevRunStarting: two rekey dev started at once
// on one REDIS_URL. The second looks at the database once the first has
// claimed it and registered its instances, before the first's workers
// announce themselves to asynq: it must neither clear the first run's data
// nor run beside it, but say another rekey dev runs there. Once the first
// has ended, the next run clears its data and claims the database.
func TestClaimRedisRefusesAnotherDevRunStarting(t *testing.T) {
	ctx := context.Background()
	r, st := newStore(t)
	release, err := claimRedis(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.MarkDev(ctx, "dev-1"); err != nil {
		t.Fatal(err)
	}
	register(t, st, "dev-1")
	before := redistest.Dump(t, r)
	var log bytes.Buffer
	_, err = claimRedis(ctx, st, Options{Stderr: &log})
	var live *LiveWorkersError
	host, _ := os.Hostname()
	if !errors.As(err, &live) || !strings.Contains(err.Error(), fmt.Sprintf("another rekey dev running on it, in %s pid %d (run ", host, os.Getpid())) {
		t.Fatalf("err = %v, want a refusal naming the other run; log %q", err, log.String())
	}
	if after := redistest.Dump(t, r); after != before {
		t.Errorf("the refused run changed the database:\nbefore %s\nafter  %s", before, after)
	}
	if _, err := claimRedis(ctx, st, Options{AllowLiveWorkers: true, Stderr: &log}); err != nil {
		t.Fatalf("with %s: %v", AllowLiveWorkersFlag, err)
	}
	if n, _ := st.CountInstances(ctx); n != 1 {
		t.Errorf("%d instances beside the first run, want its 1 kept", n)
	}

	release()
	log.Reset()
	release, err = claimRedis(ctx, st, Options{Stderr: &log})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if n, _ := st.CountInstances(ctx); n != 0 || !strings.Contains(log.String(), "clearing") {
		t.Errorf("%d instances once the first run ended, want its data cleared; log %q", n, log.String())
	}
	if _, err := claimRedis(ctx, st, Options{}); !errors.As(err, &live) {
		t.Errorf("a run beside the one that cleared: %v, want a refusal", err)
	}
}

// afterCommand is a go-redis hook that calls do once, after the first
// command named name has been answered.
type afterCommand struct {
	name string
	do   func()
	once *sync.Once
}

func (h afterCommand) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h afterCommand) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if strings.EqualFold(cmd.Name(), h.name) {
			h.once.Do(h.do)
		}
		return err
	}
}

func (h afterCommand) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A run that clears an earlier run's data clears its own lease with it
// (FLUSHDB): a second run starting in that moment takes the lease and
// finds an empty database, and the first must then be refused, not run on
// beside it, each taking the other's instances for its own.
func TestClaimRedisThatClearsIsNotJoinedByARunStartingMeanwhile(t *testing.T) {
	ctx := context.Background()
	r, st := newStore(t)
	if err := st.MarkDev(ctx, "dev-1"); err != nil {
		t.Fatal(err)
	}
	register(t, st, "dev-1") // an earlier run's data, which the first run clears
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	first := redis.NewClient(opt)
	t.Cleanup(func() { _ = first.Close() })
	var second error
	var releaseSecond func()
	first.AddHook(afterCommand{name: "flushdb", once: &sync.Once{}, do: func() {
		releaseSecond, second = claimRedis(ctx, st, Options{Stderr: io.Discard})
	}})
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	releaseFirst, err := claimRedis(ctx, store.New(first, sealer), Options{Stderr: io.Discard})
	if second != nil {
		t.Fatalf("the run started while the first cleared: %v, want it to run", second)
	}
	defer releaseSecond()
	if err == nil {
		releaseFirst()
		t.Fatal("the run whose lease a second run took while it cleared runs on beside it")
	}
	var live *LiveWorkersError
	if !errors.As(err, &live) {
		t.Fatalf("err = %v, want a refusal naming the other run", err)
	}
}

// failWhile is a go-redis hook that fails every command while down is set,
// as a Redis gone away does.
type failWhile struct{ down *atomic.Bool }

func (h failWhile) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h failWhile) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.down.Load() {
			err := errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

func (h failWhile) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A run whose lease cannot be renewed, or that another run took once it
// lapsed, says so once, and says when it holds it again: it went on
// without a word, two runs then clearing and taking each other's data.
func TestKeepLeaseSaysWhenTheClaimLapsesOrIsTaken(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r, _ := newStore(t)
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opt)
	t.Cleanup(func() { _ = client.Close() })
	var down atomic.Bool
	client.AddHook(failWhile{down: &down})
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(client, sealer)
	if other, err := st.ClaimDevRun(ctx, "run-1", devRunLease); err != nil || other != "" {
		t.Fatalf("claim: %q, %v", other, err)
	}
	var log testbuf.Buffer
	done := make(chan struct{})
	go func() { defer close(done); keepLease(ctx, st, "run-1", 20*time.Millisecond, &log) }()
	waitFor := func(what string, n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for strings.Count(log.String(), what) < n {
			if time.Now().After(deadline) {
				t.Fatalf("no %q (%d) in %q", what, n, log.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	down.Store(true)
	waitFor("could not renew this run's claim on REDIS_URL", 1)
	time.Sleep(100 * time.Millisecond) // several more failed renewals
	down.Store(false)
	waitFor("renewed again", 1)

	// The lease lapsed meanwhile and another run took it.
	r.Client.Set(ctx, store.DevRunKey(), "laptop pid 7 (run b)", devRunLease)
	waitFor("another rekey dev (laptop pid 7 (run b)) took REDIS_URL", 1)
	time.Sleep(100 * time.Millisecond)
	r.Client.Del(ctx, store.DevRunKey())
	waitFor("renewed again", 2)
	if held := r.Client.Get(ctx, store.DevRunKey()).Val(); held != "run-1" {
		t.Errorf("lease held by %q once the other run ended, want run-1's taken again", held)
	}
	cancel()
	<-done
	for _, line := range []string{"could not renew", "took REDIS_URL"} {
		if n := strings.Count(log.String(), line); n != 1 {
			t.Errorf("%q said %d times, want once each time it happens:\n%s", line, n, log.String())
		}
	}
}

// The lease's release at the end of a run does not wait out go-redis's
// retries (a renewal under way, then four reads of 3 s each) when Redis
// stopped answering.
func TestReleaseWithRedisNotAnsweringIsBounded(t *testing.T) {
	ctx := context.Background()
	r, _ := newStore(t)
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	relay := redistest.NewRelay(t, opt.Addr)
	opt.Addr = relay.Addr()
	client := redis.NewClient(opt)
	t.Cleanup(func() { _ = client.Close() })
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	release, err := claimRedis(ctx, store.New(client, sealer), Options{Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	relay.Stall(true)
	start := time.Now()
	release()
	if took, bound := time.Since(start), releaseTimeout+client.Options().ReadTimeout+time.Second; took > bound {
		t.Errorf("release took %s with Redis not answering, want at most %s", took, bound)
	}
}
