package metrics_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/internal/secret"
)

// The recorder is what the workers give handlers as their Observer.
var _ handlers.IssuerObserver = (*metrics.Recorder)(nil)

// An SRE tells the issuer's trouble from Heroku's: each call the webhook
// issuer makes, over real HTTP, is counted by how it ended, a 5xx or a
// timeout as failed, a 4xx the contract takes as final as refused, an
// answer that works or says "unsupported" as ok.
func TestIssuerCallsAreCountedByHowTheyEnded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, _, st := newStateStore(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch {
		case req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/verify"):
			w.WriteHeader(http.StatusNotFound) // verify not supported
		case req.Method == http.MethodPost && strings.Contains(req.URL.Path, "rot-503"):
			w.WriteHeader(http.StatusServiceUnavailable)
		case req.Method == http.MethodDelete:
			w.WriteHeader(http.StatusUnprocessableEntity)
		default:
			http.Error(w, "no", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	iss, err := issuer.NewHTTP(srv.URL, secret.New("issuer-secret"))
	if err != nil {
		t.Fatal(err)
	}
	rec := metrics.NewRecorder(st, nil, zerolog.Nop())
	_, err = iss.Mint(ctx, "inst-1", "rot-503")
	rec.IssuerCall(issuer.OpMint, err)
	rec.IssuerCall(issuer.OpVerify, iss.Verify(ctx, "inst-1", "cred-1"))
	rec.IssuerCall(issuer.OpRevoke, iss.Revoke(ctx, "inst-1", "cred-0"))
	rec.Flush(ctx)

	got := scrape(t, metrics.NewCollector(st, asynq.NewInspectorFromRedisClient(r.Client), zerolog.Nop()).Handler())
	for series, want := range map[string]float64{
		`rekey_issuer_calls_total{op="mint",outcome="failed"}`:    1,
		`rekey_issuer_calls_total{op="mint",outcome="ok"}`:        0,
		`rekey_issuer_calls_total{op="verify",outcome="ok"}`:      1,
		`rekey_issuer_calls_total{op="revoke",outcome="refused"}`: 1,
		`rekey_issuer_calls_total{op="usage",outcome="failed"}`:   0,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (served %v), want %v", series, v, ok, want)
		}
	}
}

// A mint answered 200 that names a credential without a config rekey can
// use (issuer.UnusableCredentialError) ends the rotation for good, its
// credential discarded and revoked: the issuer's answer is taken as final,
// refused, not a failure the rotation retries.
func TestAnUnusableMintIsCountedRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, _, st := newStateStore(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"credential_id":"cred-9"}`)) // no config
	}))
	t.Cleanup(srv.Close)
	iss, err := issuer.NewHTTP(srv.URL, secret.New("issuer-secret"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = iss.Mint(ctx, "inst-1", "rot-1")
	var unusable *issuer.UnusableCredentialError
	if !errors.As(err, &unusable) {
		t.Fatalf("mint: %v, want an unusable credential", err)
	}
	rec := metrics.NewRecorder(st, nil, zerolog.Nop())
	rec.IssuerCall(issuer.OpMint, err)
	rec.Flush(ctx)
	got := scrape(t, metrics.NewCollector(st, asynq.NewInspectorFromRedisClient(r.Client), zerolog.Nop()).Handler())
	for series, want := range map[string]float64{
		`rekey_issuer_calls_total{op="mint",outcome="refused"}`: 1,
		`rekey_issuer_calls_total{op="mint",outcome="failed"}`:  0,
	} {
		if v := got[series]; v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
}

// An issuer that no longer takes rekey's signature (REKEY_ISSUER_SECRET
// changed on one side only) answers every revocation 401, which the revoke
// handler retries until the secret is mended, every revocation overdue
// meanwhile: the issuer's trouble, counted failed so that the alert on
// failed calls fires, not refused as a revocation set aside for good is.
func TestARevocationRefusingRekeysSignatureIsCountedFailed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, _, st := newStateStore(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	iss, err := issuer.NewHTTP(srv.URL, secret.New("issuer-secret"))
	if err != nil {
		t.Fatal(err)
	}
	err = iss.Revoke(ctx, "inst-1", "cred-0")
	if !issuer.RefusesRekey(err) {
		t.Fatalf("revoke: %v, want the issuer's 401", err)
	}
	rec := metrics.NewRecorder(st, nil, zerolog.Nop())
	rec.IssuerCall(issuer.OpRevoke, err)
	rec.Flush(ctx)
	got := scrape(t, metrics.NewCollector(st, asynq.NewInspectorFromRedisClient(r.Client), zerolog.Nop()).Handler())
	for series, want := range map[string]float64{
		`rekey_issuer_calls_total{op="revoke",outcome="failed"}`:  1,
		`rekey_issuer_calls_total{op="revoke",outcome="refused"}`: 0,
	} {
		if v := got[series]; v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
}

// A call rekey itself stopped (a worker stopping cancels its tasks, on
// every deploy and every daily dyno restart) says nothing of the issuer:
// it is not counted failed, or the alert on failed calls would fire at
// each restart that finds a revocation or a verify in flight.
func TestACallRekeyCancelledIsNotCountedFailed(t *testing.T) {
	t.Parallel()
	r, _, st := newStateStore(t)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-release:
		case <-req.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	iss, err := issuer.NewHTTP(srv.URL, secret.New("issuer-secret"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	err = iss.Revoke(ctx, "inst-1", "cred-0")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("revoke: %v, want it cancelled", err)
	}
	rec := metrics.NewRecorder(st, nil, zerolog.Nop())
	rec.IssuerCall(issuer.OpRevoke, err)
	rec.Flush(context.Background())
	got := scrape(t, metrics.NewCollector(st, asynq.NewInspectorFromRedisClient(r.Client), zerolog.Nop()).Handler())
	if v := got[`rekey_issuer_calls_total{op="revoke",outcome="failed"}`]; v != 0 {
		t.Errorf(`rekey_issuer_calls_total{op="revoke",outcome="failed"} = %v after a call rekey cancelled, want 0`, v)
	}
}
