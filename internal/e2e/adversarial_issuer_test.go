package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// adversary is an issuer over real HTTP: the sandbox's demo issuer served
// with the webhook contract and its signature checks, behind a front that
// records every request and, when told, answers in its place.
type adversary struct {
	t       *testing.T
	backend http.Handler
	url     string

	mu        sync.Mutex
	misbehave func(w http.ResponseWriter, r *http.Request, body []byte) bool
	requests  []capturedRequest
}

// capturedRequest is a request as an eavesdropper on the way would see it.
type capturedRequest struct {
	method, path, signature string
	body                    []byte
	status                  int // the demo's answer; 0 when the adversary answered
}

func newAdversary(t *testing.T, w *world, opts ...issuer.DemoServerOption) *adversary {
	t.Helper()
	a := &adversary{t: t, backend: issuer.NewDemoServer(w.sb.Demo, w.cfg.IssuerSecret, opts...)}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	a.url = srv.URL
	return a
}

func (a *adversary) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	a.mu.Lock()
	misbehave := a.misbehave
	a.mu.Unlock()
	req := capturedRequest{method: r.Method, path: r.URL.EscapedPath(), signature: r.Header.Get(issuer.SignatureHeader), body: body}
	if misbehave == nil || !misbehave(w, r, body) {
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		a.backend.ServeHTTP(rec, r)
		req.status = rec.Code
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}
	a.mu.Lock()
	a.requests = append(a.requests, req)
	a.mu.Unlock()
}

// set replaces the misbehaviour; nil makes the adversary a faithful issuer.
func (a *adversary) set(f func(w http.ResponseWriter, r *http.Request, body []byte) bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.misbehave = f
}

func (a *adversary) captured() []capturedRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]capturedRequest(nil), a.requests...)
}

// startWorker runs the worker with rekey's own HTTP issuer pointed at the
// adversary, built from the world's configuration as a worker builds it;
// every error the issuer client returns is kept in errs.
func (a *adversary) startWorker(w *world, errs *errorLog) *runningWorker {
	return w.startWorker(workerParams{retryDelay: fastRetry, sweep: true,
		wrapIssuer: func(issuer.Issuer) issuer.Issuer {
			h, err := issuer.NewHTTP(a.url, w.cfg.IssuerSecret, w.cfg.IssuerOptions(w.store)...)
			if err != nil {
				a.t.Fatal(err)
			}
			return &recordingIssuer{Issuer: h, log: errs}
		}})
}

// recordingIssuer keeps every error its issuer returns.
type recordingIssuer struct {
	issuer.Issuer
	log *errorLog
}

func (r *recordingIssuer) Mint(ctx context.Context, instanceID, rotationID string) (issuer.Credential, error) {
	c, err := r.Issuer.Mint(ctx, instanceID, rotationID)
	return c, r.log.add(err)
}

func (r *recordingIssuer) Verify(ctx context.Context, instanceID, credentialID string) error {
	return r.log.add(r.Issuer.Verify(ctx, instanceID, credentialID))
}

func (r *recordingIssuer) Revoke(ctx context.Context, instanceID, credentialID string) error {
	return r.log.add(r.Issuer.Revoke(ctx, instanceID, credentialID))
}

// errorLog is a list of errors safe for concurrent use.
type errorLog struct {
	mu   sync.Mutex
	errs []string
}

func (l *errorLog) add(err error) error {
	if err != nil {
		l.mu.Lock()
		l.errs = append(l.errs, fmt.Sprintf("%v | %+v | %#v", err, err, err))
		l.mu.Unlock()
	}
	return err
}

func (l *errorLog) all() []string {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errs...)
}

// refusedRevocations rotates a fresh instance while the adversary answers
// every DELETE with answer, and checks that none is taken for a
// revocation: the old credential keeps working and stays due, and its
// revoke task retries with an error holding wantErr. Then the issuer
// answers properly again and the credential is really revoked (I3), after
// its grace (I2). It returns how many DELETEs answer got and how often the
// revoke task was retried.
func refusedRevocations(t *testing.T, answer func(rw http.ResponseWriter, r *http.Request), wantErr string) (int64, int) {
	t.Helper()
	w := newWorld(t, worldParams{})
	s := w.provision(1, sandbox.Mix{})[0]
	adv := newAdversary(t, w)
	var answered atomic.Int64
	adv.set(func(rw http.ResponseWriter, r *http.Request, _ []byte) bool {
		if r.Method != http.MethodDelete {
			return false
		}
		answered.Add(1)
		answer(rw, r)
		return true
	})
	errs := &errorLog{}
	adv.startWorker(w, errs)

	res := w.rotate(s.ID)
	info := w.waitTask(tasks.QueueDefault, tasks.RotateTaskID(res.Items[0].RotationID), 30*time.Second)
	if info.State != asynq.TaskStateCompleted {
		t.Fatalf("rotation %s: %s", info.State, info.LastErr)
	}
	waitFor(t, 30*time.Second, "refused revocations", func() (bool, string) {
		return answered.Load() >= 3, fmt.Sprintf("%d DELETEs answered", answered.Load())
	})
	old, err := w.store.Credential(context.Background(), s.ID, s.Provisioned)
	if err != nil || old.Revoked() {
		t.Errorf("an answer that is no revocation was taken for one: %+v, %v", old, err)
	}
	if !w.sb.Demo.Valid(s.Provisioned) {
		t.Error("the old credential stopped working while no DELETE reached the issuer")
	}
	revoke, err := w.insp.GetTaskInfo(tasks.QueueRevoke, tasks.RevokeTaskID(s.ID, s.Provisioned))
	if err != nil || !strings.Contains(revoke.LastErr, wantErr) {
		t.Errorf("revoke task meanwhile: %+v, %v; want a retried %q error", revoke, err, wantErr)
	}
	for _, e := range errs.all() {
		if strings.Contains(e, "nothing here") {
			t.Errorf("the answer's text reached an error: %s", e)
		}
	}

	adv.set(nil)
	w.waitRevoked(30 * time.Second)
	checkRotated(t, w, s)
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("invariant violations: %v", v)
	}
	return answered.Load(), revoke.Retried
}

// A 302 on DELETE /credentials/{id}, pointing at another server, is never
// followed: that server receives nothing, and the revocation is retried
// until the issuer answers properly (refusedRevocations).
func TestAdversarialIssuerRedirectOnRevoke(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		elsewhere.Add(1)
		rw.WriteHeader(http.StatusOK) // what a naive client would take for "revoked"
	}))
	t.Cleanup(target.Close)
	n, retried := refusedRevocations(t, func(rw http.ResponseWriter, r *http.Request) {
		http.Redirect(rw, r, target.URL+r.URL.Path, http.StatusFound)
	}, "status 302 ("+issuer.CodeRedirect+")")
	if got := elsewhere.Load(); got != 0 {
		t.Errorf("the redirect target received %d requests", got)
	}
	t.Logf("%d DELETEs redirected and retried, none followed; revoked once the issuer answered; revoke task retried %d times",
		n, retried)
}

// Heroku's router answers every DELETE with its HTML "no such app" 404
// page (a route of the issuer's app renamed). None is taken for a
// revocation; the issuer's verify, still answering, says why (the
// credential works), and the revocation is retried until the issuer
// answers again (refusedRevocations).
func TestAdversarialIssuerNotFoundPageOnRevoke(t *testing.T) {
	t.Parallel()
	n, _ := refusedRevocations(t, func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		rw.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(rw, "<!DOCTYPE html><html><head><title>No such app</title></head>"+
			"<body><h1>There is nothing here, yet.</h1></body></html>")
	}, "status 404 ("+issuer.CodeStillWorks+")")
	t.Logf("%d DELETEs answered with a 404 page and retried; revoked once the issuer answered", n)
}

// A deploy drops the issuer's DELETE route, so the API gateway in front of
// it answers every revocation with its own JSON 404 for an unrouted path,
// or a catch-all route answers 200 with the app's index page saved with a
// byte-order mark: neither reached the issuer. The issuer's verify, still
// routed, says the old credential works, so no such answer is taken for a
// revocation; each is retried until the route is back (refusedRevocations).
func TestAdversarialIssuerUnroutedDeleteOnRevoke(t *testing.T) {
	t.Parallel()
	for name, answer := range map[string]struct {
		status   int
		ct, body string
	}{
		"gateway 404": {http.StatusNotFound, "application/json", `{"message":"Not Found"}`},
		"index page":  {http.StatusOK, "text/html", "\ufeff<!DOCTYPE html><html><head><title>App</title></head><body>nothing here</body></html>"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			n, _ := refusedRevocations(t, func(rw http.ResponseWriter, _ *http.Request) {
				rw.Header().Set("Content-Type", answer.ct)
				rw.WriteHeader(answer.status)
				_, _ = io.WriteString(rw, answer.body)
			}, "("+issuer.CodeStillWorks+")")
			t.Logf("%d DELETEs answered by something other than the issuer and retried; revoked once the route was back", n)
		})
	}
}

// A firewall in front of the issuer (an allowlist that lost the workers'
// addresses) answers every DELETE with its 403 block page. That is no
// refusal of the issuer's: the revocation is not set aside as dead for an
// operator, but retried until the firewall lets it through
// (refusedRevocations).
func TestAdversarialIssuerFirewallPageOnRevoke(t *testing.T) {
	t.Parallel()
	n, _ := refusedRevocations(t, func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/html")
		rw.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(rw, "<!DOCTYPE html><html><head><title>Access denied</title></head>"+
			"<body><h1>Request blocked: there is nothing here for your address.</h1></body></html>")
	}, "status 403 ("+issuer.CodePageAnswer+")")
	t.Logf("%d DELETEs answered with a firewall's 403 page and retried; revoked once it let them through", n)
}

// An issuer written before v2, checking v1 signatures only, still mints,
// verifies and revokes through a whole rotation.
func TestAdversarialIssuerV1Only(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{})
	s := w.provision(1, sandbox.Mix{})[0]
	adv := newAdversary(t, w, issuer.WithV1Signatures())
	errs := &errorLog{}
	adv.startWorker(w, errs)

	w.waitBatch(w.rotate(s.ID).BatchID, 30*time.Second)
	w.waitRevoked(30 * time.Second)
	checkRotated(t, w, s)
	seen := map[string]int{}
	for _, r := range adv.captured() {
		if r.status == http.StatusUnauthorized || r.status == http.StatusBadRequest {
			t.Errorf("the v1 issuer refused %s %s: %d", r.method, r.path, r.status)
		}
		if issuer.VerifySignature(w.cfg.IssuerSecret, r.signature, r.body, time.Now(), 0) != nil {
			t.Errorf("%s %s carries no valid v1 signature", r.method, r.path)
		}
		seen[webhookOp(r)]++
	}
	for _, want := range []string{"mint", "verify", "revoke"} {
		if seen[want] == 0 {
			t.Errorf("the v1 issuer never saw %s; saw %v", want, seen)
		}
	}
	if e := errs.all(); len(e) != 0 {
		t.Errorf("issuer errors with a v1 issuer: %v", e)
	}
}

// webhookOp names the contract's operation a request is for.
func webhookOp(r capturedRequest) string {
	switch {
	case r.method == http.MethodPost && r.path == "/credentials":
		return "mint"
	case r.method == http.MethodPost && strings.HasSuffix(r.path, "/verify"):
		return "verify"
	case r.method == http.MethodDelete:
		return "revoke"
	}
	return "other"
}

// A verify request captured on the way, its signature replayed on a DELETE
// of a credential of the same instance, revokes nothing: the v2 issuer
// refuses it, although its v1 signature is valid for the body.
func TestAdversarialIssuerReplayedVerifySignature(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{})
	s := w.provision(1, sandbox.Mix{})[0]
	adv := newAdversary(t, w)
	adv.startWorker(w, &errorLog{})
	// A long grace keeps the provisioning credential live while the replay
	// runs; the test is not about its revocation.
	res, err := fleet.NewProducer(w.store, w.queue).Rotate(context.Background(),
		fleet.Request{InstanceIDs: []string{s.ID}, Reason: "e2e", Queue: tasks.QueueDefault, Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	w.waitBatch(res.BatchID, 30*time.Second)
	in, err := w.store.Instance(context.Background(), s.ID)
	if err != nil || in.CurrentCredential == "" || in.CurrentCredential == s.Provisioned {
		t.Fatalf("instance after the rotation: %+v, %v", in, err)
	}
	verify := findRequest(t, adv, http.MethodPost, "/credentials/"+in.CurrentCredential+"/verify")
	if err := issuer.VerifySignatureV2(w.cfg.IssuerSecret, verify.signature, verify.method, verify.path, verify.body, time.Now(), 0); err != nil {
		t.Fatalf("the captured verify request itself carries no valid v2 signature: %v", err)
	}

	for _, id := range []string{in.CurrentCredential, s.Provisioned} {
		if !w.sb.Demo.Valid(id) {
			t.Fatalf("credential %s is not live before the replay", id)
		}
		req, _ := http.NewRequest(http.MethodDelete, adv.url+"/credentials/"+id, bytes.NewReader(verify.body))
		req.Header.Set(issuer.SignatureHeader, verify.signature)
		resp, err := ownClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("replayed verify signature on DELETE %s: status %d, want 401", id, resp.StatusCode)
		}
		if !w.sb.Demo.Valid(id) {
			t.Errorf("the replay revoked %s", id)
		}
	}
	// Only v2 stops the replay on the verified credential itself: its v1
	// signature covers the body, which is the same.
	if err := issuer.VerifySignature(w.cfg.IssuerSecret, verify.signature, verify.body, time.Now(), 0); err != nil {
		t.Errorf("the captured v1 signature should still match the replayed body: %v", err)
	}
	if c, err := w.store.Credential(context.Background(), s.ID, in.CurrentCredential); err != nil || c.State != store.CredentialCurrent {
		t.Errorf("current credential after the replay: %+v, %v", c, err)
	}
	if v := w.sb.Checker.Violations(); len(v) > 0 {
		t.Errorf("invariant violations: %v", v)
	}
}

func findRequest(t *testing.T, a *adversary, method, path string) capturedRequest {
	t.Helper()
	for _, r := range a.captured() {
		if r.method == method && r.path == path {
			return r
		}
	}
	t.Fatalf("the issuer never received %s %s", method, path)
	return capturedRequest{}
}

// An issuer whose error answers echo a live credential value, in every
// field and as plain text, gets its errors retried and the rotation done;
// the value appears in no error the issuer client returns, in the tasks'
// last errors, nor in the worker's log.
func TestAdversarialIssuerEchoesCredentialInErrors(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{})
	s := w.provision(1, sandbox.Mix{})[0]
	live := w.sb.Fake.Config(s.ID)[issuer.DefaultConfigVar]
	if id, ok := w.sb.Demo.Lookup(live); !ok || id != s.Provisioned {
		t.Fatalf("Heroku's config holds %q, not the provisioning credential", live)
	}
	adv := newAdversary(t, w)
	// Each operation's first answers echo the value, then the issuer
	// behaves, so the rotation can finish.
	echoes := map[string]int{"mint": 2, "verify": 1, "revoke": 2}
	var mu sync.Mutex
	adv.set(func(rw http.ResponseWriter, r *http.Request, body []byte) bool {
		op := webhookOp(capturedRequest{method: r.Method, path: r.URL.EscapedPath()})
		mu.Lock()
		left := echoes[op]
		echoes[op]--
		mu.Unlock()
		if left <= 0 {
			return false
		}
		rw.Header().Set("Content-Type", "application/json")
		if left%2 == 0 {
			rw.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(rw, "database unreachable while checking "+live)
			return true
		}
		rw.WriteHeader(http.StatusInternalServerError)
		_ = json.NewEncoder(rw).Encode(map[string]string{"error": live, "code": live, "message": "cannot reach " + live})
		return true
	})
	errs := &errorLog{}
	rw := adv.startWorker(w, errs)

	res := w.rotate(s.ID)
	info := w.waitTask(tasks.QueueDefault, tasks.RotateTaskID(res.Items[0].RotationID), 60*time.Second)
	w.waitRevoked(30 * time.Second)
	checkRotated(t, w, s)
	got := errs.all()
	for _, op := range []string{"mint", "verify", "revoke"} {
		if !strings.Contains(strings.Join(got, "\n"), "issuer "+op+": status 50") {
			t.Errorf("no echoed %s answer reached the issuer client: %v", op, got)
		}
	}
	for _, e := range got {
		if strings.Contains(e, live) || strings.Contains(e, "unreachable") {
			t.Errorf("issuer error leaks the issuer's text: %s", e)
		}
	}
	for _, task := range w.allTasks() {
		if strings.Contains(task.LastErr, live) {
			t.Errorf("task %s's last error leaks the credential: %s", task.ID, task.LastErr)
		}
	}
	if strings.Contains(rw.log.String(), live) {
		t.Error("the worker log holds the echoed credential value")
	}
	t.Logf("rotation retried %d times; issuer errors: %v", info.Retried, got)
}
