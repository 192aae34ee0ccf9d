package main

import (
	"context"
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
	for _, want := range []string{"REKEY_HEROKU_RATE=3600 REKEY_RATE_SCOPE=account REKEY_GRACE=2h0m0s REKEY_PRIVATE_SPACE_GRACE=4h0m0s: worker.1, worker.2",
		"REKEY_HEROKU_RATE=36000 REKEY_RATE_SCOPE=account REKEY_GRACE=2h0m0s REKEY_PRIVATE_SPACE_GRACE=4h0m0s: worker.3"} {
		if !strings.Contains(d, want) {
			t.Errorf("disagreement %q lacks %q", d, want)
		}
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
	if d := web.announceSettings(ctx, "web.1", sharedSettings(web.cfg), ""); !strings.Contains(d, "REKEY_GRACE=15m0s REKEY_PRIVATE_SPACE_GRACE=4h0m0s: web.1") {
		t.Errorf("a web process with REKEY_GRACE=15m beside workers with 2h: disagreement %q", d)
	}
}
