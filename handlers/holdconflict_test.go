package handlers_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

type countingLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *countingLog) Notify(_ context.Context, _ string, line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
}

type revokeCounter struct {
	*usageRaceIssuer
	revokes atomic.Int32
}

func (i *revokeCounter) Revoke(ctx context.Context, instanceID, credID string) error {
	i.revokes.Add(1)
	return i.usageRaceIssuer.Revoke(ctx, instanceID, credID)
}

// A run whose hold cannot be saved because another run revoked the
// credential meanwhile (I6) stops there: no second DELETE to the issuer,
// no second revocation counted, no second "was revoked" line in the
// customer's log stream.
func TestAHoldThatCannotBeSavedStopsTheRun(t *testing.T) {
	t.Parallel()
	g, _, revoke := holdRaceRig(t)
	cl := &countingLog{}
	g.deps.CustomerLog = cl
	obs := &lagObserver{}
	g.deps.Observer = obs
	iss := &revokeCounter{usageRaceIssuer: &usageRaceIssuer{Issuer: g.demo, entered: make(chan struct{}), release: make(chan struct{})}}
	g.deps.Issuer = iss

	first := make(chan error, 1)
	go func() { first <- g.run(revoke) }()
	<-iss.entered
	if err := g.run(revoke); err != nil {
		t.Fatalf("second run: %v", err)
	}
	close(iss.release)
	if err := <-first; err != nil {
		t.Fatalf("first run: %v", err)
	}
	cl.mu.Lock()
	lines := 0
	for _, l := range cl.lines {
		if strings.Contains(l, "was revoked") {
			lines++
		}
	}
	cl.mu.Unlock()
	obs.mu.Lock()
	revoked := len(obs.lags)
	obs.mu.Unlock()
	if n := iss.revokes.Load(); n != 1 || revoked != 1 || lines != 1 {
		t.Errorf("one revocation, two runs: %d DELETEs to the issuer, %d revocations counted, %d \"was revoked\" customer log lines; want 1 each",
			n, revoked, lines)
	}
}
