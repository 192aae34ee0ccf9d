package devstack

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/store"
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
			err := claimRedis(ctx, st, Options{Stderr: &log})
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
	if err := claimRedis(ctx, st, Options{AllowForeignRedis: true, Stderr: &log}); err != nil {
		t.Fatal(err)
	}
	if ids, _ := st.CountInstances(ctx); ids != 1 {
		t.Fatalf("%d instances, want the foreign one kept", ids)
	}
	if !strings.Contains(log.String(), "running there anyway") {
		t.Errorf("log: %q", log.String())
	}
	// The mark names no foreign instance, so a later run without the flag still refuses.
	if err := claimRedis(ctx, st, Options{Stderr: &log}); err == nil {
		t.Fatal("a later run without the flag was let in")
	}
}
