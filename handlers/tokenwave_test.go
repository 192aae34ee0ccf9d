package handlers_test

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/retry"
)

// Heroku's token endpoint answers 429 to every refresh of a wave's expired
// access tokens. No shared pause covers the token endpoint (its 429s are no
// part of the Platform API's budget), and a run put off by one counted as
// a wait for the budget, which tells the feeder nothing: the feeder went on
// releasing the wave at the budget's pace, each release a mint at the
// issuer and a refresh turned away, and every rotation so released asked
// the token endpoint again on its own back-off, more of them each second,
// until each had spent its ten waits and then its retries. A run put off
// by the token endpoint's 429 counts as the wave's failed run, as a 5xx
// does: ten of them, and none rotated, and the feeder slows the wave to a
// probe, the rest held.
func TestTokenEndpoint429sToAWaveSlowTheWave(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	ids := g.waveOfFailingAfter(t)
	h := &tokenEndpoint429{g: g}
	g.useHeroku(t, h, 5*time.Second)
	g.fake.ExpireAccessTokens()

	g.runOnBulk(t, ids, retry.Delay)
	// Each run refreshes once, is answered 429 and is put off for 5 s.
	for deadline := time.Now().Add(15 * time.Second); int(h.tokens.Load()) < len(ids); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d token calls after 15 s, want one a rotation (%d)", h.tokens.Load(), len(ids))
		}
	}
	time.Sleep(200 * time.Millisecond) // the last runs record their outcome
	health, err := pacing.ReadWaveHealth(ctx, g.rdb, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d token calls answered 429, %d pushes; wave health %+v", h.tokens.Load(), h.patches.Load(), health)
	if !health.Failing() {
		t.Fatalf("wave health after %d rotations' refreshes answered 429: %+v; want failing, the wave slowed to a probe",
			len(ids), health)
	}
}
