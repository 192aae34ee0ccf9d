package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// An issuer that verified an instance's first rotation mints a credential
// for the second and loses it (never persisted it, answered from another
// replica): it answers that credential's verify with 404, which the
// contract also lets an issuer without verify answer. Under the default
// REKEY_ISSUER_VERIFY=auto the second rotation, run by another worker
// process that only shares Redis with the first, fails at its first run
// before any push (verify:unknown_credential), where it used to push a
// credential that does not work into the apps. The first rotation's
// credential stays current and working, the minted one is discarded and
// revoked, and no invariant breaks. The 404 is final only once the
// worker has asked again twice, a second and two seconds later: an issuer
// whose replica lags a moment behind answers one 404 and then knows the
// credential, and the third rotation, through such a replica, succeeds.
func TestAdversarialIssuerLosesAMintedCredential(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{})
	s := w.provision(1, sandbox.Mix{})[0]
	ctx := context.Background()
	adv := newAdversary(t, w)
	first := adv.startWorker(w, &errorLog{})
	w.waitBatch(w.rotate(s.ID).BatchID, 30*time.Second)
	current, err := w.store.Instance(ctx, s.ID)
	if err != nil || current.CurrentCredential == s.Provisioned || current.LastErrorCode != "" {
		t.Fatalf("after the first rotation: %+v, %v", current, err)
	}
	first.stop()
	if ttl := w.redis.Client.PTTL(ctx, "rekey:issuer_verified").Val(); ttl < 364*24*time.Hour {
		t.Fatalf("rekey:issuer_verified expires in %s after the issuer verified, want a year", ttl)
	}

	var lost atomic.Int64
	adv.set(func(rw http.ResponseWriter, r *http.Request, _ []byte) bool {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/verify") {
			return false
		}
		lost.Add(1)
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(rw, `{"error":"credential_not_found"}`)
		return true
	})
	adv.startWorker(w, &errorLog{})
	res := w.rotate(s.ID)
	rotID := res.Items[0].RotationID
	info := w.waitTask(tasks.QueueDefault, tasks.RotateTaskID(rotID), 30*time.Second)
	if info.State != asynq.TaskStateArchived || info.Retried != 0 || !strings.Contains(info.LastErr, "does not know") {
		t.Errorf("rotate task %s after %d retries (%q); want archived at its first run", info.State, info.Retried, info.LastErr)
	}
	if n, want := lost.Load(), int64(1+len(issuer.DefaultVerifyRechecks)); n != want {
		t.Errorf("%d verify requests for the lost credential, want %d", n, want)
	}
	rot, err := w.store.Rotation(ctx, rotID)
	if err != nil || rot.State != store.RotationFailed || rot.CredentialID == "" {
		t.Fatalf("rotation: %+v, %v; want failed, naming its minted credential", rot, err)
	}
	in, err := w.store.Instance(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if in.CurrentCredential != current.CurrentCredential || in.LastErrorCode != "verify:unknown_credential" ||
		!strings.Contains(in.LastError, "verified credentials before (last at ") ||
		!strings.Contains(in.LastError, "REKEY_ISSUER_VERIFY=optional") {
		t.Errorf("instance: current %s (want %s), last error %q (%s); want verify:unknown_credential saying when the issuer last verified",
			in.CurrentCredential, current.CurrentCredential, in.LastError, in.LastErrorCode)
	}
	if n := w.sb.Fake.ConfigChanges(s.ID); n != 1 {
		t.Errorf("%d config changes on Heroku, want the first rotation's alone", n)
	}
	if held, ok := w.sb.Demo.Lookup(w.sb.Fake.Config(s.ID)[issuer.DefaultConfigVar]); !ok || held != current.CurrentCredential ||
		!w.sb.Demo.Valid(held) {
		t.Errorf("Heroku holds %s (known %v, valid %v), want the working %s", held, ok, w.sb.Demo.Valid(held), current.CurrentCredential)
	}
	waitFor(t, 30*time.Second, "the lost credential's revocation", func() (bool, string) {
		c, err := w.store.Credential(ctx, s.ID, rot.CredentialID)
		return err == nil && c.Revoked() && !w.sb.Demo.Valid(rot.CredentialID),
			fmt.Sprintf("%+v, %v, valid at the issuer %v", c, err, w.sb.Demo.Valid(rot.CredentialID))
	})
	w.waitRevoked(30 * time.Second)

	// A replica that lags: the first verify of each credential is a 404,
	// later ones reach the issuer.
	asked := map[string]int{}
	var mu sync.Mutex
	adv.set(func(rw http.ResponseWriter, r *http.Request, _ []byte) bool {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/verify") {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if asked[r.URL.Path]++; asked[r.URL.Path] > 1 {
			return false
		}
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(rw, `{"error":"credential_not_found"}`)
		return true
	})
	w.waitBatch(w.rotate(s.ID).BatchID, 30*time.Second)
	in, err = w.store.Instance(ctx, s.ID)
	if err != nil || in.CurrentCredential == current.CurrentCredential || in.LastErrorCode != "" {
		t.Fatalf("after the rotation through a lagging replica: %+v, %v; want a new current credential", in, err)
	}
	mu.Lock()
	n := 0
	for path, k := range asked {
		if strings.HasSuffix(path, "/credentials/"+in.CurrentCredential+"/verify") {
			n += k
		}
	}
	if n != 2 {
		t.Errorf("%d verify requests for %s through the lagging replica (%v), want 2", n, in.CurrentCredential, asked)
	}
	mu.Unlock()
	if held, ok := w.sb.Demo.Lookup(w.sb.Fake.Config(s.ID)[issuer.DefaultConfigVar]); !ok || held != in.CurrentCredential {
		t.Errorf("Heroku holds %s (known %v), want %s", held, ok, in.CurrentCredential)
	}
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("invariant violations: %v", v)
	}
}
