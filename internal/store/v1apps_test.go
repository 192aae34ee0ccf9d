package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/store"
)

// Instances registered before the index of V1 apps existed join it when
// the clock reindexes the schedule: a registration under one's heroku_id
// is refused from then on, naming it, and changes nothing in Redis.
func TestReindexFillsTheIndexOfV1Apps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	reg := func(id, app string) store.Registration {
		return store.Registration{ID: id, APIVersion: store.APIv1, HerokuID: app, ConfigVars: []string{"MYADDON_URL"}}
	}
	for _, r := range []store.Registration{reg("inst-1", "app1@heroku.com"), reg("inst-2", "app2@heroku.com")} {
		if err := f.st.PutInstance(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.r.Client.Del(ctx, "rekey:v1_apps").Err(); err != nil { // as before the index existed
		t.Fatal(err)
	}
	if err := f.st.PutInstance(ctx, reg("inst-3", "app9@heroku.com")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Reindex(ctx, false); err != nil {
		t.Fatal(err)
	}
	before := redistest.Dump(t, f.r)
	err := f.st.PutInstance(ctx, reg("inst-3", "app2@heroku.com"))
	var taken *store.HerokuIDTakenError
	if !errors.Is(err, store.ErrHerokuIDTaken) || !errors.As(err, &taken) || taken.Holder != "inst-2" {
		t.Fatalf("inst-3 registered again under inst-2's heroku_id after the reindex: %v, want ErrHerokuIDTaken naming inst-2", err)
	}
	if after := redistest.Dump(t, f.r); after != before {
		t.Errorf("a refused registration changed Redis:\n%s", after)
	}
	apps, err := f.r.Client.HGetAll(ctx, "rekey:v1_apps").Result()
	if err != nil || len(apps) != 3 || apps["app1@heroku.com"] != "inst-1" || apps["app9@heroku.com"] != "inst-3" {
		t.Errorf("index of V1 apps %v (%v), want app1, app2 and app9", apps, err)
	}
}
