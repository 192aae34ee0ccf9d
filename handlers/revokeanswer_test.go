package handlers_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/store"
)

// frontAnswer is what stands in front of the issuer answers instead of it.
type frontAnswer struct {
	status      int
	contentType string
	body        string
}

// overFront makes the rig's handlers reach its demo issuer over HTTP, under
// REKEY_ISSUER_VERIFY=mode with the store as the memory, through a front
// (a proxy, the issuer app's own router) that answers every request of
// method whose path ends in suffix itself while answer holds one, as it
// would once a deploy dropped the issuer's routes.
func (g *rig) overFront(t *testing.T, mode issuer.VerifyMode, method, suffix string, answer *atomic.Pointer[frontAnswer]) {
	t.Helper()
	g.overHandler(t, mode, func(demo http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a := answer.Load()
			if a == nil || r.Method != method || !strings.HasSuffix(r.URL.Path, suffix) {
				demo.ServeHTTP(w, r)
				return
			}
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", a.contentType)
			w.WriteHeader(a.status)
			_, _ = io.WriteString(w, a.body)
		})
	})
}

// A DELETE answered 200 with a page never reached the issuer's handler: a
// catch-all route (a single-page app's index, served for every path and
// method) or a proxy's sign-in page answered it. It says nothing of the
// credential, so it is retried, and the old credential keeps waiting for
// its revocation (I3) instead of being recorded revoked while the issuer
// still accepts it. Once the issuer answers again, the revocation happens.
func TestRevokeAnswered2xxWithAPageIsRetried(t *testing.T) {
	t.Parallel()
	const page = "<!DOCTYPE html>\n<html><head><title>Acme</title></head><body><div id=\"root\"></div></body></html>"
	for name, answer := range map[string]frontAnswer{
		"catch-all route's page":  {http.StatusOK, "text/html; charset=utf-8", page},
		"proxy's unlabelled page": {http.StatusOK, "", page},
		"xhtml page":              {http.StatusAccepted, "application/xhtml+xml", page},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			revokeThroughFront(t, answer)
		})
	}
}

// revokeThroughFront rotates the rig's instance, lets the grace pass, and
// runs the old credential's revocation while a front answers every DELETE
// with answer: it must be retried, the credential kept previous and valid;
// then the issuer answers, and it is revoked.
func revokeThroughFront(t *testing.T, answer frontAnswer) {
	t.Helper()
	g := newRig(t)
	var front atomic.Pointer[frontAnswer]
	g.overFront(t, issuer.VerifyAuto, http.MethodDelete, "", &front)
	ctx := context.Background()
	old, revoke := g.rotatedPastGrace(t, "rot_f")

	front.Store(&answer)
	err := g.run(revoke)
	c, _ := g.st.Credential(ctx, "inst-1", old)
	if err == nil || isPermanent(err) || c.State != store.CredentialPrevious {
		t.Fatalf("revoke answered by the front = %v, credential %s; want a retried error, previous", err, c.State)
	}
	if !g.demo.Valid(old) {
		t.Fatal("the front revoked the credential")
	}
	if n, _ := g.st.PendingRevocations(ctx); n != 1 {
		t.Errorf("pending revocations: %d, want 1", n)
	}

	front.Store(nil)
	if err := g.run(revoke); err != nil {
		t.Fatalf("revoke answered by the issuer: %v", err)
	}
	c, _ = g.st.Credential(ctx, "inst-1", old)
	if g.demo.Valid(c.ID) || c.State != store.CredentialRevoked {
		t.Errorf("after the issuer answered: valid %v, state %s; want revoked", g.demo.Valid(c.ID), c.State)
	}
}

// Rails, Spring Boot and Phoenix answer a path they have no route for with
// JSON of their own when the request asks for JSON, as rekey's does
// (Accept: application/json): an issuer app whose routes a deploy dropped
// or moved answers every DELETE so. Such a 404 is the framework's, not the
// issuer's word that the credential is gone: it is retried like a 404
// page, and the credential keeps waiting for its revocation (I3).
func TestRevokeAnswered404WithAFrameworksJSONIsRetried(t *testing.T) {
	t.Parallel()
	for name, answer := range map[string]frontAnswer{
		"rails": {http.StatusNotFound, "application/json; charset=utf-8", `{"status":404,"error":"Not Found"}`},
		"spring boot": {http.StatusNotFound, "application/json",
			`{"timestamp":"2026-03-01T12:00:00.000+00:00","status":404,"error":"Not Found","path":"/credentials/x"}`},
		"phoenix": {http.StatusNotFound, "application/json; charset=utf-8", `{"errors":{"detail":"Not Found"}}`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			revokeThroughFront(t, answer)
		})
	}
}

// An issuer that answers verify (it did for the instance's first rotation)
// has its verify route answered by a catch-all's 200 page after a deploy,
// for a credential it may have lost. The page is no word of the issuer's on the
// credential, as a 404 page is not: the rotation is retried before any
// push, never pushing a credential nobody verified into the apps.
func TestVerifyAnswered2xxWithAPageByAVerifyingIssuerIsRetried(t *testing.T) {
	t.Parallel()
	const page = "<!DOCTYPE html>\n<html><head><title>Acme</title></head><body><div id=\"root\"></div></body></html>"
	for _, mode := range []issuer.VerifyMode{issuer.VerifyAuto, issuer.VerifyRequired} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			g := newRig(t)
			var front atomic.Pointer[frontAnswer]
			g.overFront(t, mode, http.MethodPost, "/verify", &front)
			ctx := context.Background()
			if err := g.run(rotateTask(t, "inst-1", "rot_p1")); err != nil {
				t.Fatalf("first rotation: %v", err)
			}
			first, _ := g.st.Instance(ctx, "inst-1")

			front.Store(&frontAnswer{http.StatusOK, "text/html; charset=utf-8", page})
			err := g.run(rotateTask(t, "inst-1", "rot_p2"))
			rot, _ := g.st.Rotation(ctx, "rot_p2")
			if err == nil || isPermanent(err) || rot.State == store.RotationPromoted {
				t.Fatalf("rotation with verify answered by a page = %v, %s; want retried", err, rot.State)
			}
			if n := g.fake.ConfigChanges("inst-1"); n != 1 || g.configCredential(t, "inst-1") != first.CurrentCredential {
				t.Fatalf("%d config changes, Heroku holds %s; want only the first rotation's %s",
					n, g.configCredential(t, "inst-1"), first.CurrentCredential)
			}

			front.Store(nil)
			if err := g.run(rotateTask(t, "inst-1", "rot_p2")); err != nil {
				t.Fatalf("rotation once the issuer verifies again: %v", err)
			}
			if rot, _ = g.st.Rotation(ctx, "rot_p2"); rot.State != store.RotationPromoted {
				t.Errorf("rotation %s, want promoted", rot.State)
			}
		})
	}
}

// A DELETE answered 2xx whose JSON body says it failed (an issuer, or a
// gateway in front of it, that answers every call 200 and puts its error
// in the body, as Slack-style APIs do) did not revoke the credential:
// recorded revoked, it would stay valid at the issuer with nobody told
// (I3). It is retried like a 2xx page, and revoked once the issuer
// answers plainly.
func TestRevokeAnswered2xxWithAnErrorBodyIsRetried(t *testing.T) {
	t.Parallel()
	for name, answer := range map[string]frontAnswer{
		"ok false":      {http.StatusOK, "application/json", `{"ok":false,"error":"credential_locked"}`},
		"error object":  {http.StatusOK, "application/json", `{"error":{"code":"internal","message":"try again"}}`},
		"revoked false": {http.StatusAccepted, "application/json", `{"revoked":false}`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			revokeThroughFront(t, answer)
		})
	}
}

// A DELETE answered 401 refuses rekey's signature, not the credential: a
// REKEY_ISSUER_SECRET changed at the issuer and not in rekey (or the other
// way round) answers every revocation of the fleet so. Set aside as dead,
// each waited for an operator's retry; it is retried, the credential kept
// previous, and revoked once the issuer takes rekey's signature again.
func TestRevokeAnswered401IsRetried(t *testing.T) {
	t.Parallel()
	revokeThroughFront(t, frontAnswer{http.StatusUnauthorized, "application/json", `{"error":"bad_signature"}`})
}
