package scheduler_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/scheduler"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/store"
)

// A clock started with scheduled rotation off still fills the index of V1
// apps, and logs v1_app_shared at error level for two live V1 instances
// registered before it that set a var of one app, naming both.
func TestStartIndexesV1AppsWithSchedulingOff(t *testing.T) {
	ctx := context.Background()
	r := redistest.New(t)
	sealer, err := seal.New(bytes.Repeat([]byte{5}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(r.Client, sealer)
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
	var logs bytes.Buffer
	s, err := scheduler.New(scheduler.Params{Store: st, Enqueuer: &queue{seen: map[string]bool{}}, Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
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
