package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// keptText is every text a run of the rotation keeps where people read it:
// the task's error (asynqmon, the worker's log), the instance's last error
// and its events.
func (g *rig) keptText(t *testing.T, id string, runErr error) map[string]string {
	t.Helper()
	ctx := context.Background()
	kept := map[string]string{}
	if runErr != nil {
		kept["task error"] = runErr.Error()
	}
	in, err := g.st.Instance(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	kept["last error"] = in.LastError
	evs, err := g.st.Events(ctx, id, 50)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		kept["event "+ev.Type] += ev.Detail + "\n"
	}
	return kept
}

// refuseWith answers every PATCH of the config with status and an error
// whose message is message(sent value), and passes the rest to the fake.
func (g *rig) refuseWith(status int, id string, message func(sent string) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPatch {
			g.fake.ServeHTTP(w, r)
			return
		}
		var body struct {
			Config []map[string]string `json:"config"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		sent := ""
		if len(body.Config) > 0 {
			sent = body.Config[0]["value"]
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"id": id, "message": message(sent)})
	})
}

// A 409 to the push whose message quotes the config var's live value,
// which rekey never knew and so cannot scrub: the message is not kept, so
// the live credential reaches neither the "retrying" event, nor the
// instance, nor the task's error; the status and Heroku's id are.
func TestPushConflictQuotingTheLiveValueKeepsNoneOfIt(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	live := g.fake.Config("inst-1")[issuer.DefaultConfigVar]
	g.useHeroku(t, g.refuseWith(http.StatusConflict, "conflict", func(string) string {
		return issuer.DefaultConfigVar + " was changed meanwhile; it is now " + live
	}), 5*time.Second)
	runErr := g.run(rotateTask(t, "inst-1", "rot-1"))
	if runErr == nil || !strings.Contains(runErr.Error(), "status 409 conflict") {
		t.Errorf("run: %v; want the push's 409 conflict named", runErr)
	}
	for where, text := range g.keptText(t, "inst-1", runErr) {
		if strings.Contains(text, live) {
			t.Errorf("the live credential Heroku's 409 quoted is kept in the %s: %s", where, text)
		}
	}
}

// The same quote in a 422, which ends the rotation, whose read-back Heroku
// refuses (403): the failure's cause, kept as the instance's last error
// and in its history, holds no part of it.
func TestPushRefusalQuotingTheLiveValueKeepsNoneOfItWhenTheReadBackIsRefused(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	live := g.fake.Config("inst-1")[issuer.DefaultConfigVar]
	refuse := g.refuseWith(http.StatusUnprocessableEntity, "invalid_params", func(string) string {
		return issuer.DefaultConfigVar + " cannot be changed from " + live
	})
	g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/config") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"id":"forbidden","message":"You do not have access to the add-on."}`))
			return
		}
		refuse.ServeHTTP(w, r)
	}), 5*time.Second)
	runErr := g.run(rotateTask(t, "inst-1", "rot-1"))
	kept := g.keptText(t, "inst-1", runErr)
	if !strings.Contains(kept["last error"], "invalid_params") {
		t.Errorf("last error %q; want the push's invalid_params named", kept["last error"])
	}
	for where, text := range kept {
		if strings.Contains(text, live) {
			t.Errorf("the live credential Heroku's 422 quoted is kept in the %s: %s", where, text)
		}
	}
}

// A 409 whose message quotes the value sent cut short ("…"), as error
// messages often are: neither the whole value nor the whole password is
// in it, so no scrubber of whole values finds it. None of it is kept.
func TestPushConflictQuotingTheNewValueCutShortKeepsNoneOfIt(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	var quoted atomic.Value
	g.useHeroku(t, g.refuseWith(http.StatusConflict, "conflict", func(sent string) string {
		cut := sent[:strings.LastIndex(sent, "@")-4] // all but the password's last 4 characters
		quoted.Store(cut[strings.LastIndex(cut, ":")+1:])
		return "conflicting value " + cut + "…"
	}), 5*time.Second)
	runErr := g.run(rotateTask(t, "inst-1", "rot-1"))
	part, _ := quoted.Load().(string)
	if len(part) < 16 {
		t.Fatalf("quoted %q of the password; want most of it", part)
	}
	for where, text := range g.keptText(t, "inst-1", runErr) {
		if strings.Contains(text, part) {
			t.Errorf("%d characters of the new credential's password are kept in the %s: %s", len(part), where, text)
		}
	}
}
