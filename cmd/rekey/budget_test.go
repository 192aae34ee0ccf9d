package main

import (
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/config"
)

// Every process says which Heroku budget it spends under; one started with
// another REKEY_HEROKU_RATE (a typo on a VM: 36000 for 3600) makes every
// process log heroku_budget_mismatch, once while it lasts, naming each
// setting and the processes under it. A withdrawn or lapsed process stops
// counting.
func TestProcessesThatSpendUnderDifferentBudgetsSaySo(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	process := func(rate int) (*app, *syncBuffer) {
		var logs syncBuffer
		return &app{cfg: &config.Config{HerokuRate: rate, RateScope: "account"}, store: c.st,
			log: zerolog.New(&logs), redact: func(s string) string { return s }}, &logs
	}
	w1, logs1 := process(3600)
	w2, _ := process(3600)
	if d := w1.announceBudget(ctx, "worker.1", budgetSettings(w1.cfg), ""); d != "" {
		t.Fatalf("one process: disagreement %q", d)
	}
	if d := w2.announceBudget(ctx, "worker.2", budgetSettings(w2.cfg), ""); d != "" {
		t.Fatalf("two processes alike: disagreement %q", d)
	}
	typo, _ := process(36000)
	if d := typo.announceBudget(ctx, "worker.3", budgetSettings(typo.cfg), ""); d == "" {
		t.Fatal("a process with REKEY_HEROKU_RATE=36000 beside two with 3600: no disagreement")
	}
	d := w1.announceBudget(ctx, "worker.1", budgetSettings(w1.cfg), "")
	for _, want := range []string{"REKEY_HEROKU_RATE=3600 REKEY_RATE_SCOPE=account: worker.1, worker.2",
		"REKEY_HEROKU_RATE=36000 REKEY_RATE_SCOPE=account: worker.3"} {
		if !strings.Contains(d, want) {
			t.Errorf("disagreement %q lacks %q", d, want)
		}
	}
	if n := strings.Count(logs1.String(), "heroku_budget_mismatch"); n != 1 {
		t.Errorf("worker.1 logged heroku_budget_mismatch %d times, want once:\n%s", n, logs1.String())
	}
	if again := w1.announceBudget(ctx, "worker.1", budgetSettings(w1.cfg), d); again != d ||
		strings.Count(logs1.String(), "heroku_budget_mismatch") != 1 {
		t.Errorf("the same disagreement again was logged again, or changed: %q", again)
	}
	if err := c.st.WithdrawBudget(ctx, "worker.3"); err != nil {
		t.Fatal(err)
	}
	if d := w1.announceBudget(ctx, "worker.1", budgetSettings(w1.cfg), d); d != "" {
		t.Errorf("after the odd process stopped: disagreement %q", d)
	}
}
