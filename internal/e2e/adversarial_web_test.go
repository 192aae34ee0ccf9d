package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/web"
)

// This file plays careless operators and impatient customers against the
// web process over real HTTP (issue 8, cases 8, 10 and 11): a grace below
// the floor, a V3 registration without tokens, a customer pressing the
// rotate button again and again, and a Redis that fails right after
// Heroku spent a grant.

// The web process's secrets in these tests.
const (
	advAPIToken = "adversarial-api-token-91c4e2"
	advPassword = "adversarial-operator-pw-3b"
	advSSOSalt  = "adversarial-sso-salt-0d6f1a"
)

// startWeb runs `rekey web` on the world's Redis and sandbox, with extra
// variables over the defaults, and returns its base URL once it answers.
func (w *world) startWeb(extra map[string]string) string {
	w.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	env := w.sb.Env(w.redis.URL)
	env["PORT"] = strconv.Itoa(port)
	env["REKEY_API_TOKEN"] = advAPIToken
	env["REKEY_DASHBOARD_PASSWORD"] = advPassword
	env["HEROKU_SSO_SALT"] = advSSOSalt
	env["REKEY_LOG_LEVEL"] = "warn"
	for k, v := range extra {
		env[k] = v
	}
	startRekey(w.t, env, "web")
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	waitFor(w.t, time.Minute, "rekey web answers /healthz", func() (bool, string) {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	// Its announcements (keys, then shared settings, then the epoch mark it
	// reads, writing it when Redis holds none) are written once Redis
	// answers, which may be after /healthz does: a test that compares Redis
	// before and after its requests starts once they are there.
	waitFor(w.t, time.Minute, "rekey web announces its settings", func() (bool, string) {
		ctx := context.Background()
		n, err := w.redis.Client.HLen(ctx, "rekey:shared_settings").Result()
		marked, merr := w.redis.Client.Exists(ctx, "rekey:epoch").Result()
		return err == nil && merr == nil && n > 0 && marked == 1, fmt.Sprint(n, marked, err, merr)
	})
	return base
}

// call sends one API request and returns the status and body.
func call(t *testing.T, method, u, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+advAPIToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := ownClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdversarialGraceBelowTheFloorIsRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{})
	id := w.provision(1, sandbox.Mix{})[0].ID
	base := w.startWeb(map[string]string{"REKEY_MIN_GRACE": "10m", "REKEY_GRACE": "2h"})
	before := redistest.Dump(t, w.redis)
	for _, c := range []struct{ name, method, path, body, want string }{
		{"rotation with a 1ms grace", http.MethodPost, "/api/v1/rotations", `{"instance_ids":["` + id + `"],"grace":"1ms"}`, "10m0s (REKEY_MIN_GRACE"},
		{"fleet rotation with a 1ms grace", http.MethodPost, "/api/v1/rotations", `{"all":true,"grace":"1ms"}`, "10m0s (REKEY_MIN_GRACE"},
		{"instance grace of 1ms", http.MethodPut, "/api/v1/instances/" + id, `{"api_version":"v3","config_vars":["MYADDON_URL"],"grace":"1ms"}`, "10m0s (REKEY_MIN_GRACE"},
		{"V3 first registration without oauth", http.MethodPut, "/api/v1/instances/new-v3-instance", `{"api_version":"v3","config_vars":["MYADDON_URL"]}`, "oauth_grant"},
	} {
		status, body := call(t, c.method, base+c.path, c.body)
		if status != http.StatusUnprocessableEntity || !strings.Contains(body, c.want) {
			t.Errorf("%s: got %d %s, want 422 naming %s", c.name, status, body, c.want)
		}
	}
	if after := redistest.Dump(t, w.redis); after != before {
		t.Errorf("refused requests changed Redis")
	}
	if status, body := call(t, http.MethodPost, base+"/api/v1/rotations", `{"instance_ids":["`+id+`"],"grace":"10m"}`); status != http.StatusAccepted {
		t.Errorf("a grace at the floor: got %d %s, want 202", status, body)
	}
}

// click presses the dashboard's rotate button as the signed-in customer.
func click(t *testing.T, c *http.Client, base string) (int, string) {
	t.Helper()
	page := get(t, c, base+"/dashboard")
	const marker = `name="csrf_token" value="`
	i := strings.Index(page, marker)
	if i < 0 {
		t.Fatalf("dashboard has no CSRF field: %s", page)
	}
	token := page[i+len(marker):]
	token = token[:strings.IndexByte(token, '"')]
	return postCSRF(t, c, base, token)
}

func postCSRF(t *testing.T, c *http.Client, base, token string) (int, string) {
	t.Helper()
	nc := *c
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := nc.PostForm(base+"/dashboard/rotate", url.Values{"csrf_token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func get(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitPrevious waits until id has n previous credentials waiting.
func (w *world) waitPrevious(id string, n int) {
	w.t.Helper()
	waitFor(w.t, 30*time.Second, "rotation of "+id+" promoted", func() (bool, string) {
		prev, err := w.store.Previous(context.Background(), id)
		return err == nil && len(prev) == n, fmt.Sprintf("%d previous credentials (%v)", len(prev), err)
	})
}

func TestAdversarialCustomerClicks(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{})
	samples := w.provision(3, sandbox.Mix{})
	onePerGrace := w.startWeb(nil)
	dailyCap := w.startWeb(map[string]string{"REKEY_CUSTOMER_ONE_PER_GRACE": "false", "REKEY_CUSTOMER_ROTATIONS_PER_DAY": "1"})
	for _, s := range samples {
		// An hour's grace keeps the old credential waiting through the test.
		in, err := w.store.Instance(context.Background(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf(`{"api_version":"v3","config_vars":["%s"],"grace":"1h"}`, strings.Join(in.ConfigVars, `","`))
		if status, resp := call(t, http.MethodPut, onePerGrace+"/api/v1/instances/"+s.ID, body); status != http.StatusOK {
			t.Fatalf("set grace of %s: %d %s", s.ID, status, resp)
		}
	}
	w.startWorker(workerParams{})

	t.Run("second click within the grace", func(t *testing.T) {
		id := samples[0].ID
		c := w.signIn(onePerGrace, id, advSSOSalt)
		if status, body := click(t, c, onePerGrace); status != http.StatusSeeOther {
			t.Fatalf("first click: got %d %s, want 303", status, body)
		}
		w.waitPrevious(id, 1)
		status, body := click(t, c, onePerGrace)
		if status != http.StatusTooManyRequests || !strings.Contains(body, "when the previous credential is revoked.") {
			t.Fatalf("second click within the grace: got %d %s, want 429 saying when it can be used again", status, body)
		}
		if in, _ := w.store.Instance(context.Background(), id); in.InFlight != "" {
			t.Errorf("the refused click started rotation %s", in.InFlight)
		}
		if page := get(t, c, onePerGrace+"/dashboard"); !strings.Contains(page, "You can rotate again after") {
			t.Error("dashboard does not say when the button can be used again")
		}
	})
	t.Run("daily cap", func(t *testing.T) {
		id := samples[1].ID
		c := w.signIn(dailyCap, id, advSSOSalt)
		if status, body := click(t, c, dailyCap); status != http.StatusSeeOther {
			t.Fatalf("first click: got %d %s, want 303", status, body)
		}
		w.waitPrevious(id, 1)
		status, body := click(t, c, dailyCap)
		if status != http.StatusTooManyRequests || !strings.Contains(body, "1 of 1 rotations today used.") {
			t.Fatalf("click over the daily cap: got %d %s, want 429 with the day's count", status, body)
		}
	})
	t.Run("clicks at once", func(t *testing.T) {
		id := samples[2].ID
		c := w.signIn(onePerGrace, id, advSSOSalt)
		page := get(t, c, onePerGrace+"/dashboard")
		token := page[strings.Index(page, `name="csrf_token" value="`)+len(`name="csrf_token" value="`):]
		token = token[:strings.IndexByte(token, '"')]
		const clicks = 10
		var wg sync.WaitGroup
		var started atomic.Int32
		for range clicks {
			wg.Go(func() {
				if status, _ := postCSRF(t, c, onePerGrace, token); status != http.StatusSeeOther && status != http.StatusTooManyRequests {
					t.Errorf("a click got %d, want 303 or 429", status)
				}
				started.Add(1)
			})
		}
		wg.Wait()
		w.waitPrevious(id, 1)
		n, _, err := w.store.CustomerRotations(context.Background(), id)
		events, _ := w.store.Events(context.Background(), id, 200)
		promoted := 0
		for _, e := range events {
			if e.Type == store.EventPromoted {
				promoted++
			}
		}
		if err != nil || n != 1 || promoted != 1 {
			t.Fatalf("%d clicks at once: %d customer rotations counted, %d promoted (%v); want one rotation", started.Load(), n, promoted, err)
		}
	})
}

// failingScripts fails a Redis client's script calls, as a Redis that is
// failing over answers: after pass calls went through, while left > 0.
type failingScripts struct{ pass, left atomic.Int64 }

func (h *failingScripts) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *failingScripts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if n := cmd.Name(); (n == "evalsha" || n == "eval") && h.pass.Add(-1) < 0 && h.left.Add(-1) >= 0 {
			err := errors.New("READONLY You can't write against a read only replica.")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

func (h *failingScripts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestAdversarialFailedTokenSave registers instances through rekey's web
// handler, over HTTP, while its Redis fails the registration's write just
// after Heroku exchanged the single-use grant.
func TestAdversarialFailedTokenSave(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{})
	hook := &failingScripts{}
	rdb := redis.NewClient(&redis.Options{Addr: w.redis.Client.Options().Addr, DB: w.redis.Client.Options().DB})
	t.Cleanup(func() { _ = rdb.Close() })
	rdb.AddHook(hook)
	failing := store.New(rdb, mustSealer(t, w))
	h, err := web.New(web.Params{Store: w.store, Producer: fleet.NewProducer(w.store, w.queue),
		Registry:  registry.New(failing, w.hc, registry.WithStoreRetries(10*time.Millisecond, 10*time.Millisecond)),
		Inspector: w.insp, Enqueuer: w.queue, APIToken: secret.New(advAPIToken),
		DashboardPassword: secret.New(advPassword), SSOSalt: secret.New(advSSOSalt), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	register := func(id, code string) (int, string) {
		body := `{"api_version":"v3","config_vars":["MYADDON_URL"],"oauth_grant":{"code":"` + code + `"}}`
		return call(t, http.MethodPut, srv.URL+"/api/v1/instances/"+id, body)
	}

	// The fingerprint key exists, as once a worker has started: a
	// registration before that makes it, a script call the counts below
	// leave out.
	if err := w.store.CheckFingerprintKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.addAddon("lost-grant")
	code := w.sb.Fake.GrantCode("lost-grant")
	// Redis knows the claim's script, as once any registration ran: else
	// its EVALSHA is answered NOSCRIPT and go-redis sends it again as an
	// EVAL, one script call more than the counts below.
	if _, err := w.store.ClaimGrant(context.Background(), "warm-up", secret.New("warm-up-code")); err != nil {
		t.Fatal(err)
	}
	// The grant's claim passes, the three attempts to store fail, the
	// release of the claim passes (Redis is back by then).
	hook.pass.Store(1)
	hook.left.Store(3)
	before := redistest.Dump(t, w.redis)
	status, body := register("lost-grant", code)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "was exchanged with Heroku") ||
		!strings.Contains(body, "nothing was stored") || !strings.Contains(body, "cannot be used again") {
		t.Fatalf("store failing after the exchange: got %d %s, want 503 saying the grant is spent and nothing stored", status, body)
	}
	if after := redistest.Dump(t, w.redis); after != before {
		t.Error("a registration reported as not stored changed Redis")
	}
	hook.left.Store(0)
	if status, body := register("lost-grant", code); status != http.StatusUnprocessableEntity || !strings.Contains(body, "Heroku refused the oauth_grant") {
		t.Errorf("the spent grant again: got %d %s, want Heroku's refusal, as the first answer said", status, body)
	}
	if strings.Contains(body, code) {
		t.Error("an answer quoted the grant code")
	}

	// A brief failure is retried: the grant is not lost.
	w.addAddon("kept-grant")
	hook.pass.Store(1)
	hook.left.Store(1)
	if status, body := register("kept-grant", w.sb.Fake.GrantCode("kept-grant")); status != http.StatusOK {
		t.Fatalf("one failed store attempt: got %d %s, want 200", status, body)
	}
	if tok, err := w.store.LoadToken(context.Background(), "kept-grant"); err != nil || tok.RefreshToken.IsZero() {
		t.Fatalf("tokens of kept-grant: %v", err)
	}
}

func mustSealer(t *testing.T, w *world) *seal.Sealer {
	t.Helper()
	s, err := w.cfg.Sealer()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
