// Package sandbox is a complete world for rekey to run in without Heroku or
// a partner: the fake Heroku and the demo issuer served over real HTTP on
// loopback, sample add-on instances provisioned on both, and a checker that
// watches every revocation for a broken invariant. `rekey dev` runs on it,
// and so do the end-to-end tests, whose worker processes reach it through
// the environment Env returns.
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/secret"
)

// Params shape a Sandbox. Zero values take the fakes' defaults.
type Params struct {
	// Fake are extra options for the fake Heroku (bucket, restart delays,
	// faults); the sandbox sets the credentials itself.
	Fake []herokufake.Option
	// Demo are extra options for the demo issuer.
	Demo []issuer.DemoOption
	// SampleID names sample instance i (numbered from Provision's first).
	// Nil numbers them a0de0000-0000-4000-8000-00000000000i; rekey dev
	// gives them RandomID()s so that runs sharing a Redis never meet.
	SampleID func(i int) string
}

// Sandbox is a running fake Heroku and demo issuer. Close stops both.
type Sandbox struct {
	Fake *herokufake.Fake
	Demo *issuer.Demo
	// Checker records broken invariants seen at revocation.
	Checker *Checker
	// HerokuURL serves both the Platform API and the OAuth endpoint.
	HerokuURL string
	// IssuerURL is the demo issuer's webhook base URL.
	IssuerURL string

	IssuerSecret  secret.String
	OAuthSecret   secret.String
	AddonID       string
	AddonPassword secret.String
	// EncryptionKey is a fresh REKEY_ENCRYPTION_KEYS value.
	EncryptionKey secret.String

	nameSample func(i int) string
	servers    []*http.Server
}

// Start serves a fake Heroku and a demo issuer on loopback ports.
func Start(p Params) (*Sandbox, error) {
	s := &Sandbox{
		IssuerSecret:  secret.New(randomHex(24)),
		OAuthSecret:   secret.New(randomHex(24)),
		AddonID:       "myaddon",
		AddonPassword: secret.New(randomHex(24)),
		EncryptionKey: secret.New(randomKey()),
		nameSample:    p.SampleID,
	}
	fakeOpts := append([]herokufake.Option{
		herokufake.WithOAuthClientSecret(s.OAuthSecret.Reveal()),
		herokufake.WithV1Credentials(s.AddonID, s.AddonPassword.Reveal()),
	}, p.Fake...)
	s.Fake = herokufake.New(fakeOpts...)
	s.Checker = newChecker(s.Fake)
	s.Demo = issuer.NewDemo(append([]issuer.DemoOption{issuer.WithBeforeRevoke(s.Checker.beforeRevoke)}, p.Demo...)...)
	var err error
	if s.HerokuURL, err = s.serve(s.Fake); err != nil {
		return nil, err
	}
	if s.IssuerURL, err = s.serve(issuer.NewDemoServer(s.Demo, s.IssuerSecret)); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Sandbox) serve(h http.Handler) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("sandbox: listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	s.servers = append(s.servers, srv)
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String(), nil
}

// Close stops the servers.
func (s *Sandbox) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, srv := range s.servers {
		_ = srv.Shutdown(ctx)
	}
}

// Env returns the environment of a rekey process that works against the
// sandbox and the given Redis. Its grace floor (REKEY_MIN_GRACE) is one
// second, so the short graces of tests and `rekey dev` are accepted; a
// caller that sets REKEY_GRACE gets that as the floor when it is lower.
func (s *Sandbox) Env(redisURL string) map[string]string {
	return map[string]string{
		"REKEY_MIN_GRACE":            "1s",
		"REDIS_URL":                  redisURL,
		"HEROKU_API_URL":             s.HerokuURL,
		"HEROKU_ID_URL":              s.HerokuURL,
		"HEROKU_OAUTH_CLIENT_SECRET": s.OAuthSecret.Reveal(),
		"HEROKU_ADDON_ID":            s.AddonID,
		"HEROKU_ADDON_PASSWORD":      s.AddonPassword.Reveal(),
		"REKEY_ENCRYPTION_KEYS":      s.EncryptionKey.Reveal(),
		"REKEY_ISSUER":               "http",
		"REKEY_ISSUER_URL":           s.IssuerURL,
		"REKEY_ISSUER_SECRET":        s.IssuerSecret.Reveal(),
	}
}

// Lookup returns env as a config.Lookup-shaped function.
func Lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// EnvList renders env as KEY=VALUE pairs for exec.Cmd.Env.
func EnvList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RandomID returns a random version 4 UUID, the shape of a Heroku add-on id.
func RandomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// errJoin joins the non-nil errors of the sample instances into one
// sentence, each text once, with how many instances it failed when more
// than one: a refusal every registration meets (keys that are not the
// fleet's) reads once, not once an instance.
func errJoin(errs []error) error {
	var msgs []string
	times := map[string]int{}
	for _, e := range errs {
		if e == nil {
			continue
		}
		if times[e.Error()]++; times[e.Error()] == 1 {
			msgs = append(msgs, e.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	for i, m := range msgs {
		if n := times[m]; n > 1 {
			msgs[i] = fmt.Sprintf("%s (%d instances)", m, n)
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}
