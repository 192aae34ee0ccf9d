package issuer_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
)

func TestUsageAgainstDemoServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, h := demoIssuer(t)
	c, err := h.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	if u, err := h.Usage(ctx, "inst-1", c.ID); err != nil || !u.LastUsedAt.IsZero() {
		t.Fatalf("never used: %+v, %v", u, err)
	}
	d.UseUntil(c.ID, time.Now().Add(time.Hour), "203.0.113.4")
	u, err := h.Usage(ctx, "inst-1", c.ID)
	if err != nil || time.Since(u.LastUsedAt) > time.Minute || u.LastUsedBy != "203.0.113.4" {
		t.Fatalf("in use: %+v, %v", u, err)
	}
	stopped := time.Now().Add(-10 * time.Minute)
	d.UseUntil(c.ID, stopped, "203.0.113.4")
	if u, err := h.Usage(ctx, "inst-1", c.ID); err != nil || !u.LastUsedAt.Equal(stopped.UTC().Truncate(time.Nanosecond)) {
		t.Fatalf("stopped at %s: %+v, %v", stopped, u, err)
	}
	_, unsupported := demoIssuer(t, issuer.WithoutUsage())
	if _, err := unsupported.Usage(ctx, "inst-1", c.ID); !errors.Is(err, issuer.ErrUsageUnsupported) {
		t.Fatalf("404: %v, want ErrUsageUnsupported", err)
	}
}

// TestUsageHostileAnswers: no answer of the issuer's makes rekey read use
// beyond now, follow a redirect, or read more than its limit.
func TestUsageHostileAnswers(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		elsewhere.Add(1)
		_, _ = w.Write([]byte(`{"last_used_at":"2020-01-01T00:00:00Z"}`))
	}))
	t.Cleanup(other.Close)
	// Cleanups run after the parallel subtests.
	t.Cleanup(func() {
		if n := elsewhere.Load(); n != 0 {
			t.Errorf("a redirect was followed %d times", n)
		}
	})
	cases := map[string]struct {
		body     string
		status   int
		location string
		want     func(issuer.Usage, error) bool
	}{
		"garbage":  {body: `{"last_used_at": [`, want: func(_ issuer.Usage, err error) bool { return errCode(err) == issuer.CodeMalformed }},
		"bad time": {body: `{"last_used_at": "yesterday"}`, want: func(_ issuer.Usage, err error) bool { return errCode(err) == issuer.CodeMalformed }},
		"10MB": {body: `{"last_used_by":"` + strings.Repeat("x", 10<<20) + `"}`,
			want: func(_ issuer.Usage, err error) bool { return errCode(err) == issuer.CodeUnreadable }},
		"redirect": {status: http.StatusTemporaryRedirect, location: other.URL,
			want: func(_ issuer.Usage, err error) bool { return errCode(err) == issuer.CodeRedirect }},
		"future": {body: `{"last_used_at":"2999-01-01T00:00:00Z","last_used_by":"x"}`,
			want: func(u issuer.Usage, err error) bool { return err == nil && !u.LastUsedAt.After(time.Now()) }},
		"null": {body: `{"last_used_at":null}`, want: func(u issuer.Usage, err error) bool { return err == nil && u.LastUsedAt.IsZero() }},
		"junk hint": {body: `{"last_used_at":"2020-01-01T00:00:00Z","last_used_by":"<script>\n"}`,
			want: func(u issuer.Usage, err error) bool { return err == nil && u.LastUsedBy == "" }},
		"server error": {status: http.StatusBadGateway, want: func(_ issuer.Usage, err error) bool { return err != nil }},
		"token hint": {body: `{"last_used_at":"2020-01-01T00:00:00Z","last_used_by":"sk_live_4eC39HqLyjWDarjtT1zdp7dc"}`,
			want: func(u issuer.Usage, err error) bool { return err == nil && u.LastUsedBy == "" }},
		"address hint": {body: `{"last_used_at":"2020-01-01T00:00:00Z","last_used_by":"2001:db8::1 web.1"}`,
			want: func(u issuer.Usage, err error) bool { return err == nil && u.LastUsedBy == "2001:db8::1 web.1" }},
		// Heroku's router for a renamed issuer app: no evidence, not "unsupported".
		"404 page": {status: http.StatusNotFound, body: "<!DOCTYPE html><html><body>No such app</body></html>",
			want: func(_ issuer.Usage, err error) bool {
				return errCode(err) == issuer.CodeNotFoundPage && !errors.Is(err, issuer.ErrUsageUnsupported)
			}},
		// Rails asked for JSON, for a path it has no route for: no evidence either.
		"404 of rails": {status: http.StatusNotFound, body: `{"status":404,"error":"Not Found"}`,
			want: func(_ issuer.Usage, err error) bool {
				return errCode(err) == issuer.CodeNotFoundPage && !errors.Is(err, issuer.ErrUsageUnsupported)
			}},
		"404 of the issuer": {status: http.StatusNotFound, body: `{"error":"usage_unsupported"}`,
			want: func(_ issuer.Usage, err error) bool { return errors.Is(err, issuer.ErrUsageUnsupported) }},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet || r.Header.Get(issuer.SignatureHeader) == "" {
					t.Errorf("%s unsigned or not a GET", r.Method)
				}
				if c.location != "" {
					w.Header().Set("Location", c.location)
				}
				w.WriteHeader(max(c.status, http.StatusOK))
				_, _ = w.Write([]byte(c.body))
			}))
			t.Cleanup(srv.Close)
			h, err := issuer.NewHTTP(srv.URL, key)
			if err != nil {
				t.Fatal(err)
			}
			u, err := h.Usage(context.Background(), "inst-1", "cred-1")
			if !c.want(u, err) {
				t.Errorf("Usage = %+v, %v", u, err)
			}
		})
	}
}

func errCode(err error) string {
	var e *issuer.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// A usage hint that is a client's connection string, its password in the
// URL's user information, is dropped however the password looks (a
// human-chosen one, with dashes, passes LooksGenerated): the hint is kept
// in clear in Redis and written into the customer's log stream and
// dashboard while the credential is live (I5).
func TestUsageHintWithAURLPasswordIsDropped(t *testing.T) {
	t.Parallel()
	const hint = "postgres://app:Hunter2-Pa55-w0rd@10.0.0.5"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"last_used_at":"2020-01-01T00:00:00Z","last_used_by":"` + hint + `"}`))
	}))
	t.Cleanup(srv.Close)
	h, err := issuer.NewHTTP(srv.URL, key)
	if err != nil {
		t.Fatal(err)
	}
	u, err := h.Usage(context.Background(), "inst-1", "cred-1")
	if err != nil {
		t.Fatal(err)
	}
	if u.LastUsedBy != "" {
		t.Fatalf("usage hint kept in clear: %q (CleanUsedBy(%q) = %q)", u.LastUsedBy, hint, issuer.CleanUsedBy(hint))
	}
}

// CleanUsedBy keeps an address or a client's name, and drops a hint that
// may hold a secret however the secret looks: a token's shape, a URL's
// user information, a password where a port belongs, a parameter named
// like a secret.
func TestCleanUsedBy(t *testing.T) {
	t.Parallel()
	for hint, kept := range map[string]bool{
		"web.1":                      true,
		"worker dyno":                true,
		"10.0.0.5":                   true,
		"10.0.0.5:5432":              true,
		"2001:db8::1 web.1":          true,
		"[2001:db8::1]:5432":         true,
		"app@host":                   true,
		"app@10.0.0.5:5432":          true,
		"app@[2001:db8::1]":          true,
		"postgres://10.0.0.5:5432/d": true,
		"postgres://[2001:db8::1]/d": true,
		"ip-10-0-12-7.ec2.internal":  true,
		"psql sslmode=require":       true,
		"postgres://app:Hunter2-Pa55-w0rd@10.0.0.5":           false,
		"app:Hunter2-Pa55-w0rd@10.0.0.5":                      false,
		"web.1 app:hunter2@db":                                false,
		"redis://:hunter2@10.0.0.5:6379":                      false,
		"postgres://app@10.0.0.5":                             false,
		"postgres://app:Hunter2-Pa55-w0rd":                    false,
		"postgres://10.0.0.5/d?password=hunter2":              false,
		"host=10.0.0.5 user=app password=hunter2":             false,
		"https://h/?X-Amz-Signature=abc":                      false,
		"sk_live_4eC39HqLyjWDarjtT1zdp7dc":                    false,
		"<script>\n":                                          false,
		"host=10.0.0.5 user=app password = Hunter2-Pa55-w0rd": false,
		"user=app password =Hunter2-Pa55-w0rd":                false,
		`{"user":"app","password":"Hunter2-Pa55-w0rd"}`:       false,
		"password: Hunter2-Pa55-w0rd":                         false,
		"app:Hunter2-Pa55-w0rd":                               false,
		"postgres%3A%2F%2Fapp%3AHunter2-Pa55-w0rd%4010.0.0.5": false,
		"web.1 pwd Hunter2":                                   false,
		"app pw=Xk9#mP2$vL":                                   false,
		"app p=Xk9mP2vL":                                      false,
		"app/Xk9#mP2$vL@10.0.0.5":                             false,
		"mysql -pXk9mP2vL":                                    false,
		"psql -p5432":                                         true,
		"Bearer Xk9mP2vL-q7":                                  false,
		"Authorization: Basic Xk9mP2vL":                       false,
		"12:30:45 web.1":                                      true,
		"web.1:":                                              true,
		"3f2a9c1e-7b4d-4e8a-9c2f-1a6b5d8e0f47":                false,
		"web.1 (3f2a9c1e-7b4d-4e8a-9c2f-1a6b5d8e0f47)":        false,
		"key k9Xq-2mPv-7LwR-4zTy-8NcB":                        false,
	} {
		want := ""
		if kept {
			want = hint
		}
		if got := issuer.CleanUsedBy(hint); got != want {
			t.Errorf("CleanUsedBy(%q) = %q, want %q", hint, got, want)
		}
	}
}
