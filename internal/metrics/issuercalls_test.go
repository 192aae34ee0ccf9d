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

// webhookIssuer is the webhook issuer over real HTTP to an issuer that
// answers with h.
func webhookIssuer(t *testing.T, h http.HandlerFunc) *issuer.HTTP {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	iss, err := issuer.NewHTTP(srv.URL, secret.New("issuer-secret"))
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// issuerCall is one call to the issuer and how it ended.
type issuerCall struct {
	op  string
	err error
}

// issuerCallSamples has a Recorder count calls, flushes it to a fresh
// store and returns what /metrics then serves.
func issuerCallSamples(t *testing.T, calls ...issuerCall) map[string]float64 {
	t.Helper()
	r, _, st := newStateStore(t)
	rec := metrics.NewRecorder(st, nil, zerolog.Nop())
	for _, c := range calls {
		rec.IssuerCall(c.op, c.err)
	}
	rec.Flush(context.Background())
	return scrape(t, metrics.NewCollector(st, asynq.NewInspectorFromRedisClient(r.Client), zerolog.Nop()).Handler())
}

// wantSamples checks each series of want against got, served or not.
func wantSamples(t *testing.T, got, want map[string]float64) {
	t.Helper()
	for series, w := range want {
		if v, ok := got[series]; !ok || v != w {
			t.Errorf("%s = %v (served %v), want %v", series, v, ok, w)
		}
	}
}

// An SRE tells the issuer's trouble from Heroku's: each call the webhook
// issuer makes, over real HTTP, is counted by how it ended, a 5xx or a
// timeout as failed, a 4xx the contract takes as final as refused, an
// answer that works or says "unsupported" as ok.
func TestIssuerCallsAreCountedByHowTheyEnded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	iss := webhookIssuer(t, func(w http.ResponseWriter, req *http.Request) {
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
	})
	_, err := iss.Mint(ctx, "inst-1", "rot-503")
	got := issuerCallSamples(t, issuerCall{issuer.OpMint, err},
		issuerCall{issuer.OpVerify, iss.Verify(ctx, "inst-1", "cred-1")},
		issuerCall{issuer.OpRevoke, iss.Revoke(ctx, "inst-1", "cred-0")})
	wantSamples(t, got, map[string]float64{
		`rekey_issuer_calls_total{op="mint",outcome="failed"}`:    1,
		`rekey_issuer_calls_total{op="mint",outcome="ok"}`:        0,
		`rekey_issuer_calls_total{op="verify",outcome="ok"}`:      1,
		`rekey_issuer_calls_total{op="revoke",outcome="refused"}`: 1,
		`rekey_issuer_calls_total{op="usage",outcome="failed"}`:   0,
	})
}

// A mint answered 200 that names a credential without a config rekey can
// use (issuer.UnusableCredentialError) ends the rotation for good, its
// credential discarded and revoked: the issuer's answer is taken as final,
// refused, not a failure the rotation retries.
func TestAnUnusableMintIsCountedRefused(t *testing.T) {
	t.Parallel()
	iss := webhookIssuer(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"credential_id":"cred-9"}`)) // no config
	})
	_, err := iss.Mint(context.Background(), "inst-1", "rot-1")
	var unusable *issuer.UnusableCredentialError
	if !errors.As(err, &unusable) {
		t.Fatalf("mint: %v, want an unusable credential", err)
	}
	wantSamples(t, issuerCallSamples(t, issuerCall{issuer.OpMint, err}), map[string]float64{
		`rekey_issuer_calls_total{op="mint",outcome="refused"}`: 1,
		`rekey_issuer_calls_total{op="mint",outcome="failed"}`:  0,
	})
}

// A mint answered 200 whose connection broke inside its config, after the
// credential id, is asked again (the mint is keyed by its rotation): a
// failed call, the network's trouble, not the issuer's answer taken as
// final.
func TestAMintCutInsideItsConfigIsCountedFailed(t *testing.T) {
	t.Parallel()
	iss := webhookIssuer(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"credential_id":"cred-9","config":{"MYADDON_URL":"postgres://u:01234`))
		w.(http.Flusher).Flush()
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close() // no terminating chunk
		}
	})
	_, err := iss.Mint(context.Background(), "inst-1", "rot-1")
	var unusable *issuer.UnusableCredentialError
	if !errors.As(err, &unusable) || !unusable.BrokenOff {
		t.Fatalf("mint: %v, want an answer broken off", err)
	}
	wantSamples(t, issuerCallSamples(t, issuerCall{issuer.OpMint, err}), map[string]float64{
		`rekey_issuer_calls_total{op="mint",outcome="failed"}`:  1,
		`rekey_issuer_calls_total{op="mint",outcome="refused"}`: 0,
	})
}

// An issuer that no longer takes rekey's signature (REKEY_ISSUER_SECRET
// changed on one side only) answers every revocation 401, which the revoke
// handler retries until the secret is mended, every revocation overdue
// meanwhile: the issuer's trouble, counted failed so that the alert on
// failed calls fires, not refused as a revocation set aside for good is.
func TestARevocationRefusingRekeysSignatureIsCountedFailed(t *testing.T) {
	t.Parallel()
	iss := webhookIssuer(t, func(w http.ResponseWriter, req *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	})
	err := iss.Revoke(context.Background(), "inst-1", "cred-0")
	if !issuer.RefusesRekey(err) {
		t.Fatalf("revoke: %v, want the issuer's 401", err)
	}
	wantSamples(t, issuerCallSamples(t, issuerCall{issuer.OpRevoke, err}), map[string]float64{
		`rekey_issuer_calls_total{op="revoke",outcome="failed"}`:  1,
		`rekey_issuer_calls_total{op="revoke",outcome="refused"}`: 0,
	})
}

// A call rekey itself stopped (a worker stopping cancels its tasks, on
// every deploy and every daily dyno restart) says nothing of the issuer:
// it is not counted failed, or the alert on failed calls would fire at
// each restart that finds a revocation or a verify in flight.
func TestACallRekeyCancelledIsNotCountedFailed(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	iss := webhookIssuer(t, func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-release:
		case <-req.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // before the server closes: no answer is held then
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	err := iss.Revoke(ctx, "inst-1", "cred-0")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("revoke: %v, want it cancelled", err)
	}
	wantSamples(t, issuerCallSamples(t, issuerCall{issuer.OpRevoke, err}), map[string]float64{
		`rekey_issuer_calls_total{op="revoke",outcome="failed"}`: 0,
	})
}
