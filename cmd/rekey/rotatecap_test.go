package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// capped registers n instances and rotates the first one REKEY_MAX_PREVIOUS
// (3) times, so that it has as many superseded credentials waiting as the
// store allows and its next claim is refused.
func (c *cli) capped(t *testing.T, n int) []string {
	t.Helper()
	ids := c.register(t, n)
	for range 3 {
		if err := c.run(t, "rotate", ids[0]); err != nil {
			t.Fatal(err)
		}
		c.complete(t, ids[:1], nil)
	}
	return ids
}

// TestRotateAllSaysWhichInstancesTheCapRefused: `rekey rotate --all` leaves
// out an instance that already has REKEY_MAX_PREVIOUS credentials waiting;
// its line must say so, and its exit status (3) must tell a script from
// success, or an operator rotating the fleet after a leak reads every
// instance as rotated while that one keeps its current credential.
func TestRotateAllSaysWhichInstancesTheCapRefused(t *testing.T) {
	c := newCLI(t)
	ids := c.capped(t, 3)
	err := c.run(t, "rotate", "--all", "--confirm")
	var msg strings.Builder
	if code := report(&msg, err); code != exitLeftOut || !strings.Contains(msg.String(), "1 instance not rotated") {
		t.Errorf("rotate --all with an instance at the cap: exit %d, %q; want %d naming what was left out", code, msg.String(), exitLeftOut)
	}
	if out := c.stdout.String(); !strings.Contains(out, "2 enqueued on bulk") || !strings.Contains(out, "1 refused") {
		t.Errorf("stdout %q does not count the instance the cap refused", out)
	}
	if !strings.Contains(c.stderr.String(), ids[0]) || !strings.Contains(c.stderr.String(), "REKEY_MAX_PREVIOUS") {
		t.Errorf("stderr %q does not name the refused instance and the cap", c.stderr)
	}
	err = c.run(t, "rotate", "--all", "--confirm", "--json")
	if code := report(io.Discard, err); code != exitLeftOut || !strings.Contains(c.stdout.String(), `"refused": 1`) {
		t.Errorf("rotate --all --json with an instance at the cap: exit %d (%v), stdout %q", code, err, c.stdout)
	}
}

// TestRotatePlanCountsTheCap: --plan says what the request would do, so an
// instance the REKEY_MAX_PREVIOUS cap refuses is not counted as rotated,
// and a plan of named ids the request would refuse whole fails as it would.
func TestRotatePlanCountsTheCap(t *testing.T) {
	c := newCLI(t)
	ids := c.capped(t, 3)
	if err := c.run(t, "rotate", "--all", "--plan"); err != nil {
		t.Fatalf("rotate --all --plan: %v", err)
	}
	for _, want := range []string{"rotate                 2, on queue bulk", "refused, at the cap    1"} {
		if !strings.Contains(c.stdout.String(), want) {
			t.Errorf("plan of --all lacks %q:\n%s", want, c.stdout)
		}
	}
	err := c.run(t, "rotate", "--plan", ids[0], ids[1])
	if err == nil || !strings.Contains(err.Error(), "refused whole") {
		t.Errorf("rotate --plan of a capped id: %v, want the refusal the request would meet", err)
	}
	if !strings.Contains(c.stdout.String(), "rotate                 1, on queue default") {
		t.Errorf("plan of named ids:\n%s", c.stdout)
	}
}

// TestRotatePlanRefusesTheGraceTheRequestWould: a --grace below the floor or
// above the ceiling refuses the request, so its --plan must not say it would
// rotate (exit 0), and on a terminal it is refused before the question.
func TestRotatePlanRefusesTheGraceTheRequestWould(t *testing.T) {
	c := newCLI(t)
	c.register(t, 2)
	for _, grace := range []string{"1ms", "2000h"} {
		err := c.run(t, "rotate", "--all", "--plan", "--grace", grace)
		if err == nil || !strings.Contains(err.Error(), "REKEY_M") {
			t.Errorf("rotate --all --plan --grace %s: %v, want the refusal naming the floor or the ceiling", grace, err)
		}
	}
	c.terminal = true
	if err := c.run(t, "rotate", "--all", "--grace", "1ms"); err == nil || strings.Contains(c.stderr.String(), "[y/N]") {
		t.Errorf("rotate --all --grace 1ms on a terminal: %v, asked %q", err, c.stderr)
	}
}

// The grace `rekey rotate` prints is the one the workers apply: their
// announced REKEY_GRACE, not this command's environment's, and a word of
// warning when the running processes disagree.
func TestRotateSaysTheGraceTheRunningWorkersApply(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 2)
	ctx := context.Background()
	const dev = "REKEY_HEROKU_RATE=4000 REKEY_RATE_SCOPE=account REKEY_GRACE=5s REKEY_PRIVATE_SPACE_GRACE=10s"
	if err := c.st.AnnounceSharedSettings(ctx, "worker.1", dev, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := c.run(t, "rotate", ids[0]); err != nil {
		t.Fatal(err)
	}
	want := "grace: each instance's own, else 5s (REKEY_GRACE; 10s in a Private Space, REKEY_PRIVATE_SPACE_GRACE, as the running processes have them)"
	if !strings.Contains(c.stdout.String(), want) {
		t.Errorf("stdout %q lacks %q", c.stdout, want)
	}
	if err := c.st.AnnounceSharedSettings(ctx, "worker.2", strings.Replace(dev, "=5s", "=2h0m0s", 1), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := c.run(t, "rotate", ids[1]); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.stdout.String(), "the running processes disagree on it, see their settings_mismatch") {
		t.Errorf("stdout %q does not say the workers disagree", c.stdout)
	}
}

// A --grace within this command's REKEY_MAX_GRACE but past the running
// workers' (a worker started without the line the web process has) is
// lowered by them: rotate says the grace they apply, not the one asked.
// Workers that disagree on the ceiling are said to disagree.
func TestRotateSaysTheRunningWorkersCeiling(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 3)
	ctx := context.Background()
	worker := func(name, ceiling string) {
		settings := "REKEY_HEROKU_RATE=4000 REKEY_RATE_SCOPE=account REKEY_GRACE=2h0m0s REKEY_PRIVATE_SPACE_GRACE=4h0m0s " +
			"REKEY_MIN_GRACE=10m0s REKEY_MAX_GRACE=" + ceiling
		if err := c.st.AnnounceSharedSettings(ctx, name, settings, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	worker("worker.1", "5h0m0s")
	if err := c.run(t, "rotate", ids[0], "--grace", "6h"); err != nil {
		t.Fatal(err)
	}
	want := "grace: 6h asked (--grace), but the running workers' REKEY_MAX_GRACE is 5h: they revoke the old credentials after 5h"
	if !strings.Contains(c.stdout.String(), want) {
		t.Errorf("stdout %q lacks %q", c.stdout, want)
	}
	if err := c.run(t, "rotate", ids[1], "--grace", "4h"); err != nil || !strings.Contains(c.stdout.String(), "grace: 4h (--grace), then") {
		t.Errorf("a grace within the workers' ceiling: %v, stdout %q", err, c.stdout)
	}
	worker("worker.2", "168h0m0s")
	if err := c.run(t, "rotate", ids[2], "--grace", "6h"); err != nil {
		t.Fatal(err)
	}
	if d, err := c.st.SharedSettings(ctx); err != nil || len(store.SettingsDisagreements(d)) != 1 {
		t.Errorf("two ceilings announced: disagreements %v (%v), want one", store.SettingsDisagreements(d), err)
	}
}

// Every process announces the grace floor and ceiling it applies, so that
// a worker holding a grace to another ceiling than the web process's is a
// settings_mismatch; and one issuer URL written two ways is one issuer.
func TestSharedSettingsNameTheGraceBoundsAndOneIssuer(t *testing.T) {
	base := config.Config{HerokuRate: 4000, RateScope: "account", Grace: 2 * time.Hour, PrivateSpaceGrace: 4 * time.Hour,
		MinGrace: 10 * time.Minute, MaxGrace: 168 * time.Hour, Issuer: config.IssuerHTTP,
		IssuerURL: "https://issuer.example/rekey", IssuerSecret: secret.New("a secret of the issuer's, long enough")}
	lower := base
	lower.MaxGrace = 5 * time.Hour
	if a, b := sharedSettings(&base), sharedSettings(&lower); a == b || !strings.Contains(b, "REKEY_MAX_GRACE=5h0m0s") {
		t.Errorf("another REKEY_MAX_GRACE announces alike: %q / %q", a, b)
	}
	for _, spelling := range []string{"https://ISSUER.example/rekey", "https://issuer.example:443/rekey", "HTTPS://Issuer.Example:443/rekey"} {
		other := base
		other.IssuerURL = spelling
		if a, b := sharedSettings(&base), sharedSettings(&other); a != b {
			t.Errorf("%s announces another issuer than https://issuer.example/rekey:\n%s\n%s", spelling, a, b)
		}
	}
	elsewhere := base
	elsewhere.IssuerURL = "https://issuer.example:8443/rekey"
	if sharedSettings(&base) == sharedSettings(&elsewhere) {
		t.Error("another port announces the same issuer")
	}
}
