package issuer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/secret"
)

const (
	oldIssuerSecret = "old-issuer-secret-5b8e1f0a2c7d"
	newIssuerSecret = "new-issuer-secret-9d3c6a4e1b0f"
)

// headerRecorder serves next and keeps the last request's method, path,
// body and Rekey-Signature header.
type headerRecorder struct {
	next http.Handler
	mu   sync.Mutex
	last sent
}

type sent struct {
	method, path, header string
	body                 []byte
}

func (h *headerRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.last = sent{r.Method, r.URL.EscapedPath(), r.Header.Get(issuer.SignatureHeader), body}
	h.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	h.next.ServeHTTP(w, r)
}

func (h *headerRecorder) request() sent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// mintVerifyRevoke runs one rotation's calls against h.
func mintVerifyRevoke(h *issuer.HTTP) error {
	ctx := context.Background()
	c, err := h.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		return fmt.Errorf("mint: %w", err)
	}
	if err := h.Verify(ctx, "inst-1", c.ID); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if err := h.Revoke(ctx, "inst-1", c.ID); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	return nil
}

// While REKEY_ISSUER_SECRET_PREVIOUS is set, an issuer still holding the
// old secret and one already switched to the new take every request, v2
// and v1-only receivers alike; with it unset, the old-secret issuer
// refuses rekey as it always did.
func TestAnIssuerHoldingEitherSecretTakesRekeysRequestsDuringARotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := secret.New(oldIssuerSecret), secret.New(newIssuerSecret)
	for _, tt := range []struct {
		name string
		key  secret.String
		opts []issuer.DemoServerOption
	}{
		{"old secret, v2", oldKey, nil},
		{"new secret, v2", newKey, nil},
		{"old secret, v1 only", oldKey, []issuer.DemoServerOption{issuer.WithV1Signatures()}},
		{"new secret, v1 only", newKey, []issuer.DemoServerOption{issuer.WithV1Signatures()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := issuer.NewDemo()
			srv := httptest.NewServer(issuer.NewDemoServer(d, tt.key, tt.opts...))
			t.Cleanup(srv.Close)
			h, err := issuer.NewHTTP(srv.URL, newKey, issuer.WithPreviousSecret(oldKey))
			if err != nil {
				t.Fatal(err)
			}
			if err := mintVerifyRevoke(h); err != nil {
				t.Fatalf("with REKEY_ISSUER_SECRET_PREVIOUS set: %v", err)
			}
			if st := d.Stats(); st.Minted != 1 || st.Revoked != 1 {
				t.Errorf("stats = %+v, want one minted and revoked", st)
			}
		})
	}

	t.Run("previous unset", func(t *testing.T) {
		t.Parallel()
		d := issuer.NewDemo()
		srv := httptest.NewServer(issuer.NewDemoServer(d, oldKey))
		t.Cleanup(srv.Close)
		h, err := issuer.NewHTTP(srv.URL, newKey, issuer.WithPreviousSecret(secret.String{}))
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.Mint(context.Background(), "inst-1", "rot-1")
		var e *issuer.Error
		if !errors.As(err, &e) || e.Status != http.StatusUnauthorized || d.Stats().Minted != 0 {
			t.Fatalf("Mint at an old-secret issuer without the previous secret = %v, want 401", err)
		}
		for _, s := range []string{oldIssuerSecret, newIssuerSecret} {
			if strings.Contains(err.Error(), s) || strings.Contains(fmt.Sprintf("%+v %#v", err, e), s) {
				t.Errorf("the error quotes a signing secret: %v", err)
			}
		}
	})
}

// The header rekey sends: byte for byte today's without a previous
// secret (or one equal to the current), and with one, today's followed by
// the previous secret's v1 and v2, which the reference receivers take
// with either secret.
func TestThePreviousIssuerSecretsSignaturesFollowTheCurrentOnes(t *testing.T) {
	t.Parallel()
	oldKey, newKey := secret.New(oldIssuerSecret), secret.New(newIssuerSecret)
	at := time.Now() // the demo issuer checks the skew against its clock
	clock := func() time.Time { return at }
	// send mints through a recorder in front of an issuer holding the new
	// secret, and returns the header sent and the one SignRequest makes
	// for that request with the new secret alone, as rekey sent until now.
	var req sent
	send := func(t *testing.T, opts ...issuer.Option) (got, today string) {
		t.Helper()
		rec := &headerRecorder{next: issuer.NewDemoServer(issuer.NewDemo(), newKey)}
		srv := httptest.NewServer(rec)
		t.Cleanup(srv.Close)
		h, err := issuer.NewHTTP(srv.URL, newKey, append([]issuer.Option{issuer.WithClock(clock)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Mint(context.Background(), "inst-1", "rot-1"); err != nil {
			t.Fatalf("mint: %v", err)
		}
		req = rec.request()
		return req.header, issuer.SignRequest(newKey, at, req.method, req.path, req.body)
	}

	if got, today := send(t); got != today {
		t.Errorf("header without a previous secret = %q, want today's %q", got, today)
	}
	if got, today := send(t, issuer.WithPreviousSecret(secret.String{})); got != today {
		t.Errorf("header with an empty previous secret = %q, want today's %q", got, today)
	}
	if got, today := send(t, issuer.WithPreviousSecret(newKey)); got != today {
		t.Errorf("header with the previous secret equal to the current = %q, want today's %q", got, today)
	}

	got, today := send(t, issuer.WithPreviousSecret(oldKey))
	old := issuer.SignRequest(oldKey, at, req.method, req.path, req.body)
	_, oldSigs, _ := strings.Cut(old, ",") // without its t=
	if want := today + "," + oldSigs; got != want {
		t.Errorf("header with a previous secret = %q, want %q", got, want)
	}
	if n := strings.Count(got, "t="); n != 1 {
		t.Errorf("header %q carries %d timestamps, want one", got, n)
	}
	for _, k := range []secret.String{newKey, oldKey} {
		if err := issuer.VerifySignature(k, got, req.body, at, 0); err != nil {
			t.Errorf("VerifySignature: %v", err)
		}
		if err := issuer.VerifySignatureV2(k, got, req.method, req.path, req.body, at, 0); err != nil {
			t.Errorf("VerifySignatureV2: %v", err)
		}
	}
	for _, s := range []string{oldIssuerSecret, newIssuerSecret} {
		if strings.Contains(got, s) {
			t.Errorf("the header quotes a signing secret: %q", got)
		}
	}
}
