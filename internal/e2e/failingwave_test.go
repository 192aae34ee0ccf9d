package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
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
// so refused failed for good, so that a wave released at the budget's pace
// failed whole, one instance after the other, until an operator stopped
// it. It must slow as for an outage, and go on once the secrets agree,
// with none of its rotations lost.
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
// rotation so refused failed for good, so that a wave released at the
// budget's pace failed whole, one instance after the other. It must slow,
// and go on once the issuer mints again, with none of its rotations lost.
func TestAnIssuerRefusingEveryMintSlowsTheWave(t *testing.T) {
	t.Parallel()
	issuerRefusesTheWave(t, http.StatusForbidden, `{"error":"tenant_suspended"}`)
}

// issuerRefusesTheWave runs a 60-instance wave under a real worker whose
// issuer answers every mint status and page (JSON when it starts with "{")
// until the wave has been slowed for 35 s and every rotation that reached
// the issuer before it slowed has been asked again.
func issuerRefusesTheWave(t *testing.T, status int, page string) {
	w := newWorld(t, worldParams{})
	samples := w.provision(60, sandbox.Mix{})
	a := newAdversary(t, w)
	var mu sync.Mutex
	down := true
	failed := 0                 // mints answered status
	reached := map[string]int{} // instances whose mint reached the issuer while it was down, and how often
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
		reached[req.InstanceID]++
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

	wave := rotateWave(t, env, samples)
	waitFor(t, 60*time.Second, "the feeder to slow the failing wave", func() (bool, string) {
		return strings.Contains(worker.stderr.String(), "pacing_wave_slowed"), fmt.Sprint(state())
	})
	// Tasks released before the feeder's look reach the issuer within a
	// worker's poll or two.
	time.Sleep(5 * time.Second)
	_, before := state()
	mu.Lock()
	early := slices.Collect(maps.Keys(reached)) // released before the wave slowed
	mu.Unlock()
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
	// The rotations released before the wave slowed are asked again while
	// it is slowed: an outage's within seconds, the issuer's own refusal a
	// minute after its first (retry.ConfirmAfter), which then finds the
	// outage marked and is retried, not failed for good.
	waitFor(t, retry.ConfirmAfter+30*time.Second, "each rotation that reached the issuer before the wave slowed to be asked again", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		once := 0
		for _, id := range early {
			if reached[id] < 2 {
				once++
			}
		}
		return once == 0, fmt.Sprintf("%d of %d asked once", once, len(early))
	})

	mu.Lock()
	down = false
	mu.Unlock()
	up := time.Now()
	pushed := func() int { return w.pushed(wave) }
	// A probe within 15 s, its rotation seen within 5 s, then 20 rotations
	// at 1.1 a second.
	waitFor(t, time.Minute, "the wave to go at the budget's pace again", func() (bool, string) {
		return pushed() >= 20, fmt.Sprintf("%d pushed", pushed())
	})
	if !strings.Contains(worker.stderr.String(), "pacing_wave_resumed") {
		t.Errorf("the worker did not say the wave resumed:\n%s", worker.stderr.String())
	}
	// The rotations that failed before the wave slowed, and its probes,
	// wait out asynq's back-off (96 to 212 s by their fourth failure)
	// unless brought forward once a probe rotates. Those the issuer itself
	// refused before the wave slowed are asked again a minute after their
	// first refusal, and find the outage marked or the issuer minting;
	// failed for good, they would never reach Heroku. About 60 s of budget
	// for the wave, 15 s for the probe.
	waitFor(t, 2*time.Minute, "every rotation of the wave to reach Heroku once the issuer is up", func() (bool, string) {
		return pushed() == len(wave), fmt.Sprintf("%d of %d pushed", pushed(), len(wave))
	})
	t.Logf("the whole wave reached Heroku %v after the issuer came up", time.Since(up).Round(time.Second))
	t.Logf("issuer down: %d instances reached it in 30 s of the slowed wave (%d before); up again: %d pushed",
		after-before, before, pushed())
}

// One instance of a wave whose tenant the issuer suspended (its JSON 403 to
// that instance's mints alone) under a real `rekey worker`: the refusal is
// asked again once, a minute later, in case it is the whole wave's, and
// then fails that rotation for good with the issuer's own code, the rest
// of the wave rotating meanwhile, nothing slowed and nothing pushed for it.
func TestOneInstancesRefusalFailsAtItsSecondAnswer(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{})
	samples := w.provision(12, sandbox.Mix{})
	suspended := samples[0]
	a := newAdversary(t, w)
	var mu sync.Mutex
	var refusedAt []time.Time
	a.set(func(rw http.ResponseWriter, r *http.Request, body []byte) bool {
		var req struct {
			InstanceID string `json:"instance_id"`
		}
		if r.Method != http.MethodPost || r.URL.Path != "/credentials" ||
			json.Unmarshal(body, &req) != nil || req.InstanceID != suspended.ID {
			return false
		}
		mu.Lock()
		refusedAt = append(refusedAt, time.Now())
		mu.Unlock()
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusForbidden)
		_, _ = rw.Write([]byte(`{"error":"tenant_suspended"}`))
		return true
	})
	env := w.processEnv()
	env["REKEY_ISSUER_URL"] = a.url
	env["REKEY_LOG_LEVEL"] = "info" // pacing_wave_slowed
	worker := startRekey(t, env, "worker")

	wave := rotateWave(t, env, samples)
	waitFor(t, 30*time.Second, "the rest of the wave to reach Heroku", func() (bool, string) {
		n := w.pushed(wave[1:])
		return n == len(wave)-1, fmt.Sprintf("%d of %d pushed", n, len(wave)-1)
	})
	var in store.Instance
	waitFor(t, 2*time.Minute, "the suspended instance's rotation to fail for good", func() (bool, string) {
		got, err := w.store.Instance(t.Context(), suspended.ID)
		if err != nil {
			t.Fatal(err)
		}
		in = got
		return in.LastErrorCode != "" && in.InFlight == "", fmt.Sprintf("last error %q, in flight %q", in.LastErrorCode, in.InFlight)
	})
	if in.LastErrorCode != "mint:issuer_403" || in.CurrentCredential != suspended.Provisioned {
		t.Errorf("last error code %q, current %s; want mint:issuer_403 and the provisioned %s kept",
			in.LastErrorCode, in.CurrentCredential, suspended.Provisioned)
	}
	// Asked twice, a minute apart, then no more: the rotation has ended.
	time.Sleep(2 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(refusedAt) != 2 || refusedAt[1].Sub(refusedAt[0]) < retry.ConfirmAfter {
		t.Errorf("the issuer was asked to mint for the suspended instance at %v, want twice, %v apart or more",
			refusedAt, retry.ConfirmAfter)
	}
	if n := w.sb.Fake.ConfigWrites(suspended.ID); n != 0 {
		t.Errorf("%d config writes for the suspended instance, want none", n)
	}
	if strings.Contains(worker.stderr.String(), "pacing_wave_slowed") {
		t.Errorf("one instance's refusal slowed the wave:\n%s", worker.stderr.String())
	}
}

// rotateWave asks `rekey rotate` for a bulk wave of samples, as an operator
// does, and returns their ids.
func rotateWave(t *testing.T, env map[string]string, samples []sandbox.Sample) []string {
	t.Helper()
	var wave []string
	for _, s := range samples {
		wave = append(wave, s.ID)
	}
	runRekey(t, env, append([]string{"rotate", "--queue", tasks.QueueBulk, "--confirm", "--reason", "wave"}, wave...)...)
	return wave
}

// pushed counts the instances of ids whose config rekey wrote on Heroku.
func (w *world) pushed(ids []string) int {
	n := 0
	for _, id := range ids {
		if w.sb.Fake.ConfigWrites(id) > 0 {
			n++
		}
	}
	return n
}
