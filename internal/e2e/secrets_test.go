package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// TestSecretsNeverLeak runs rotations, successful and failed, with secret
// values the test knows (credential values, OAuth tokens, the encryption
// key, the issuer and OAuth secrets, the V1 password), then greps every
// place rekey writes text for them (I5): the worker's debug log, every
// task's payload, result and last error in every queue and state, the
// error strings the handlers saw, the store's recorded failures and audit
// events, a dump of Redis, and what the web process shows: every
// instance's dashboard after SSO sign-in, the operators' API, asynqmon's
// JSON API under /monitoring, and the web log (secrets_web_test.go).
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{})
	samples := w.provision(4, sandbox.Mix{V1Every: 4})
	const known, refused = "known-tokens-instance", "literal-tokens-instance"
	cred := w.addAddon(known)
	code := w.sb.Fake.GrantCode(known)
	// Registered without current_config: its first rotation reads the
	// config the app holds from Heroku before it mints.
	w.registerWithTokens(known, cred, w.exchange(code), false)
	// Tokens Heroku never issued: the call answers 401 and the refresh 400,
	// so the rotation fails at its push with both tokens in hand (its
	// current_config spares it the read before the mint).
	literal := registry.Tokens{AccessToken: secret.New("HRKU-known-access-" + randomHex(t)),
		RefreshToken: secret.New("known-refresh-" + randomHex(t)), ExpiresAt: time.Now().Add(8 * time.Hour)}
	w.registerWithTokens(refused, w.addAddon(refused), literal, true)
	ids := []string{known, refused}
	for _, s := range samples {
		ids = append(ids, s.ID)
	}

	secrets := newSecretSet()
	secrets.add("REKEY_ENCRYPTION_KEYS", w.sb.EncryptionKey.Reveal())
	secrets.add("REKEY_ISSUER_SECRET", w.sb.IssuerSecret.Reveal())
	secrets.add("HEROKU_OAUTH_CLIENT_SECRET", w.sb.OAuthSecret.Reveal())
	secrets.add("HEROKU_ADDON_PASSWORD", w.sb.AddonPassword.Reveal())
	secrets.add("OAuth grant code", code)
	secrets.add("literal access token", literal.AccessToken.Reveal())
	secrets.add("literal refresh token", literal.RefreshToken.Reveal())
	w.collectSecrets(secrets, "before", ids)

	watchedIss := &watchedIssuer{}
	watchedHc := &watchedHeroku{}
	for _, sm := range samples {
		u, _ := url.Parse(w.sb.Fake.LogInputURL(w.sb.HerokuURL, sm.ID))
		token, _ := u.User.Password()
		secrets.add("log_input_url token of "+sm.ID, token)
		// The first sample's old credential stays in use past the grace:
		// its revocation is held and the customer told so.
		if sm.ID == samples[0].ID {
			w.sb.Demo.UseUntil(sm.Provisioned, time.Now().Add(testGrace+2*time.Second), "203.0.113.4")
		}
	}
	rw := w.startWorker(workerParams{logLevel: "debug", retryDelay: fastRetry, holds: testHolds(time.Minute, false),
		wrapIssuer: func(i issuer.Issuer) issuer.Issuer { watchedIss.Issuer = i; return watchedIss },
		wrapHeroku: func(h handlers.Heroku) handlers.Heroku { watchedHc.Heroku = h; return watchedHc }})
	// Failure paths: the V1 sample's push answers 422, and every V3 access
	// token expires, so tokens are refreshed (and the literal ones refused).
	w.sb.Fake.Script(herokufake.V1Put, herokufake.Respond(422))
	w.sb.Fake.ExpireAccessTokens()

	res := w.rotate(ids...)
	b := w.waitBatch(res.BatchID, 30*time.Second)
	w.waitRevoked(30 * time.Second)
	if b.Succeeded != int64(len(ids)-2) || b.Failures["push:invalid_params"] != 1 || b.Failures["push:token_refused"] != 1 {
		t.Fatalf("batch: %d succeeded, failures %v; want all but two, one 422 and one refused refresh", b.Succeeded, b.Failures)
	}
	w.collectSecrets(secrets, "after", ids)
	for _, c := range watchedIss.credentials() {
		secrets.addCredential("minted credential "+c.ID, c)
	}

	places := map[string]string{
		"worker log":                             rw.log.String(),
		"tasks (payloads, results, errors)":      w.taskText(),
		"handler error strings":                  watchedIss.errors() + watchedHc.errors(),
		"store (last errors, rotations, events)": w.storeText(ids, res.Items),
		"Redis":                                  redistest.Dump(t, w.redis),
		"customers' log lines (fake logplex)":    w.logLines(samples),
	}
	for place, text := range w.webPlaces(ids) {
		places[place] = text
	}
	secrets.add("REKEY_API_TOKEN", leakAPIToken)
	secrets.add("REKEY_DASHBOARD_PASSWORD", leakPassword)
	secrets.add("HEROKU_SSO_SALT", leakSSOSalt)
	checkCaptured(t, places)
	leaks := 0
	for _, s := range secrets.list {
		for place, text := range places {
			if strings.Contains(text, s.value) {
				leaks++
				t.Errorf("%s found in %s", s.label, place)
			}
		}
	}
	t.Logf("%d secret values searched in %d places (%d bytes of logs, %d of task data, %d of error strings, %d of Redis, "+
		"%d of dashboards, %d of /monitoring answers listing %d tasks): %d leaks",
		len(secrets.list), len(places), len(places["worker log"]), len(places["tasks (payloads, results, errors)"]),
		len(places["handler error strings"]), len(places["Redis"]), len(places["dashboard HTML and status"]),
		len(places["/monitoring API (asynqmon)"]), countTasks(places["/monitoring API (asynqmon)"]), leaks)
}

// checkCaptured makes sure each place holds what the rotations wrote, so a
// clean search means something.
func checkCaptured(t *testing.T, places map[string]string) {
	t.Helper()
	for place, want := range map[string][]string{
		"worker log":                             {"task_done", "rotation_failed", "task_failed", "revoked"},
		"tasks (payloads, results, errors)":      {"instance_id", "status 422", "status 400"},
		"handler error strings":                  {"status 422", "status 400"},
		"store (last errors, rotations, events)": {"status 422", "promoted"},
		"Redis":                                  {"rekey:oauth:", "asynq:"},
		"dashboard HTML and status":              {"Rotation failed.", "Heroku did not accept", "Old credential revoked", `"timeline"`},
		"operators' API":                         {"last_error", "status 422"},
		"/monitoring API (asynqmon)":             {"instance_id=", "archived", "status 422"},
		"customers' log lines (fake logplex)":    {"rotated; the old credential stays valid until", "by 203.0.113.4", "credential was revoked"},
	} {
		for _, s := range want {
			if !strings.Contains(places[place], s) {
				t.Errorf("%s lacks %q: the capture is broken", place, s)
			}
		}
	}
}

// addAddon provisions a V3 add-on on the fake Heroku with a credential
// minted by the demo issuer, as the partner would, and returns the
// credential.
func (w *world) addAddon(id string) issuer.Credential {
	w.t.Helper()
	cred, err := w.sb.Demo.Mint(context.Background(), id, "provision")
	if err != nil {
		w.t.Fatal(err)
	}
	err = w.sb.Fake.AddAddon(herokufake.AddonSpec{ID: id, App: "app-" + id, ConfigVars: []string{issuer.DefaultConfigVar},
		InitialConfig: map[string]string{issuer.DefaultConfigVar: cred.Config[issuer.DefaultConfigVar].Reveal()}})
	if err != nil {
		w.t.Fatal(err)
	}
	return cred
}

// exchange trades a grant code for tokens, as a partner would at
// provisioning, so the test knows the tokens.
func (w *world) exchange(code string) registry.Tokens {
	w.t.Helper()
	tok, err := w.hc.ExchangeGrant(context.Background(), secret.New(code))
	if err != nil {
		w.t.Fatal(err)
	}
	return registry.Tokens{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, ExpiresAt: tok.ExpiresAt}
}

// registerWithTokens registers a V3 instance with OAuth tokens the partner
// sends itself (the API's "oauth" field), and with its current_config when
// withConfig says so.
func (w *world) registerWithTokens(id string, cred issuer.Credential, tok registry.Tokens, withConfig bool) {
	w.t.Helper()
	in := registry.Input{ID: id, APIVersion: store.APIv3,
		ConfigVars: []string{issuer.DefaultConfigVar}, CurrentCredentialID: cred.ID, OAuth: &tok}
	if withConfig {
		in.CurrentConfig = cred.Config
	}
	err := w.reg.Put(context.Background(), in)
	if err != nil {
		w.t.Fatal(err)
	}
}

// collectSecrets adds every config value Heroku holds and every token the
// store holds for ids.
func (w *world) collectSecrets(s *secretSet, when string, ids []string) {
	w.t.Helper()
	for _, id := range ids {
		for name, v := range w.sb.Fake.Config(id) {
			s.add(fmt.Sprintf("config value %s of %s (%s)", name, id, when), v)
		}
		tok, err := w.store.LoadToken(context.Background(), id)
		if err != nil {
			continue // V1: no token
		}
		s.add(fmt.Sprintf("access token of %s (%s)", id, when), tok.AccessToken.Reveal())
		s.add(fmt.Sprintf("refresh token of %s (%s)", id, when), tok.RefreshToken.Reveal())
	}
}

// taskText is every task's payload, headers, result and last error.
func (w *world) taskText() string {
	var b strings.Builder
	for _, info := range w.allTasks() {
		fmt.Fprintf(&b, "%s %s %s %s %v %s %s\n", info.Queue, info.ID, info.State, info.Payload, info.Headers, info.Result, info.LastErr)
	}
	return b.String()
}

// storeText is what the store shows people: instances' last errors,
// rotations' errors and the audit events.
func (w *world) storeText(ids []string, items []fleet.Item) string {
	ctx := context.Background()
	var b strings.Builder
	for _, id := range ids {
		in, _ := w.store.Instance(ctx, id)
		fmt.Fprintf(&b, "%+v\n", in)
	}
	for _, it := range items {
		rot, _ := w.store.Rotation(ctx, it.RotationID)
		fmt.Fprintf(&b, "%+v\n", rot)
	}
	events, err := w.store.FleetEvents(ctx, 10_000)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, e := range events {
		fmt.Fprintf(&b, "%+v\n", e)
	}
	return b.String()
}

// secretSet is the known secret values, each with a label that says what it
// is without showing it.
type secretSet struct {
	list []struct{ label, value string }
	seen map[string]bool
}

func newSecretSet() *secretSet { return &secretSet{seen: map[string]bool{}} }

// password is the secret part of a demo credential's URL.
var password = regexp.MustCompile(`:([0-9a-f]{32})@`)

func (s *secretSet) add(label, value string) {
	if len(value) < 8 || s.seen[value] {
		return
	}
	s.seen[value] = true
	s.list = append(s.list, struct{ label, value string }{label, value})
	if m := password.FindStringSubmatch(value); m != nil {
		s.add("password in "+label, m[1])
	}
}

func (s *secretSet) addCredential(label string, c issuer.Credential) {
	for name, v := range c.Config {
		s.add(label+" "+name, v.Reveal())
	}
}

// watchedIssuer records what the handlers got from the issuer.
type watchedIssuer struct {
	issuer.Issuer
	mu     sync.Mutex
	minted []issuer.Credential
	errs   strings.Builder
}

var _ issuer.Issuer = (*watchedIssuer)(nil)

func (w *watchedIssuer) Mint(ctx context.Context, instanceID, rotationID string) (issuer.Credential, error) {
	c, err := w.Issuer.Mint(ctx, instanceID, rotationID)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		w.minted = append(w.minted, c)
	}
	writeError(&w.errs, err)
	return c, err
}

func (w *watchedIssuer) Verify(ctx context.Context, instanceID, credentialID string) error {
	err := w.Issuer.Verify(ctx, instanceID, credentialID)
	w.mu.Lock()
	defer w.mu.Unlock()
	writeError(&w.errs, err)
	return err
}

func (w *watchedIssuer) Revoke(ctx context.Context, instanceID, credentialID string) error {
	err := w.Issuer.Revoke(ctx, instanceID, credentialID)
	w.mu.Lock()
	defer w.mu.Unlock()
	writeError(&w.errs, err)
	return err
}

// Usage passes usage questions on, so that holds happen under watch.
func (w *watchedIssuer) Usage(ctx context.Context, instanceID, credentialID string) (issuer.Usage, error) {
	u, err := w.Issuer.(issuer.UsageReporter).Usage(ctx, instanceID, credentialID)
	w.mu.Lock()
	defer w.mu.Unlock()
	writeError(&w.errs, err)
	return u, err
}

// logLines is every line the samples' apps received in their log streams.
func (w *world) logLines(samples []sandbox.Sample) string {
	var b strings.Builder
	for _, s := range samples {
		b.WriteString(strings.Join(w.sb.Fake.LogLines(w.sb.Fake.AppOf(s.ID)), "\n"))
	}
	return b.String()
}

func (w *watchedIssuer) credentials() []issuer.Credential {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]issuer.Credential(nil), w.minted...)
}

func (w *watchedIssuer) errors() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.errs.String()
}

// watchedHeroku records the errors of the handlers' Heroku calls.
type watchedHeroku struct {
	handlers.Heroku
	mu   sync.Mutex
	errs strings.Builder
}

var _ handlers.Heroku = (*watchedHeroku)(nil)

func (w *watchedHeroku) UpdateConfig(ctx context.Context, t heroku.Target, vars []heroku.ConfigVar) error {
	err := w.Heroku.UpdateConfig(ctx, t, vars)
	w.mu.Lock()
	defer w.mu.Unlock()
	writeError(&w.errs, err)
	return err
}

func (w *watchedHeroku) errors() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.errs.String()
}

// writeError writes every printed form of err.
func writeError(b *strings.Builder, err error) {
	if err != nil {
		fmt.Fprintf(b, "%s\n%v\n%+v\n%#v\n", err.Error(), err, err, err)
	}
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
