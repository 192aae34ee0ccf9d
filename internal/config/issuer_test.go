package config_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/secret"
)

// REKEY_ISSUER_VERIFY reaches the webhook issuer through IssuerOptions: a
// 404 to verify is read as unsupported or as an unknown credential, by
// the value and by what the memory holds.
func TestIssuerVerify(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotFound)
	}))
	t.Cleanup(srv.Close)
	verifiedBefore := &memory{at: time.Now().Add(-time.Hour)}
	tests := []struct {
		value       string
		mem         issuer.VerifyMemory
		want        issuer.VerifyMode
		unsupported bool
	}{
		{"", &memory{}, issuer.VerifyAuto, true},
		{"", verifiedBefore, issuer.VerifyAuto, false},
		{"auto", verifiedBefore, issuer.VerifyAuto, false},
		{" Required ", &memory{}, issuer.VerifyRequired, false},
		{"optional", verifiedBefore, issuer.VerifyOptional, true},
	}
	for _, tt := range tests {
		c, err := config.Load(env(map[string]string{"REKEY_ISSUER_VERIFY": tt.value}))
		if err != nil {
			t.Fatalf("REKEY_ISSUER_VERIFY=%q: %v", tt.value, err)
		}
		if c.IssuerVerify != tt.want {
			t.Errorf("REKEY_ISSUER_VERIFY=%q read as %q, want %q", tt.value, c.IssuerVerify, tt.want)
		}
		h, err := issuer.NewHTTP(srv.URL, secret.New("issuer-secret"), append(c.IssuerOptions(tt.mem), issuer.WithVerifyRechecks())...)
		if err != nil {
			t.Fatal(err)
		}
		err = h.Verify(context.Background(), "inst-1", "cred_1")
		if got := errors.Is(err, issuer.ErrVerifyUnsupported); got != tt.unsupported {
			t.Errorf("REKEY_ISSUER_VERIFY=%q, memory %+v: 404 = %v, want unsupported %v", tt.value, tt.mem, err, tt.unsupported)
		}
	}
}

func TestIssuerVerifyRefusesOtherValues(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"on", "true", "auto,required", "strict"} {
		_, err := config.Load(env(map[string]string{"REKEY_ISSUER_VERIFY": bad}))
		if err == nil || !strings.Contains(err.Error(), "REKEY_ISSUER_VERIFY must be one of auto, required, optional") {
			t.Errorf("REKEY_ISSUER_VERIFY=%q: Load() = %v, want a sentence naming the variable and its values", bad, err)
		}
	}
}

// memory is a VerifyMemory in process.
type memory struct{ at time.Time }

func (m *memory) IssuerVerifiedAt(context.Context) (time.Time, error) { return m.at, nil }
func (m *memory) RecordIssuerVerified(context.Context, time.Time, time.Duration) error {
	return nil
}
