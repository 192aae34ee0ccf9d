package issuer_test

import (
	"errors"
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
