package e2e

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/sandbox"
)

// A worker stopped by SIGTERM (a deploy, a dyno's daily restart) while a
// rotation waits on the issuer's mint lets the rotation finish in its
// drain, and what the rotation did is counted in the fleet's metrics
// (rekey_rotations_total, rekey_issuer_calls_total) before it exits, within
// Heroku's 30 seconds.
func TestRotationFinishedInTheDrainIsCounted(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{})
	samples := w.provision(1, sandbox.Mix{})
	a := newAdversary(t, w)
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	a.set(func(rw http.ResponseWriter, r *http.Request, body []byte) bool {
		if r.Method == http.MethodPost && r.URL.Path == "/credentials" {
			once.Do(func() { close(arrived) })
			<-release
		}
		return false
	})
	env := w.processEnv()
	env["REKEY_ISSUER_URL"] = a.url
	p := startRekey(t, env, "worker")
	res := w.rotate(samples[0].ID)
	select {
	case <-arrived:
	case <-time.After(time.Minute):
		t.Fatalf("the rotation's mint never reached the issuer:\n%s", p.stderr.String())
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the worker is draining
	close(release)
	stopped := time.Now()
	if code := p.exit(30 * time.Second); code != 0 {
		t.Fatalf("worker exited %d after SIGTERM, want 0:\n%s", code, p.stderr.String())
	}
	t.Logf("the worker exited %s after the mint was answered", time.Since(stopped).Round(time.Millisecond))
	b, err := w.store.Batch(context.Background(), res.BatchID)
	if err != nil || b.Succeeded != 1 {
		t.Fatalf("batch after the drain: %+v, %v; want the rotation done by the draining worker", b, err)
	}
	counters, err := w.store.Counters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rotations, mints := int64(0), int64(0)
	for name, n := range counters {
		switch {
		case strings.HasPrefix(name, "rotations:"):
			rotations += n
		case strings.HasPrefix(name, "issuer_calls:mint:"):
			mints += n
		}
	}
	if rotations != 1 || mints != 1 {
		t.Errorf("counters after the worker stopped: %d rotations, %d mints, want 1 and 1: %v", rotations, mints, counters)
	}
}
