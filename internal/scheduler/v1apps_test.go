package scheduler_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/scheduler"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/store"
)

// newStore is a store on a Redis database of its own, and that database.
func newStore(t *testing.T) (*redistest.Redis, *store.Store) {
	t.Helper()
	r := redistest.New(t)
	sealer, err := seal.New(bytes.Repeat([]byte{5}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return r, store.New(r.Client, sealer)
}

// startLogged starts a clock on st and returns what it logged.
func startLogged(t *testing.T, st *store.Store) string {
	t.Helper()
	var logs bytes.Buffer
	s, err := scheduler.New(scheduler.Params{Store: st, Enqueuer: &queue{seen: map[string]bool{}}, Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return logs.String()
}

// A clock started with scheduled rotation off still fills the index of V1
// apps, and logs v1_app_shared at error level for two live V1 instances
// registered before it that set a var of one app, naming both.
func TestStartIndexesV1AppsWithSchedulingOff(t *testing.T) {
	ctx := context.Background()
	r, st := newStore(t)
	for _, id := range []string{"inst-1", "inst-2"} {
		if err := r.Client.Del(ctx, "rekey:v1_apps").Err(); err != nil { // as before the index existed
			t.Fatal(err)
		}
		if err := st.PutInstance(ctx, store.Registration{ID: id, APIVersion: store.APIv1, HerokuID: "app1@heroku.com",
			ConfigVars: []string{"MYADDON_URL"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Client.Del(ctx, "rekey:v1_apps").Err(); err != nil {
		t.Fatal(err)
	}
	out := startLogged(t, st)
	for _, want := range []string{`"level":"error"`, `"message":"v1_app_shared"`, `"instances":["inst-1","inst-2"]`,
		`"heroku_id":"app1@heroku.com"`, `"config_var":"MYADDON_URL"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if owner, err := r.Client.HGet(ctx, "rekey:v1_apps", "app1@heroku.com/MYADDON_URL").Result(); err != nil || owner != "inst-1" {
		t.Errorf("index holds app1's MYADDON_URL for %q (%v), want inst-1", owner, err)
	}
}

// A clock whose fill of the index of V1 apps fails (here the key holds a
// string) still starts, after indexing the schedule, and logs
// v1_apps_index_failed: a failure there must not leave a period change
// published but its due times not recomputed.
func TestStartSurvivesAFailedV1AppsIndex(t *testing.T) {
	ctx := context.Background()
	r, st := newStore(t)
	if err := st.PutInstance(ctx, store.Registration{ID: "inst-1", APIVersion: store.APIv1, HerokuID: "app1@heroku.com",
		ConfigVars: []string{"MYADDON_URL"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Client.Set(ctx, "rekey:v1_apps", "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s, err := scheduler.New(scheduler.Params{Store: st, Enqueuer: &queue{seen: map[string]bool{}}, Logger: zerolog.New(&logs),
		Period: 24 * time.Hour, PerHour: 4000})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatalf("Start with the V1 index unwritable: %v, want it started", err)
	}
	out := logs.String()
	indexed, failed := strings.Index(out, "schedule_indexed"), strings.Index(out, "v1_apps_index_failed")
	if indexed < 0 || failed < indexed {
		t.Errorf("want schedule_indexed, then v1_apps_index_failed:\n%s", out)
	}
}

// A clock fills the index of live database locations at start too, and
// logs database_shared at error level for two live instances registered
// before it with one owner role on a server, naming both.
func TestStartIndexesDatabases(t *testing.T) {
	ctx := context.Background()
	r, st := newStore(t)
	for _, id := range []string{"inst-1", "inst-2"} {
		if err := st.PutInstance(ctx, store.Registration{ID: id, APIVersion: store.APIv3, ConfigVars: []string{"MYADDON_URL"},
			Database: &store.Database{Server: "main", Name: "db-" + id, Owner: "shared_owner"}}); err != nil {
			t.Fatal(err)
		}
		if err := r.Client.Del(ctx, "rekey:databases").Err(); err != nil { // as before the index existed
			t.Fatal(err)
		}
	}
	out := startLogged(t, st)
	for _, want := range []string{`"level":"error"`, `"message":"database_shared"`, `"instances":["inst-1","inst-2"]`,
		`"shared":"owner role"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if holder, err := r.Client.HGet(ctx, "rekey:databases", "owner:main/shared_owner").Result(); err != nil || holder != "inst-1" {
		t.Errorf("index holds the owner role for %q (%v), want inst-1", holder, err)
	}
}
