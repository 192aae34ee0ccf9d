package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/config"
)

// Every process says what it runs with of the settings all must share; one
// started with another REKEY_HEROKU_RATE (a typo on a VM: 36000 for 3600)
// or another REKEY_GRACE makes every process log settings_mismatch, once
// while it lasts, naming each setting and the processes under it. A
// withdrawn or lapsed process stops counting.
func TestProcessesThatRunWithDifferentSettingsSaySo(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	process := func(rate int) (*app, *syncBuffer) {
		var logs syncBuffer
		return &app{cfg: &config.Config{HerokuRate: rate, RateScope: "account", Grace: 2 * time.Hour,
			PrivateSpaceGrace: 4 * time.Hour}, store: c.st,
			log: zerolog.New(&logs), redact: func(s string) string { return s }}, &logs
	}
	w1, logs1 := process(3600)
	w2, _ := process(3600)
	if d := w1.announceSettings(ctx, "worker.1", sharedSettings(w1.cfg), ""); d != "" {
		t.Fatalf("one process: disagreement %q", d)
	}
	if d := w2.announceSettings(ctx, "worker.2", sharedSettings(w2.cfg), ""); d != "" {
		t.Fatalf("two processes alike: disagreement %q", d)
	}
	typo, _ := process(36000)
	if d := typo.announceSettings(ctx, "worker.3", sharedSettings(typo.cfg), ""); d == "" {
		t.Fatal("a process with REKEY_HEROKU_RATE=36000 beside two with 3600: no disagreement")
	}
	d := w1.announceSettings(ctx, "worker.1", sharedSettings(w1.cfg), "")
	for _, want := range []string{"REKEY_HEROKU_RATE=3600: worker.1, worker.2; REKEY_HEROKU_RATE=36000: worker.3)"} {
		if !strings.Contains(d, want) {
			t.Errorf("disagreement %q lacks %q", d, want)
		}
	}
	if strings.Contains(d, "REKEY_GRACE") {
		t.Errorf("disagreement %q names a setting every process shares", d)
	}
	if n := strings.Count(logs1.String(), "settings_mismatch"); n != 1 {
		t.Errorf("worker.1 logged settings_mismatch %d times, want once:\n%s", n, logs1.String())
	}
	if again := w1.announceSettings(ctx, "worker.1", sharedSettings(w1.cfg), d); again != d ||
		strings.Count(logs1.String(), "settings_mismatch") != 1 {
		t.Errorf("the same disagreement again was logged again, or changed: %q", again)
	}
	if err := c.st.WithdrawSharedSettings(ctx, "worker.3"); err != nil {
		t.Fatal(err)
	}
	if d := w1.announceSettings(ctx, "worker.1", sharedSettings(w1.cfg), d); d != "" {
		t.Errorf("after the odd process stopped: disagreement %q", d)
	}
	// A web process told customers another grace than the workers apply.
	web, _ := process(3600)
	web.cfg.Grace = 15 * time.Minute
	if d := web.announceSettings(ctx, "web.1", sharedSettings(web.cfg), ""); !strings.Contains(d, "REKEY_GRACE=15m0s: web.1") {
		t.Errorf("a web process with REKEY_GRACE=15m beside workers with 2h: disagreement %q", d)
	}
}

// A worker started with another issuer (a laptop's or staging's worker
// beside production's) revokes the others' credentials at an issuer that
// does not know them, whose 404 counts as revoked, and pushes its own: it
// makes every process log settings_mismatch naming the issuer by host,
// never its URL, which may carry a token. A clock process configured
// without an issuer is no disagreement.
func TestAWorkerWithAnotherIssuerSaysSo(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	process := func(issuerURL string) *app {
		return &app{cfg: &config.Config{HerokuRate: 4000, RateScope: "account", Grace: 2 * time.Hour,
			PrivateSpaceGrace: 4 * time.Hour, Issuer: config.IssuerHTTP, IssuerURL: issuerURL,
			HerokuAPIURL: "https://api.heroku.com"}, store: c.st,
			log: zerolog.New(io.Discard), redact: func(s string) string { return s }}
	}
	const prod = "https://issuer.example.com/rekey/tok-3f9a"
	for _, name := range []string{"worker.1", "web.1"} {
		if d := process(prod).announceSettings(ctx, name, sharedSettings(process(prod).cfg), ""); d != "" {
			t.Fatalf("%s with the production issuer: disagreement %q", name, d)
		}
	}
	clock := process("")
	if d := clock.announceSettings(ctx, "clock.1", sharedSettings(clock.cfg), ""); d != "" {
		t.Errorf("a clock process without an issuer: disagreement %q", d)
	}
	laptop := process("http://127.0.0.1:5613/rekey/tok-3f9a")
	d := laptop.announceSettings(ctx, "worker.laptop", sharedSettings(laptop.cfg), "")
	for _, want := range []string{"REKEY_ISSUER_URL=issuer.example.com@", ": web.1, worker.1", "REKEY_ISSUER_URL=127.0.0.1:5613@", ": worker.laptop"} {
		if !strings.Contains(d, want) {
			t.Errorf("disagreement %q lacks %q", d, want)
		}
	}
	if strings.Contains(d, "tok-3f9a") || strings.Contains(d, "/rekey") {
		t.Errorf("disagreement %q shows the issuer URL's path", d)
	}
	staging := process(prod)
	staging.cfg.HerokuAPIURL = "https://heroku-fake.staging.example"
	if d := staging.announceSettings(ctx, "worker.2", sharedSettings(staging.cfg), ""); !strings.Contains(d, "HEROKU_API_URL=heroku-fake.staging.example@") {
		t.Errorf("a worker pushing to another Heroku API: disagreement %q", d)
	}
}
