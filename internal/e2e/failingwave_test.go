package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/tasks"
)

// A partner's issuer that goes down mid-wave, answering every mint 503,
// under a real `rekey worker` at Heroku's real pace. Released at the
// budget's pace, every rotation of the wave would fail at its mint and wait
// out asynq's back-off, which grows to hours, so that the wave would end
// hours after the issuer came back. Once ten runs have failed and none
// rotated, the feeder must release one rotation every 15 s and keep the
// rest held; once the issuer answers again, the probe rotates and the held
// rest goes at the budget's pace.
func TestAnIssuerDownMidWaveSlowsTheWaveToAProbe(t *testing.T) {
	t.Parallel()
	issuerRefusesTheWave(t, http.StatusServiceUnavailable, "")
}

// The same with an issuer that answers every mint 401, refusing rekey's
// signature (REKEY_ISSUER_SECRET changed at the issuer only): each rotation
// so refused fails for good, so that a wave released at the budget's pace
// failed whole, one instance after the other, until an operator stopped
// it. It must slow as for an outage, and go on once the secrets agree.
func TestAnIssuerRefusingRekeysSignatureSlowsTheWave(t *testing.T) {
	t.Parallel()
	issuerRefusesTheWave(t, http.StatusUnauthorized, "")
}

// The same with a firewall in front of the issuer answering every mint with
// its 403 block page: no answer of the issuer's, so each mint is asked
// again rather than its rotation failed for good, and the wave slows as for
// an outage.
func TestAFirewallPageToEveryMintSlowsTheWave(t *testing.T) {
	t.Parallel()
	issuerRefusesTheWave(t, http.StatusForbidden,
		"<!DOCTYPE html><html><head><title>Access denied</title></head><body>Request blocked</body></html>")
}

// The same with an issuer that answers every mint with a 4xx of its own
// (JSON: a tenant suspended at the issuer, a contract changed): each
// rotation so refused fails for good, so that a wave released at the
// budget's pace failed whole, one instance after the other. It must slow,
// its probes failing for good one every 15 s, and go on once the issuer
// mints again.
func TestAnIssuerRefusingEveryMintSlowsTheWave(t *testing.T) {
	t.Parallel()
	issuerRefusesTheWave(t, http.StatusForbidden, `{"error":"tenant_suspended"}`)
}

// issuerRefusesTheWave runs a 60-instance wave under a real worker whose
// issuer answers every mint status and page (JSON when it starts with "{")
// until the wave has been slowed for 35 s.
func issuerRefusesTheWave(t *testing.T, status int, page string) {
	w := newWorld(t, worldParams{})
	samples := w.provision(60, sandbox.Mix{})
	a := newAdversary(t, w)
	var mu sync.Mutex
	down := true
	failed := 0                       // mints answered status
	reached := map[string]time.Time{} // instances whose mint reached the issuer while it was down, and when first
	a.set(func(rw http.ResponseWriter, r *http.Request, body []byte) bool {
		if r.Method != http.MethodPost || r.URL.Path != "/credentials" {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if !down {
			return false
		}
		var req struct {
			InstanceID string `json:"instance_id"`
		}
		_ = json.Unmarshal(body, &req)
		if _, ok := reached[req.InstanceID]; !ok {
			reached[req.InstanceID] = time.Now()
		}
		failed++
		if strings.HasPrefix(page, "{") {
			rw.Header().Set("Content-Type", "application/json")
		}
		rw.WriteHeader(status)
		_, _ = rw.Write([]byte(page))
		return true
	})
	state := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return failed, len(reached)
	}
	env := w.processEnv()
	env["REKEY_ISSUER_URL"] = a.url
	env["REKEY_HEROKU_RATE"] = "4000"
	env["REKEY_LOG_LEVEL"] = "info" // pacing_wave_resumed
	worker := startRekey(t, env, "worker")

	var wave []string
	for _, s := range samples {
		wave = append(wave, s.ID)
	}
	runRekey(t, env, append([]string{"rotate", "--queue", tasks.QueueBulk, "--confirm", "--reason", "wave"}, wave...)...)
	waitFor(t, 60*time.Second, "the feeder to slow the failing wave", func() (bool, string) {
		return strings.Contains(worker.stderr.String(), "pacing_wave_slowed"), fmt.Sprint(state())
	})
	// Tasks released before the feeder's look reach the issuer within a
	// worker's poll or two.
	time.Sleep(5 * time.Second)
	_, before := state()
	probesFrom := time.Now()
	time.Sleep(30 * time.Second) // 33 of the budget's intervals
	_, after := state()
	// Two probes, and one more should a probe come just after the look.
	if probes := after - before; probes > 3 {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%d more instances reached the down issuer in 30 s of the slowed wave, want at most 3 "+
			"(a probe every %v): %v", probes, pacing.ProbeEvery, reached)
	}
	held, err := pacing.Held(t.Context(), w.redis.Client)
	if err != nil {
		t.Fatal(err)
	}
	if int(held) < len(wave)-after {
		t.Fatalf("%d rotations held, want the %d that never reached the issuer", held, len(wave)-after)
	}

	mu.Lock()
	down = false
	mu.Unlock()
	up := time.Now()
	pushed := func() int {
		n := 0
		for _, id := range wave {
			if w.sb.Fake.ConfigWrites(id) > 0 {
				n++
			}
		}
		return n
	}
	// A probe within 15 s, its rotation seen within 5 s, then 20 rotations
	// at 1.1 a second.
	waitFor(t, time.Minute, "the wave to go at the budget's pace again", func() (bool, string) {
		return pushed() >= 20, fmt.Sprintf("%d pushed", pushed())
	})
	if !strings.Contains(worker.stderr.String(), "pacing_wave_resumed") {
		t.Errorf("the worker did not say the wave resumed:\n%s", worker.stderr.String())
	}
	if status < http.StatusInternalServerError && (page == "" || strings.HasPrefix(page, "{")) {
		// The issuer's own refusal: the rotations it refused before the
		// wave slowed failed for good, but the probes it refused while the
		// wave was slowed are retried, and brought forward once one
		// rotates.
		mu.Lock()
		var probes []string
		for id, at := range reached {
			if at.After(probesFrom) {
				probes = append(probes, id)
			}
		}
		mu.Unlock()
		waitFor(t, 45*time.Second, "the probes refused while the wave was slowed to reach Heroku", func() (bool, string) {
			var missing []string
			for _, id := range probes {
				if w.sb.Fake.ConfigWrites(id) == 0 {
					missing = append(missing, id)
				}
			}
			return len(missing) == 0, fmt.Sprintf("%d of the %d probes not pushed: %v", len(missing), len(probes), missing)
		})
		if len(probes) == 0 {
			t.Errorf("no probe reached the issuer while the wave was slowed")
		}
	}
	if status >= http.StatusInternalServerError {
		// The rotations that failed before the wave slowed, and its
		// probes, wait out asynq's back-off (96 to 212 s by their fourth
		// failure) unless brought forward once a probe rotates. About 60 s
		// of budget for the wave, 15 s for the probe.
		waitFor(t, 2*time.Minute, "every rotation of the wave to reach Heroku once the issuer is up", func() (bool, string) {
			return pushed() == len(wave), fmt.Sprintf("%d of %d pushed", pushed(), len(wave))
		})
		t.Logf("the whole wave reached Heroku %v after the issuer came up", time.Since(up).Round(time.Second))
	}
	t.Logf("issuer down: %d instances reached it in 30 s of the slowed wave (%d before); up again: %d pushed",
		after-before, before, pushed())
}
