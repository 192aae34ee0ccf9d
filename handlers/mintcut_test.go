package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// cutMints answers the first cuts mints of the rig's issuer, over the
// webhook contract, with the demo's answer as a 200 that names its
// credential first and whose connection breaks inside the config, the
// terminating chunk never sent: the credential id read, the config not.
// The mints after them are answered whole. It returns the ids the cut
// answers named.
func cutMints(t *testing.T, g *rig, cuts int32) (named *atomic.Value, mints *atomic.Int32) {
	return cutMintsAt(t, g, cuts, false)
}

// cutMintsAt is cutMints, the answer cut after its whole JSON when whole
// (only the terminating chunk missing).
func cutMintsAt(t *testing.T, g *rig, cuts int32, whole bool) (named *atomic.Value, mints *atomic.Int32) {
	t.Helper()
	named, mints = &atomic.Value{}, &atomic.Int32{}
	g.overHandler(t, issuer.VerifyAuto, func(demo http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || r.URL.Path != "/credentials" || mints.Add(1) > cuts {
				demo.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			demo.ServeHTTP(rec, r)
			var answer struct {
				ID     string            `json:"credential_id"`
				Config map[string]string `json:"config"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil || answer.ID == "" {
				t.Errorf("the issuer's mint answered %d %v", rec.Code, err)
			}
			named.Store(answer.ID)
			id, _ := json.Marshal(answer.ID)
			config, _ := json.Marshal(answer.Config)
			body := `{"credential_id":` + string(id) + `,"config":` + string(config[:len(config)/2])
			if whole {
				body = `{"credential_id":` + string(id) + `,"config":` + string(config) + "}\n"
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(body))
			w.(http.Flusher).Flush()
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = conn.Close() // no terminating chunk
			}
		})
	})
	return named, mints
}

// runUnderAsynq runs task on a real asynq server on the rig's Redis, its
// retries at once, and waits until its rotation finished.
func runUnderAsynq(t *testing.T, g *rig, task *asynq.Task, rotationID string, opts ...asynq.Option) store.Rotation {
	t.Helper()
	srv := asynq.NewServerFromRedisClient(g.rdb, asynq.Config{Concurrency: 1, IsFailure: retry.IsFailure,
		Queues:         map[string]int{tasks.QueueDefault: 1},
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return 10 * time.Millisecond },
		LogLevel:       asynq.FatalLevel, DelayedTaskCheckInterval: 50 * time.Millisecond, TaskCheckInterval: 50 * time.Millisecond})
	if err := srv.Start(g.mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	if _, err := asynq.NewClientFromRedisClient(g.rdb).Enqueue(task, opts...); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		rot, err := g.st.Rotation(context.Background(), rotationID)
		if err == nil && (rot.State == store.RotationPromoted || rot.State == store.RotationFailed) {
			return rot
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotation %s not finished: %+v, %v", rotationID, rot, err)
		}
	}
}

// TestAMintAnswerCutInsideItsConfigIsMintedAgain: the issuer mints and its
// 200 breaks off inside the config, after the credential id (a connection
// reset, a proxy restarting). The id cannot be checked for holding a
// secret of the config (I5), so it cannot be recorded; the rotation
// failed for good at once, the credential left live for the operator to
// revoke by hand (I3), for a passing network fault. The task is retried
// instead: its next mint, keyed by the same rotation (I6), is answered the
// same credential whole, which is saved, pushed and promoted. Only when
// the retries run out does the rotation end saying to revoke it at the
// issuer.
func TestAMintAnswerCutInsideItsConfigIsMintedAgain(t *testing.T) {
	t.Parallel()
	t.Run("answered whole at the retry", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		g := newRig(t)
		named, mints := cutMints(t, g, 1)
		rot := runUnderAsynq(t, g, rotateTask(t, "inst-1", "rot-cut"), "rot-cut")
		id, _ := named.Load().(string)
		if rot.State != store.RotationPromoted {
			in, _ := g.st.Instance(ctx, "inst-1")
			t.Fatalf("rotation %s (%s: %s), want promoted with the credential minted again", rot.State, in.LastErrorCode, in.LastError)
		}
		if id == "" || rot.CredentialID != id || g.configCredential(t, "inst-1") != id {
			t.Errorf("promoted %q, config holds %q; want the credential the cut answer named, %q",
				rot.CredentialID, g.configCredential(t, "inst-1"), id)
		}
		if n := mints.Load(); n != 2 {
			t.Errorf("%d mints, want 2", n)
		}
	})
	t.Run("cut until the retries run out", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		g := newRig(t)
		named, mints := cutMints(t, g, 100)
		before := g.fake.Config("inst-1")[issuer.DefaultConfigVar]
		rot := runUnderAsynq(t, g, rotateTask(t, "inst-1", "rot-cut"), "rot-cut", asynq.MaxRetry(2))
		in, _ := g.st.Instance(ctx, "inst-1")
		if rot.State != store.RotationFailed || in.LastErrorCode != "mint:unchecked_credential_id" ||
			!strings.Contains(in.LastError, "revoke it at the issuer") {
			t.Fatalf("rotation %s (%s: %s), want failed saying to revoke the credential at the issuer",
				rot.State, in.LastErrorCode, in.LastError)
		}
		if n := mints.Load(); n != 3 {
			t.Errorf("%d mints, want 3: the first run and its 2 retries", n)
		}
		if id, _ := named.Load().(string); id == "" || strings.Contains(in.LastError, id) {
			t.Errorf("the failure names the credential %q: %s", id, in.LastError)
		}
		if got := g.fake.Config("inst-1")[issuer.DefaultConfigVar]; !bytes.Equal([]byte(got), []byte(before)) {
			t.Error("the add-on's config changed")
		}
	})
}

// TestAMintAnswerWholeThenCutIsUsed: the issuer's mint answer arrived
// whole and its connection closed before the chunked body's last chunk.
// The answer was taken for one broken off: its good credential discarded
// and revoked, the rotation failed for good. Its whole JSON is the answer:
// the credential is saved, pushed and promoted on the first run.
func TestAMintAnswerWholeThenCutIsUsed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	named, _ := cutMintsAt(t, g, 1, true)
	err := g.run(rotateTask(t, "inst-1", "rot-whole"))
	rot, _ := g.st.Rotation(ctx, "rot-whole")
	id, _ := named.Load().(string)
	if err != nil || rot.State != store.RotationPromoted || id == "" || rot.CredentialID != id || g.configCredential(t, "inst-1") != id {
		in, _ := g.st.Instance(ctx, "inst-1")
		t.Fatalf("run = %v, rotation %s with %q (%s); want promoted with %q", err, rot.State, rot.CredentialID, in.LastErrorCode, id)
	}
	if !g.demo.Valid(id) {
		t.Errorf("credential %s revoked", id)
	}
}
