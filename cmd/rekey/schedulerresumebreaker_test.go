package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

// `rekey scheduler resume` while the circuit breaker is open: the
// schedulers still enqueue nothing (the breaker holds them), so the command
// must not answer a bare "scheduler resumed", which an operator reads as
// scheduled work running again.
func TestSchedulerResumeSaysTheOpenBreakerStillHoldsIt(t *testing.T) {
	ctx := context.Background()
	g := newSchedulerRig(t)
	p := store.BreakerPolicy{Threshold: 2, Fraction: 0.5, Window: time.Minute}
	for _, id := range []string{"denied-a", "denied-b"} {
		if _, err := g.st.ObserveBreaker(ctx, id, store.DeniedUnauthorized, p); err != nil {
			t.Fatal(err)
		}
	}
	g.run(t, "pause", "--by", "alice")
	out := g.run(t, "resume")
	if !strings.Contains(out, "circuit breaker is OPEN") || !strings.Contains(out, "rekey breaker resume") {
		t.Fatalf("rekey scheduler resume with the breaker open printed:\n%s\nwant it to say the breaker still holds the schedulers", out)
	}
}
