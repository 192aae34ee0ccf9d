package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/secret"
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
// beside production's, or one on the PostgreSQL issuer beside webhook
// ones) revokes the others' credentials at an issuer that does not know
// them, whose 404 counts as revoked, and pushes its own: it makes every
// process log settings_mismatch naming the issuer by kind and host, never
// its URL, which may carry a token, nor a plain hash of it, which could be
// reversed by guessing. A clock process configured without an issuer is no
// disagreement.
func TestAWorkerWithAnotherIssuerSaysSo(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	process := func(issuerURL string) *app {
		return &app{cfg: &config.Config{HerokuRate: 4000, RateScope: "account", Grace: 2 * time.Hour,
			PrivateSpaceGrace: 4 * time.Hour, Issuer: config.IssuerHTTP, IssuerURL: issuerURL,
			IssuerSecret: secret.New("issuer-secret-of-production"), HerokuAPIURL: "https://api.heroku.com"}, store: c.st,
			log: zerolog.New(io.Discard), redact: func(s string) string { return s }}
	}
	announce := func(a *app, name string) string {
		t.Helper()
		return a.announceSettings(ctx, name, sharedSettings(a.cfg), "")
	}
	const prod = "https://issuer.example.com/rekey/tok-3f9a"
	for _, name := range []string{"worker.1", "web.1"} {
		if d := announce(process(prod), name); d != "" {
			t.Fatalf("%s with the production issuer: disagreement %q", name, d)
		}
	}
	if d := announce(process(""), "clock.1"); d != "" {
		t.Errorf("a clock process without an issuer: disagreement %q", d)
	}
	// A process with the URL but not the secret (a web process on a VM)
	// announces no issuer: its fingerprint would be a plain hash.
	unsigned := process(prod)
	unsigned.cfg.IssuerSecret = secret.String{}
	if d := announce(unsigned, "web.2"); d != "" {
		t.Errorf("a process without REKEY_ISSUER_SECRET: disagreement %q", d)
	}
	if strings.Contains(sharedSettings(unsigned.cfg), "REKEY_ISSUER") {
		t.Errorf("a process without REKEY_ISSUER_SECRET announces an issuer: %q", sharedSettings(unsigned.cfg))
	}
	d := announce(process("http://127.0.0.1:5613/rekey/tok-3f9a"), "worker.laptop")
	for _, want := range []string{"REKEY_ISSUER=http:issuer.example.com@", ": web.1, worker.1", "REKEY_ISSUER=http:127.0.0.1:5613@", ": worker.laptop"} {
		if !strings.Contains(d, want) {
			t.Errorf("disagreement %q lacks %q", d, want)
		}
	}
	sum := sha256.Sum256([]byte(prod))
	if strings.Contains(d, "tok-3f9a") || strings.Contains(d, "/rekey") || strings.Contains(d, hex.EncodeToString(sum[:4])) {
		t.Errorf("disagreement %q shows the issuer URL's path, or its plain hash", d)
	}
	if err := c.st.WithdrawSharedSettings(ctx, "worker.laptop"); err != nil {
		t.Fatal(err)
	}
	// The same URL signed with another secret is another issuer setting too.
	other := process(prod)
	other.cfg.IssuerSecret = secret.New("issuer-secret-of-staging")
	if d := announce(other, "worker.3"); !strings.Contains(d, ": worker.3") {
		t.Errorf("a worker with another REKEY_ISSUER_SECRET: disagreement %q", d)
	}
	if err := c.st.WithdrawSharedSettings(ctx, "worker.3"); err != nil {
		t.Fatal(err)
	}
	pg := process("")
	pg.cfg.Issuer = config.IssuerPostgres
	if d := announce(pg, "worker.pg"); !strings.Contains(d, "REKEY_ISSUER=postgres@") || !strings.Contains(d, "REKEY_ISSUER=http:") {
		t.Errorf("a worker on the PostgreSQL issuer beside webhook ones: disagreement %q", d)
	}
	if err := c.st.WithdrawSharedSettings(ctx, "worker.pg"); err != nil {
		t.Fatal(err)
	}
	staging := process(prod)
	staging.cfg.HerokuAPIURL = "https://heroku-fake.staging.example"
	if d := announce(staging, "worker.2"); !strings.Contains(d, "HEROKU_API_URL=heroku-fake.staging.example: worker.2") {
		t.Errorf("a worker pushing to another Heroku API: disagreement %q", d)
	}
}
