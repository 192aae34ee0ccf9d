package issuer_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/secret"
)

const signingKey = "whsec-4f3e2d1c0b1a29384756"

var (
	key = secret.New(signingKey)
	now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

func TestVerifySignature(t *testing.T) {
	t.Parallel()
	body := []byte(`{"instance_id":"i-1","rotation_id":"r-1"}`)
	good := issuer.Sign(key, now, body)
	tests := []struct {
		name   string
		header string
		body   []byte
		at     time.Time
		ok     bool
	}{
		{"valid", good, body, now, true},
		{"valid at the skew limit", good, body, now.Add(issuer.DefaultSkew), true},
		{"valid among other signatures", "t=" + strings.Split(good, ",")[0][2:] + ",v1=00ff,v0=abc," + strings.Split(good, ",")[1], body, now, true},
		{"tampered body", good, []byte(`{"instance_id":"i-2","rotation_id":"r-1"}`), now, false},
		{"old timestamp", good, body, now.Add(6 * time.Minute), false},
		{"future timestamp", good, body, now.Add(-6 * time.Minute), false},
		{"other key", issuer.Sign(secret.New("other"), now, body), body, now, false},
		{"empty header", "", body, now, false},
		{"no v1", "t=" + strings.Split(good, ",")[0][2:], body, now, false},
		{"bad timestamp", "t=soon," + strings.Split(good, ",")[1], body, now, false},
		{"bad hex", "t=1,v1=zz", body, now, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := issuer.VerifySignature(key, tt.header, tt.body, tt.at, 0)
			if (err == nil) != tt.ok {
				t.Fatalf("VerifySignature = %v, want ok %v", err, tt.ok)
			}
			if err != nil && (!errors.Is(err, issuer.ErrBadSignature) || strings.Contains(err.Error(), signingKey)) {
				t.Errorf("error %q should wrap ErrBadSignature and hide the key", err)
			}
		})
	}
}

func TestSignFormat(t *testing.T) {
	t.Parallel()
	got := issuer.Sign(secret.New("k"), time.Unix(1700000000, 0), []byte("{}"))
	// HMAC-SHA256("k", "1700000000.{}"), computed independently with openssl.
	const want = "t=1700000000,v1=" + wantHMAC
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

const wantHMAC = "c6ef4734033cee2367414a0939385eca0397754aa7a59716da7463a9298b5146"

func TestSignRequestFormat(t *testing.T) {
	t.Parallel()
	got := issuer.SignRequest(secret.New("k"), time.Unix(1700000000, 0), "DELETE", "/credentials/c1", []byte("{}"))
	// HMAC-SHA256("k", "1700000000.DELETE./credentials/c1.{}"), computed
	// independently with openssl.
	const want = "t=1700000000,v1=" + wantHMAC + ",v2=5fbae0991b5f4e1ca8915fd51f0b9ea434a73f54a1f380c2c229d7c948406a70"
	if got != want {
		t.Errorf("SignRequest = %s, want %s", got, want)
	}
}

// A v2 signature holds for its own method, path, body and time only; v1
// signatures of the same header keep working for v1 receivers.
func TestVerifySignatureV2(t *testing.T) {
	t.Parallel()
	body := []byte(`{"instance_id":"i-1","credential_id":"c-1"}`)
	const path = "/hooks/credentials/c-1/verify"
	good := issuer.SignRequest(key, now, "POST", path, body)
	tests := []struct {
		name, header, method, path string
		body                       []byte
		at                         time.Time
		ok                         bool
	}{
		{"valid", good, "POST", path, body, now, true},
		{"valid at the skew limit", good, "POST", path, body, now.Add(-issuer.DefaultSkew), true},
		{"replayed as a DELETE", good, "DELETE", "/hooks/credentials/c-1", body, now, false},
		{"other method", good, "DELETE", path, body, now, false},
		{"other path", good, "POST", "/hooks/credentials/c-2/verify", body, now, false},
		{"path unescaped", issuer.SignRequest(key, now, "POST", "/credentials/a%2Fb", body), "POST", "/credentials/a/b", body, now, false},
		{"tampered body", good, "POST", path, []byte(`{"instance_id":"i-2","credential_id":"c-1"}`), now, false},
		{"old timestamp", good, "POST", path, body, now.Add(6 * time.Minute), false},
		{"v1 only", issuer.Sign(key, now, body), "POST", path, body, now, false},
		{"other key", issuer.SignRequest(secret.New("other"), now, "POST", path, body), "POST", path, body, now, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := issuer.VerifySignatureV2(key, tt.header, tt.method, tt.path, tt.body, tt.at, 0)
			if (err == nil) != tt.ok {
				t.Fatalf("VerifySignatureV2 = %v, want ok %v", err, tt.ok)
			}
			if err != nil && (!errors.Is(err, issuer.ErrBadSignature) || strings.Contains(err.Error(), signingKey)) {
				t.Errorf("error %q should wrap ErrBadSignature and hide the key", err)
			}
		})
	}
	if err := issuer.VerifySignature(key, good, body, now, 0); err != nil {
		t.Errorf("v1 receiver refused a header carrying v1 and v2: %v", err)
	}
}

// VerifyRequest reads the path from the request line, so a handler behind
// http.StripPrefix, or a request with a query, checks what was signed.
func TestVerifyRequestUsesThePathAsSent(t *testing.T) {
	t.Parallel()
	body := []byte(`{}`)
	for _, target := range []string{"/rekey/credentials/a%2Fb", "/rekey/credentials/a%2Fb?x=1", "http://issuer.example/rekey/credentials/a%2Fb"} {
		var err error
		h := http.StripPrefix("/rekey", http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			err = issuer.VerifyRequest(key, r, body, now, 0)
		}))
		r := httptest.NewRequest(http.MethodDelete, target, bytes.NewReader(body))
		r.Header.Set(issuer.SignatureHeader, issuer.SignRequest(key, now, http.MethodDelete, "/rekey/credentials/a%2Fb", body))
		h.ServeHTTP(httptest.NewRecorder(), r)
		if err != nil {
			t.Errorf("%s: %v", target, err)
		}
	}
}
