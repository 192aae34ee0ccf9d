package config_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
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

// REKEY_ISSUER_VERIFY_RECHECKS reaches the webhook issuer through
// IssuerOptions: a 404 to verify, read as an unknown credential, is asked
// again once after each wait, over real HTTP.
func TestIssuerVerifyRechecks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		value string
		want  []time.Duration
	}{
		{"", issuer.DefaultVerifyRechecks},
		{"none", []time.Duration{}},
		{" NONE ", []time.Duration{}},
		{"5ms", []time.Duration{5 * time.Millisecond}},
		{"5ms, 10ms,1ms", []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, time.Millisecond}},
	}
	for _, tt := range tests {
		c, err := config.Load(env(map[string]string{"REKEY_ISSUER_VERIFY_RECHECKS": tt.value}))
		if err != nil {
			t.Fatalf("REKEY_ISSUER_VERIFY_RECHECKS=%q: %v", tt.value, err)
		}
		if !slices.Equal(c.IssuerVerifyRechecks, tt.want) {
			t.Errorf("REKEY_ISSUER_VERIFY_RECHECKS=%q read as %v, want %v", tt.value, c.IssuerVerifyRechecks, tt.want)
		}
		if tt.value == "" {
			continue // the default's seconds are TestVerifyRecheckWaitsByDefaultAndHeedsItsContext's
		}
		var asked atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			asked.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"unknown credential"}`))
		}))
		h, err := issuer.NewHTTP(srv.URL, secret.New("issuer-secret"), c.IssuerOptions(&memory{at: time.Now()})...)
		if err != nil {
			t.Fatal(err)
		}
		err = h.Verify(context.Background(), "inst-1", "cred_1")
		srv.Close()
		var unknown *issuer.UnknownCredentialError
		if !errors.As(err, &unknown) || int(asked.Load()) != len(tt.want)+1 {
			t.Errorf("REKEY_ISSUER_VERIFY_RECHECKS=%q: Verify = %v after %d requests, want an unknown credential after %d",
				tt.value, err, asked.Load(), len(tt.want)+1)
		}
	}
}

func TestIssuerVerifyRechecksRefusesOtherValues(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"1", "1s;2s", "1s,,2s", "0s", "-1s", "1s,abc", "20s,11s",
		"1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s", "off",
		"2562047h,2562047h", "2562047h47m16.854775807s,1ns", "30.000000001s"} {
		_, err := config.Load(env(map[string]string{"REKEY_ISSUER_VERIFY_RECHECKS": bad}))
		if err == nil || !strings.Contains(err.Error(), "REKEY_ISSUER_VERIFY_RECHECKS must be") {
			t.Errorf("REKEY_ISSUER_VERIFY_RECHECKS=%q: Load() = %v, want a sentence naming the variable", bad, err)
		}
	}
}

// REKEY_ISSUER_SECRET_PREVIOUS reaches the webhook issuer through
// IssuerOptions: while it holds the old secret, an issuer still holding
// that one takes mint, verify and revoke over real HTTP; unset, the same
// issuer refuses rekey signed with the new secret alone.
func TestIssuerSecretPreviousSignsTheWebhookRequestsToo(t *testing.T) {
	t.Parallel()
	const oldSecret, newSecret = "old-issuer-secret-2f6b9c1e", "new-issuer-secret-7a0d4e8b"
	d := issuer.NewDemo()
	srv := httptest.NewServer(issuer.NewDemoServer(d, secret.New(oldSecret)))
	t.Cleanup(srv.Close)
	issuerFor := func(vars map[string]string) *issuer.HTTP {
		t.Helper()
		vars["REKEY_ISSUER_URL"], vars["REKEY_ISSUER_SECRET"] = srv.URL, newSecret
		c, err := config.Load(env(vars))
		if err != nil {
			t.Fatal(err)
		}
		h, err := issuer.NewHTTP(c.IssuerURL, c.IssuerSecret, c.IssuerOptions(&memory{})...)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	ctx := context.Background()

	h := issuerFor(map[string]string{"REKEY_ISSUER_SECRET_PREVIOUS": oldSecret})
	cred, err := h.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatalf("mint with REKEY_ISSUER_SECRET_PREVIOUS set: %v", err)
	}
	if err := h.Verify(ctx, "inst-1", cred.ID); err != nil {
		t.Fatalf("verify with REKEY_ISSUER_SECRET_PREVIOUS set: %v", err)
	}
	if err := h.Revoke(ctx, "inst-1", cred.ID); err != nil {
		t.Fatalf("revoke with REKEY_ISSUER_SECRET_PREVIOUS set: %v", err)
	}

	_, err = issuerFor(map[string]string{}).Mint(ctx, "inst-1", "rot-2")
	var e *issuer.Error
	if !errors.As(err, &e) || e.Status != http.StatusUnauthorized {
		t.Fatalf("mint without REKEY_ISSUER_SECRET_PREVIOUS = %v, want the old-secret issuer's 401", err)
	}
	if st := d.Stats(); st.Minted != 1 || st.Revoked != 1 {
		t.Errorf("issuer stats = %+v, want one credential minted and revoked", st)
	}
}

// REKEY_ISSUER_SECRET_PREVIOUS is warned of as REKEY_ISSUER_SECRET is:
// shorter than 16 bytes (weak_issuer_secret, naming it, never quoting it)
// and when another secret variable holds its value (shared_secret).
func TestIssuerSecretPreviousWarnings(t *testing.T) {
	t.Parallel()
	const strong = "local-issuer-secret-0123456789"
	for _, tt := range []struct {
		vars map[string]string
		name string
		want string
	}{
		{map[string]string{"REKEY_ISSUER_SECRET_PREVIOUS": "hunter2"}, config.WarnWeakIssuerSecret,
			"REKEY_ISSUER_SECRET_PREVIOUS is shorter than 16 bytes"},
		{map[string]string{"REKEY_ISSUER_SECRET_PREVIOUS": "salt-0123456789abcdef", "HEROKU_SSO_SALT": "salt-0123456789abcdef"},
			config.WarnSharedSecret, "REKEY_ISSUER_SECRET_PREVIOUS and HEROKU_SSO_SALT hold the same value"},
		{map[string]string{"REKEY_ISSUER_SECRET_PREVIOUS": strong}, config.WarnPreviousUnchanged,
			"REKEY_ISSUER_SECRET_PREVIOUS holds REKEY_ISSUER_SECRET's value, so it adds nothing"},
	} {
		if tt.vars["REKEY_ISSUER_SECRET"] == "" {
			tt.vars["REKEY_ISSUER_SECRET"] = strong
		}
		c, err := config.Load(env(tt.vars))
		if err != nil {
			t.Fatal(err)
		}
		var details []string
		for _, w := range c.Warnings() {
			if w.Name == tt.name {
				details = append(details, w.Detail)
			}
		}
		if len(details) != 1 || !strings.Contains(details[0], tt.want) {
			t.Errorf("%v: %s warnings %q, want one saying %q", tt.vars, tt.name, details, tt.want)
		}
		for _, d := range details {
			if previous := tt.vars["REKEY_ISSUER_SECRET_PREVIOUS"]; strings.Contains(d, previous) {
				t.Errorf("%v: the detail quotes the secret: %q", tt.vars, d)
			}
		}
	}
}
