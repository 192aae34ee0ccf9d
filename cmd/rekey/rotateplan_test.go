package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// planFigures are the fields of `rekey rotate --plan --json` these tests
// read, under the names partners' scripts rely on (planOutput).
type planFigures struct {
	Rotate     int     `json:"rotate"`
	Calls      int     `json:"heroku_api_calls"`
	ReadBacks  int     `json:"v1_read_backs"`
	FirstReads int     `json:"first_reads"`
	Refreshes  int     `json:"oauth_token_refreshes"`
	Seconds    float64 `json:"estimated_seconds_at_least"`
}

// planJSON runs `rekey rotate --plan --json` with args and reads its figures.
func (c *cli) planJSON(t *testing.T, args ...string) planFigures {
	t.Helper()
	if err := c.run(t, "rotate", append([]string{"--plan", "--json"}, args...)...); err != nil {
		t.Fatalf("%v\n%s", err, c.stderr)
	}
	var got planFigures
	if err := json.Unmarshal(c.stdout.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, c.stdout)
	}
	return got
}

// A plan dates each rotation's first call after every call of the
// rotations before it, first reads included, when it counts the OAuth
// tokens that will need a refresh. With 100 V3 instances registered without
// current_config (200 calls at 0.9 s: about 2m52s) whose access tokens all
// expire, refresh-ahead included, 2 minutes from now, the rotations from
// the 72nd on make their first call after that (call 2n-1 at
// (2n-1-9)*0.9 s >= 120 s): about 29 tokens need a refresh.
func TestRotatePlanRefreshesFollowTheCallsNotTheRotations(t *testing.T) {
	ctx := context.Background()
	c := newCLI(t)
	ids := c.register(t, 100)
	exp := time.Now().Add(heroku.DefaultRefreshAhead + 2*time.Minute)
	for _, id := range ids {
		tok := heroku.Token{AccessToken: secret.New("access"), RefreshToken: secret.New("refresh"), ExpiresAt: exp}
		if err := c.st.SaveToken(ctx, id, tok); err != nil {
			t.Fatal(err)
		}
	}
	got := c.planJSON(t, ids...)
	t.Logf("plan: %+v", got)
	if got.Calls != 200 || got.FirstReads != 100 {
		t.Fatalf("want 200 calls, 100 first reads: %+v", got)
	}
	// Rotation n (1-based) makes its first call, the read, as call 2n-1.
	want := 0
	for n := 1; n <= 100; n++ {
		at := time.Duration(max(0, 2*n-1-9)) * 900 * time.Millisecond
		if at >= 2*time.Minute {
			want++
		}
	}
	if got.Refreshes < want-2 || got.Refreshes > want+2 {
		t.Errorf("plan counts %d OAuth token refreshes; about %d tokens expire before their rotation's first call "+
			"(the plan's own duration is %.0f s, past the tokens' 120 s)", got.Refreshes, want, got.Seconds)
	}
}

// An instance whose current credential rekey minted has no first read; one
// whose rotation failed after its mint keeps its registered credential, and
// is counted again.
func TestRotatePlanNoFirstReadAfterARotation(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 3)
	for _, id := range ids[:2] {
		if err := c.run(t, "rotate", id); err != nil {
			t.Fatal(err)
		}
	}
	c.complete(t, ids[:2], map[string]bool{ids[1]: true})
	got := c.planJSON(t, ids...)
	if got.Rotate != 3 || got.FirstReads != 2 || got.Calls != 5 {
		t.Errorf("plan %+v; want 3 rotations, 2 first reads (the failed one and the never rotated one), 5 calls", got)
	}
}

// A bulk request holds its V1 rotations, two calls each, before the others
// (fleet's twoCallsFirst), so a V3 instance named first makes its first
// call after every V1 rotation's calls, not first. The plan dates its
// token on that order: with 100 V1 instances named after it (300 calls,
// first reads included, about 4m20s at 0.9 s a call) and its access token
// expiring, refresh-ahead included, a minute from now, it needs a refresh.
// A plan that followed the request's order would date its call now.
func TestRotatePlanDatesTokensInTheOrderAWaveRuns(t *testing.T) {
	ctx := context.Background()
	c := newCLI(t)
	ids := []string{"inst-v3-first"}
	for i := range 100 {
		ids = append(ids, fmt.Sprintf("inst-v1-%03d", i))
	}
	for _, id := range ids {
		reg := store.Registration{ID: id, APIVersion: store.APIv1, HerokuID: "app-" + id,
			ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-0"}
		if id == ids[0] {
			reg.APIVersion, reg.HerokuID = store.APIv3, ""
		}
		if err := c.st.PutInstance(ctx, reg); err != nil {
			t.Fatal(err)
		}
	}
	tok := heroku.Token{AccessToken: secret.New("access"), RefreshToken: secret.New("refresh"),
		ExpiresAt: time.Now().Add(heroku.DefaultRefreshAhead + time.Minute)}
	if err := c.st.SaveToken(ctx, ids[0], tok); err != nil {
		t.Fatal(err)
	}
	got := c.planJSON(t, ids...)
	if got.Rotate != 101 || got.ReadBacks != 100 || got.Refreshes != 1 {
		t.Errorf("plan %+v; want 101 rotations, 100 read-backs and the V3 token refreshed: "+
			"its first call comes after the V1 rotations'", got)
	}
}

// A plan says how long the old credentials stay valid, as the request's
// own output does: the --grace asked, else each instance's own and
// REKEY_GRACE's. An operator who typed --grace 5h where 5m was meant sees
// it before anything is enqueued.
func TestRotatePlanSaysTheGrace(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 2)
	if err := c.run(t, "rotate", append([]string{"--plan", "--grace", "5h"}, ids...)...); err != nil {
		t.Fatalf("%v\n%s", err, c.stderr)
	}
	if want := "grace: 5h (--grace), then the old credentials are revoked"; !strings.Contains(c.stdout.String(), want) {
		t.Errorf("plan with --grace 5h does not say %q:\n%s", want, c.stdout)
	}
	if err := c.run(t, "rotate", append([]string{"--plan"}, ids...)...); err != nil {
		t.Fatalf("%v\n%s", err, c.stderr)
	}
	if want := "grace: each instance's own, else "; !strings.Contains(c.stdout.String(), want) {
		t.Errorf("plan without --grace does not say %q:\n%s", want, c.stdout)
	}
	for _, tc := range []struct {
		args []string
		want float64
	}{{[]string{"--grace", "5h"}, 5 * 3600}, {nil, 0}} {
		if err := c.run(t, "rotate", append(append([]string{"--plan", "--json"}, tc.args...), ids...)...); err != nil {
			t.Fatalf("%v\n%s", err, c.stderr)
		}
		var got map[string]any
		if err := json.Unmarshal(c.stdout.Bytes(), &got); err != nil {
			t.Fatalf("%v: %s", err, c.stdout)
		}
		g, _ := got["grace_asked_seconds"].(float64)
		if _, present := got["grace_asked_seconds"]; g != tc.want || (tc.want == 0 && present) {
			t.Errorf("--plan --json %v: grace_asked_seconds %v (present %v), want %v (absent for 0)", tc.args, got["grace_asked_seconds"], present, tc.want)
		}
	}
}

// A plan's duration is worked out at the rate the running workers spend
// (their announced REKEY_HEROKU_RATE), not at the operator's shell's: a
// fleet at 1000 calls an hour takes four times what the default 4000
// would promise, and an operator deciding whether to rotate after a leak
// reads that figure.
func TestRotatePlanUsesTheRunningWorkersRate(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 100)
	ctx := context.Background()
	estimate := func() time.Duration {
		t.Helper()
		if err := c.run(t, "rotate", append([]string{"--plan"}, ids...)...); err != nil {
			t.Fatalf("%v\n%s", err, c.stderr)
		}
		_, rest, _ := strings.Cut(c.stdout.String(), "estimated duration")
		d, err := time.ParseDuration(strings.TrimSuffix(strings.Fields(strings.TrimPrefix(strings.TrimSpace(rest), "at least"))[0], ","))
		if err != nil {
			t.Fatalf("no duration in the plan: %v\n%s", err, c.stdout)
		}
		return d
	}
	own := estimate()
	const settings = " REKEY_GRACE=2h0m0s REKEY_PRIVATE_SPACE_GRACE=4h0m0s"
	if err := c.st.AnnounceSharedSettings(ctx, "worker.1", "REKEY_HEROKU_RATE=1000"+settings, time.Minute); err != nil {
		t.Fatal(err)
	}
	running := estimate()
	if want := "1000 calls/hour (REKEY_HEROKU_RATE as the running processes have it; 4000 here)"; !strings.Contains(c.stdout.String(), want) {
		t.Errorf("plan under workers at 1000 calls an hour does not say %q:\n%s", want, c.stdout)
	}
	if running < 3*own {
		t.Errorf("plan estimates %v at the workers' 1000 calls an hour, %v at this command's 4000: want about four times as long", running, own)
	}
	// Processes that disagree leave the plan at this command's rate.
	if err := c.st.AnnounceSharedSettings(ctx, "worker.2", "REKEY_HEROKU_RATE=2000"+settings, time.Minute); err != nil {
		t.Fatal(err)
	}
	if d := estimate(); d != own || !strings.Contains(c.stdout.String(), "4000 calls/hour (REKEY_HEROKU_RATE)\n") {
		t.Errorf("plan under disagreeing workers estimates %v (want %v, this command's rate):\n%s", d, own, c.stdout)
	}
}
