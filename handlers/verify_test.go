package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// overHTTP makes the rig's handlers reach its demo issuer through the
// webhook contract, as a worker does, under REKEY_ISSUER_VERIFY=mode with
// the store as the memory. A 404 read as "does not know" is asked again
// once, a millisecond later.
func (g *rig) overHTTP(t *testing.T, mode issuer.VerifyMode) {
	t.Helper()
	g.overHandler(t, mode, func(demo http.Handler) http.Handler { return demo })
}

// overHandler is overHTTP with front, given the demo issuer's handler,
// serving what reaches the issuer's URL.
func (g *rig) overHandler(t *testing.T, mode issuer.VerifyMode, front func(demo http.Handler) http.Handler) {
	t.Helper()
	key := secret.New("issuer-signing-secret")
	srv := httptest.NewServer(front(issuer.NewDemoServer(g.demo, key)))
	t.Cleanup(srv.Close)
	h, err := issuer.NewHTTP(srv.URL, key, issuer.WithVerify(mode, g.st), issuer.WithVerifyRechecks(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	g.deps.Issuer = h
}

// An issuer that never supported verify answers every verify with 404. It
// keeps rotating under auto, the default, and optional; under required the
// rotation fails before any push (verify:unknown_credential), the instance
// keeps its credential, and the minted one is discarded and its revocation
// scheduled at once.
func TestRotateWithAnIssuerThatNeverVerifies(t *testing.T) {
	t.Parallel()
	for _, mode := range issuer.VerifyModes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			g := newRig(t, issuer.WithoutVerify())
			g.overHTTP(t, mode)
			ctx := context.Background()
			before, _ := g.st.Instance(ctx, "inst-1")

			err := g.run(rotateTask(t, "inst-1", "rot_v"))
			rot, rerr := g.st.Rotation(ctx, "rot_v")
			if rerr != nil {
				t.Fatal(rerr)
			}
			// Under required the 404 is asked again before it fails the
			// rotation.
			if want := map[bool]int{false: 1, true: 2}[mode == issuer.VerifyRequired]; g.demo.Stats().VerifyCalls != want {
				t.Errorf("verify calls: %d, want %d", g.demo.Stats().VerifyCalls, want)
			}
			if mode != issuer.VerifyRequired {
				if err != nil || rot.State != store.RotationPromoted || g.fake.ConfigChanges("inst-1") != 1 {
					t.Fatalf("rotate = %v, rotation %s, %d config changes; want promoted with 1", err, rot.State, g.fake.ConfigChanges("inst-1"))
				}
				return
			}
			if !isPermanent(err) || rot.State != store.RotationFailed {
				t.Fatalf("rotate = %v, rotation %s; want a permanent failure", err, rot.State)
			}
			in, _ := g.st.Instance(ctx, "inst-1")
			if in.CurrentCredential != before.CurrentCredential || in.LastErrorCode != "verify:unknown_credential" ||
				!strings.Contains(in.LastError, "REKEY_ISSUER_VERIFY=required") {
				t.Errorf("instance: current %s (was %s), last error %q (%s); want it kept, verify:unknown_credential",
					in.CurrentCredential, before.CurrentCredential, in.LastError, in.LastErrorCode)
			}
			if n := g.fake.ConfigChanges("inst-1"); n != 0 {
				t.Errorf("%d config changes on Heroku, want none", n)
			}
			minted, err := g.st.Credential(ctx, "inst-1", rot.CredentialID)
			if err != nil || minted.State != store.CredentialDiscarded {
				t.Errorf("minted credential: %+v, %v; want discarded", minted, err)
			}
			if g.enq.get(tasks.RevokeTaskID("inst-1", rot.CredentialID)) == nil {
				t.Error("the discarded credential's revocation was not scheduled")
			}
		})
	}
}

// An issuer that verified the instance's first rotation, then answers 404
// for a credential it just minted (it lost it), fails the second rotation
// under auto before any push, the error saying when it last verified; the
// first rotation's credential stays current.
func TestRotateFailsWhenAVerifyingIssuerLosesTheCredential(t *testing.T) {
	t.Parallel()
	var lost atomic.Bool
	g := newRig(t, issuer.WithVerifyFault(func(string, string) error {
		if lost.Load() {
			return issuer.ErrVerifyUnsupported // served as a 404
		}
		return nil
	}))
	g.overHTTP(t, issuer.VerifyAuto)
	ctx := context.Background()
	if err := g.run(rotateTask(t, "inst-1", "rot_w1")); err != nil {
		t.Fatalf("first rotation: %v", err)
	}
	first, _ := g.st.Instance(ctx, "inst-1")

	lost.Store(true)
	err := g.run(rotateTask(t, "inst-1", "rot_w2"))
	rot, _ := g.st.Rotation(ctx, "rot_w2")
	if !isPermanent(err) || rot.State != store.RotationFailed {
		t.Fatalf("second rotation = %v, %s; want a permanent failure", err, rot.State)
	}
	in, _ := g.st.Instance(ctx, "inst-1")
	if in.CurrentCredential != first.CurrentCredential || g.configCredential(t, "inst-1") != first.CurrentCredential ||
		g.fake.ConfigChanges("inst-1") != 1 {
		t.Errorf("current %s, Heroku holds %s after %d config changes; want the first rotation's %s, 1 change",
			in.CurrentCredential, g.configCredential(t, "inst-1"), g.fake.ConfigChanges("inst-1"), first.CurrentCredential)
	}
	if in.LastErrorCode != "verify:unknown_credential" || !strings.Contains(in.LastError, "verified credentials before (last at ") ||
		!strings.HasSuffix(in.LastError, "for an issuer that dropped verify") {
		t.Errorf("last error %q (%s), want verify:unknown_credential, whole, saying when the issuer last verified", in.LastError, in.LastErrorCode)
	}
	if c, err := g.st.Credential(ctx, "inst-1", rot.CredentialID); err != nil || c.State != store.CredentialDiscarded ||
		g.enq.get(tasks.RevokeTaskID("inst-1", rot.CredentialID)) == nil {
		t.Errorf("minted credential %+v, %v; want discarded with its revocation scheduled", c, err)
	}
}

// An issuer that verifies, answering verify from a replica that has not
// yet seen the credential minted a moment before, answers 404 for it once:
// asked again, it knows it, and the rotation goes on to the push.
func TestRotateThroughAVerifyFromALaggingReplica(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	asked := map[string]int{}
	g := newRig(t, issuer.WithVerifyFault(func(_, credID string) error {
		mu.Lock()
		defer mu.Unlock()
		if asked[credID]++; asked[credID] == 1 && len(asked) > 1 {
			return issuer.ErrVerifyUnsupported // served as a 404
		}
		return nil
	}))
	g.overHTTP(t, issuer.VerifyAuto)
	ctx := context.Background()
	if err := g.run(rotateTask(t, "inst-1", "rot_l1")); err != nil {
		t.Fatalf("first rotation: %v", err)
	}
	if err := g.run(rotateTask(t, "inst-1", "rot_l2")); err != nil {
		t.Fatalf("rotation through a lagging replica: %v", err)
	}
	rot, _ := g.st.Rotation(ctx, "rot_l2")
	in, _ := g.st.Instance(ctx, "inst-1")
	if rot.State != store.RotationPromoted || in.CurrentCredential != rot.CredentialID ||
		g.configCredential(t, "inst-1") != rot.CredentialID || in.LastErrorCode != "" {
		t.Errorf("rotation %s, current %s, Heroku holds %s, last error %q; want %s promoted and pushed",
			rot.State, in.CurrentCredential, g.configCredential(t, "inst-1"), in.LastErrorCode, rot.CredentialID)
	}
	mu.Lock()
	defer mu.Unlock()
	if asked[rot.CredentialID] != 2 {
		t.Errorf("verify asked %d times about %s, want twice", asked[rot.CredentialID], rot.CredentialID)
	}
}

// A fingerprint key that no key of REKEY_ENCRYPTION_KEYS opens stops the
// rotation before the issuer mints anything: a credential minted then
// could not be saved (its config cannot be checked for reuse) and would be
// left working with nobody knowing of it. That is the worker's keys'
// fault, not the instance's: the rotation is retried, not failed, and the
// instance is not quarantined, so that a worker run with the wrong keys
// cannot set the whole fleet aside.
func TestRotateWithAnUnreadableFingerprintKeyMintsNothing(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	ctx := context.Background()
	if err := g.st.Redis().Set(ctx, "rekey:fingerprint_key", "sealed under a key that is gone", 0).Err(); err != nil {
		t.Fatal(err)
	}
	minted := g.demo.Stats().MintCalls // the rig's provisioning minted one
	for range 3 {
		err := g.run(rotateTask(t, "inst-1", "rot_f"))
		if err == nil || isPermanent(err) || !strings.Contains(err.Error(), "the fingerprint key (rekey:fingerprint_key) opens with no key") {
			t.Fatalf("rotate = %v, want a retry naming the fingerprint key", err)
		}
	}
	if in, err := g.st.Instance(ctx, "inst-1"); err != nil || in.Quarantined() || in.InFlight != "rot_f" {
		t.Errorf("instance quarantined %v, in flight %q (%v); want it left alone, its rotation waiting", in.Quarantined(), in.InFlight, err)
	}
	if n := g.demo.Stats().MintCalls - minted; n != 0 {
		t.Errorf("%d mint calls, want none", n)
	}
	if n := g.fake.ConfigChanges("inst-1"); n != 0 {
		t.Errorf("%d config changes on Heroku, want none", n)
	}
}

// mintAnswers puts the demo issuer behind a front that answers every mint
// with answer, as JSON; without verify, verify is answered 404 (an issuer
// that does not support it), so that nothing checks the id minted.
func (g *rig) mintAnswers(t *testing.T, answer string, verify bool) {
	t.Helper()
	mode := issuer.VerifyAuto
	if !verify {
		mode = issuer.VerifyOptional
	}
	g.overHandler(t, mode, func(demo http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case !verify && strings.HasSuffix(r.URL.Path, "/verify"):
				http.NotFound(w, r)
			case r.Method == http.MethodPost && r.URL.Path == "/credentials":
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, answer)
			default:
				demo.ServeHTTP(w, r)
			}
		})
	})
}

// A verify answered 2xx whose JSON body says the credential failed (an
// issuer that answers every call 200 and puts its error in the body) is no
// word that the credential works: pushed on it, the apps would get a
// credential the issuer says does not work. The rotation is retried, the
// instance keeps its credential, and nothing is pushed.
func TestRotateWithAVerifyAnswered2xxWithAnErrorBodyPushesNothing(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	var front atomic.Pointer[frontAnswer]
	front.Store(&frontAnswer{http.StatusOK, "application/json", `{"ok":false,"error":"invalid_credential"}`})
	g.overFront(t, issuer.VerifyAuto, http.MethodPost, "/verify", &front)
	ctx := context.Background()
	before, _ := g.st.Instance(ctx, "inst-1")

	err := g.run(rotateTask(t, "inst-1", "rot_e"))
	in, _ := g.st.Instance(ctx, "inst-1")
	if err == nil || g.fake.ConfigChanges("inst-1") != 0 || in.CurrentCredential != before.CurrentCredential {
		t.Fatalf("rotate = %v, %d config changes, current %s (was %s); want an error, nothing pushed",
			err, g.fake.ConfigChanges("inst-1"), in.CurrentCredential, before.CurrentCredential)
	}
}

// A verify answered 2xx with a body describing the credential as not
// revoked ("revoked": false, as an issuer that answers with the
// credential's state writes it) says it works: the rotation pushes. Only
// a DELETE's "revoked": false says the call failed.
func TestRotateWithAVerifyAnsweredNotRevokedPushes(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	var front atomic.Pointer[frontAnswer]
	front.Store(&frontAnswer{http.StatusOK, "application/json", `{"credential_id":"x","revoked":false,"errors":[]}`})
	g.overFront(t, issuer.VerifyAuto, http.MethodPost, "/verify", &front)
	if err := g.run(rotateTask(t, "inst-1", "rot_e")); err != nil || g.fake.ConfigChanges("inst-1") != 1 {
		t.Fatalf("rotate = %v, %d config changes; want it pushed once", err, g.fake.ConfigChanges("inst-1"))
	}
}
