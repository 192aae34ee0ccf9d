package logplex_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/logplex"
	"github.com/rekeyhq/rekey/internal/secret"
)

type inputs map[string]secret.String

func (in inputs) LogInput(_ context.Context, id string) (secret.String, error) { return in[id], nil }

type counts map[string]int

func (c counts) LogLine(outcome string) { c[outcome]++ }

// TestNotifierWritesToTheFakeLogplex writes over real HTTP to the fake
// Heroku's Logplex input, which records the line for the app; a log
// endpoint that hangs costs one short timeout and a counted failure.
func TestNotifierWritesToTheFakeLogplex(t *testing.T) {
	fake := herokufake.New()
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	if err := fake.AddAddon(herokufake.AddonSpec{ID: "a-1", App: "app-1", ConfigVars: []string{"MYADDON_URL"}}); err != nil {
		t.Fatal(err)
	}
	hang := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { time.Sleep(2 * time.Second) }))
	t.Cleanup(hang.Close)
	in := inputs{"a-1": secret.New(fake.LogInputURL(srv.URL, "a-1")), "a-2": secret.New(hang.URL + "/logs"),
		"a-3": secret.New(strings.Replace(fake.LogInputURL(srv.URL, "a-1"), "token:t.", "token:x.", 1))}
	c := counts{}
	n := logplex.NewNotifier(in, logplex.NewClient(200*time.Millisecond,
		logplex.WithLocalStandIn(logplex.LocalStandIn(srv.URL), logplex.LocalStandIn(hang.URL))), c, zerolog.Nop())
	ctx := context.Background()
	n.Notify(ctx, "a-1", "MYADDON_URL rotated;\nthe old credential stays valid")
	start := time.Now()
	n.Notify(ctx, "a-2", "never arrives")
	if d := time.Since(start); d > time.Second {
		t.Errorf("a hanging endpoint held the notice for %s", d)
	}
	n.Notify(ctx, "a-3", "wrong token")
	n.Notify(ctx, "none", "no log_input_url: nothing sent")
	lines := fake.LogLines("app-1")
	if len(lines) != 1 || lines[0] != "MYADDON_URL rotated; the old credential stays valid" {
		t.Errorf("recorded %q", lines)
	}
	if c["sent"] != 1 || c["failed"] != 2 || n.Failed() != 2 || fake.LogRefused() != 1 {
		t.Errorf("counts %v, failed %d, refused %d", c, n.Failed(), fake.LogRefused())
	}
}

func TestFrameRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 30, 14, 0, 0, 0, time.UTC)
	body := append(logplex.Frame(at, "one"), logplex.Frame(at, "two words")...)
	if !strings.HasPrefix(string(body), "50 <190>1 2026-11-30T14:00:00Z host app rekey - - one") {
		t.Errorf("frame %q", body)
	}
	got, err := logplex.Parse(body)
	if err != nil || len(got) != 2 || got[0] != "one" || got[1] != "two words" {
		t.Fatalf("Parse = %q, %v", got, err)
	}
}
