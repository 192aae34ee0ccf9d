package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/store"
)

// Instances registered before the index of V1 apps existed join it when
// the clock starts (IndexV1Apps): a registration under one's heroku_id and
// var is refused from then on, naming it, and changes nothing in Redis. A
// field whose holder was deprovisioned by an earlier version is taken
// over, and two live instances that already share an app's var are
// reported, the index keeping the first.
func TestIndexV1AppsFillsTheIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	reg := func(id, app string) store.Registration {
		return store.Registration{ID: id, APIVersion: store.APIv1, HerokuID: app, ConfigVars: []string{"MYADDON_URL"}}
	}
	for _, r := range []store.Registration{reg("inst-1", "app1@heroku.com"), reg("inst-2", "app2@heroku.com"),
		reg("inst-4", "app4@heroku.com"), reg("inst-5", "App4@heroku.com")} {
		if err := f.r.Client.Del(ctx, "rekey:v1_apps").Err(); err != nil { // as before the index existed
			t.Fatal(err)
		}
		if err := f.st.PutInstance(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.r.Client.Del(ctx, "rekey:v1_apps").Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.st.PutInstance(ctx, reg("inst-3", "app9@heroku.com")); err != nil {
		t.Fatal(err)
	}
	// A field left to an instance deprovisioned since (by an earlier version).
	if err := f.r.Client.HSet(ctx, "rekey:v1_apps", "app1@heroku.com/MYADDON_URL", "ghost").Err(); err != nil {
		t.Fatal(err)
	}
	shared, err := f.st.IndexV1Apps(ctx)
	want := store.V1AppShared{HerokuID: "App4@heroku.com", ConfigVar: "MYADDON_URL", Instances: [2]string{"inst-4", "inst-5"}}
	if err != nil || len(shared) != 1 || shared[0] != want {
		t.Fatalf("IndexV1Apps = %+v, %v; want inst-4 and inst-5 reported sharing app4's MYADDON_URL", shared, err)
	}
	before := redistest.Dump(t, f.r)
	err = f.st.PutInstance(ctx, reg("inst-3", "app2@heroku.com"))
	var taken *store.HerokuIDTakenError
	if !errors.Is(err, store.ErrHerokuIDTaken) || !errors.As(err, &taken) || taken.Holder != "inst-2" {
		t.Fatalf("inst-3 registered again under inst-2's heroku_id after the reindex: %v, want ErrHerokuIDTaken naming inst-2", err)
	}
	if after := redistest.Dump(t, f.r); after != before {
		t.Errorf("a refused registration changed Redis:\n%s", after)
	}
	apps, err := f.r.Client.HGetAll(ctx, "rekey:v1_apps").Result()
	if err != nil || len(apps) != 4 || apps["app1@heroku.com/MYADDON_URL"] != "inst-1" ||
		apps["app9@heroku.com/MYADDON_URL"] != "inst-3" || apps["app4@heroku.com/MYADDON_URL"] != "inst-4" {
		t.Errorf("index of V1 apps %v (%v), want app1 (taken from the ghost), app2, app4 (inst-4) and app9", apps, err)
	}
}
