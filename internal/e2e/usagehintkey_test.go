package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// An issuer whose credentials are API keys written as UUIDs, and whose
// usage answer echoes the key of the credential asked about as the hint of
// who used it, while that old credential is still in use past its grace:
// the hint looked like no token (no run of it is longer than 12 letters
// and digits) and was kept, in clear in the hold's Redis hash, in the
// customer's log stream ("... by 3f2a9c1e-...") and on the dashboard,
// while the key still worked. It is dropped now, as a hint that looks like
// a token is: the hold stands on the time of the last use alone.
func TestAUsageHintEchoingAKeyInGroupsIsDropped(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{})
	s := w.provision(1, sandbox.Mix{})[0]
	demo := issuer.NewDemoServer(w.sb.Demo, w.cfg.IssuerSecret)
	var mu sync.Mutex
	keys := map[string]string{} // credential id -> its key
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/usage") {
			id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/credentials/"), "/usage")
			mu.Lock()
			key := keys[id]
			mu.Unlock()
			if key != "" {
				rw.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(rw).Encode(map[string]string{
					"last_used_at": time.Now().UTC().Format(time.RFC3339), "last_used_by": key})
				return
			}
		}
		rec := httptest.NewRecorder()
		demo.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if r.Method == http.MethodPost && r.URL.Path == "/credentials" && rec.Code/100 == 2 {
			// The demo mints for real; its config goes out as a key.
			var answer map[string]any
			_ = json.Unmarshal(body, &answer)
			id, _ := answer["credential_id"].(string)
			mu.Lock()
			if keys[id] == "" {
				keys[id] = fmt.Sprintf("%s-%s-4%s-a%s-%s", randomHex(t)[:8], randomHex(t)[:4], randomHex(t)[:3], randomHex(t)[:3], randomHex(t)[:12])
			}
			answer["config"] = map[string]string{issuer.DefaultConfigVar: keys[id]}
			mu.Unlock()
			body, _ = json.Marshal(answer)
		}
		for k, v := range rec.Header() {
			rw.Header()[k] = v
		}
		rw.WriteHeader(rec.Code)
		_, _ = io.Copy(rw, bytes.NewReader(body))
	}))
	t.Cleanup(srv.Close)
	wk := w.startWorker(workerParams{holds: testHolds(time.Minute, false), issuerURL: srv.URL})

	// The first rotation puts a key in the config; the second makes its
	// credential previous, asked about after the grace, and held.
	for range 2 {
		rot := w.rotate(s.ID).Items[0].RotationID
		w.waitTask(tasks.QueueDefault, tasks.RotateTaskID(rot), 30*time.Second)
	}
	deadline := time.Now().Add(30 * time.Second)
	for countEvents(t, w, store.EventRevocationHeld) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the old credential was never held")
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(keys) < 2 {
		t.Fatalf("%d keys minted, want 2", len(keys))
	}
	places := map[string]string{"Redis": redistest.Dump(t, w.redis), "worker log": wk.log.String(),
		"customer's log lines": w.logLines([]sandbox.Sample{s})}
	for id, key := range keys {
		for place, text := range places {
			if strings.Contains(text, key) {
				t.Errorf("%s holds the key of %s", place, id)
			}
		}
	}
}
