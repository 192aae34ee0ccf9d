package handlers_test

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// Heroku answers a config read with the add-on's config: a V3 array, `[]`
// when it holds none, and a V1 app's info whose "config" is an object. A
// V3 `null`, or a V1 info without its config or with a null one, is not
// Heroku's answer (a front answering for it). Read as "Heroku holds
// nothing", it ended a first rotation as config_vars_not_held, which sends
// the partner to check config_vars that are right.
func TestANullConfigBeforeTheFirstMintIsNoAnswer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	provisionWithoutConfig(t, g, "inst-2")
	g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/addons/inst-2/config" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte("null"))
			return
		}
		g.fake.ServeHTTP(w, r)
	}), 5*time.Second)
	minted := g.demo.Stats().MintCalls
	_ = g.run(rotateTask(t, "inst-2", "rot-2"))
	if n := g.demo.Stats().MintCalls - minted; n != 0 {
		t.Errorf("%d mint calls, want none", n)
	}
	if in, _ := g.st.Instance(ctx, "inst-2"); in.LastErrorCode != "readback:unexpected_answer" {
		t.Errorf("last error code %q, want readback:unexpected_answer", in.LastErrorCode)
	}
}
