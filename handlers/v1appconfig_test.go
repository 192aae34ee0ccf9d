package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/store"
)

// A V1 read-back answers the app's whole config, the vars of its other
// add-ons and its own settings included (WEB_CONCURRENCY=2, a flag "on").
// Those short values are no secret of the instance's: a failure's text,
// which the customer and the operator read, keeps its words, where every
// "on" and "2" in it became [redacted] ("c[redacted]fig"). The instance's
// own values stay scrubbed, and so does another add-on's secret.
func TestAV1ReadBackOfTheAppsWholeConfigKeepsTheFailureReadable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	var before map[string]string
	g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/vendor/apps/") {
			g.fake.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		g.fake.ServeHTTP(rec, r)
		var app map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &app); err != nil {
			t.Errorf("fake's V1 answer: %v", err)
		}
		// The read lags behind the write: it answers the config from before
		// the push, with the app's other vars.
		config := map[string]string{"WEB_CONCURRENCY": "2", "FEATURE_X": "on",
			"OTHERADDON_URL": "redis://h:0f1e2d3c4b5a69788796a5b4@other.example:6379"}
		for k, v := range before {
			config[k] = v
		}
		app["config"] = config
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(app)
	}), 5*time.Second)
	old := g.provisionV1(t, "inst-v1", "app9@heroku.com")
	before = map[string]string{issuer.DefaultConfigVar: g.fake.Config("inst-v1")[issuer.DefaultConfigVar]}
	if err := g.run(rotateTask(t, "inst-v1", "rot-v1")); !isPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	rot, err := g.st.Rotation(ctx, "rot-v1")
	if err != nil {
		t.Fatal(err)
	}
	if rot.State == store.RotationPromoted || !g.demo.Valid(old) {
		t.Fatalf("rotation %s, old credential valid %v; want it not promoted, the old one valid", rot.State, g.demo.Valid(old))
	}
	want := "a 2xx whose config, read back, does not hold the vars sent"
	if !strings.Contains(rot.Error, want) {
		t.Errorf("the failure reads %q; want it to say %q", rot.Error, want)
	}
	for _, v := range []string{before[issuer.DefaultConfigVar], "0f1e2d3c4b5a69788796a5b4"} {
		if strings.Contains(rot.Error, v) {
			t.Errorf("the failure %q quotes a secret", rot.Error)
		}
	}
}
