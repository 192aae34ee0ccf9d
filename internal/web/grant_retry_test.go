package web_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/redistest"
)

// exchanges counts the grant exchanges and refresh calls the fake Heroku
// answered, by status.
func (f *fixture) exchanges() map[int]int {
	out := map[int]int{}
	for _, c := range f.fake.Calls(herokufake.OAuthToken) {
		out[c.Status]++
	}
	return out
}

// TestRetriedGrantRegistrationIsARepeat: a partner's first PUT with an
// oauth_grant registered the instance, but its client never saw the
// answer, so it sends the same body again. Heroku refuses a code twice; the
// PUT is idempotent all the same: the retry answers as the first did, and
// the code is not sent to Heroku again. A new code is still exchanged.
func TestRetriedGrantRegistrationIsARepeat(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	if err := f.fake.AddAddon(herokufake.AddonSpec{ID: "inst-1", App: "app-1", ConfigVars: []string{"MYADDON_URL"}}); err != nil {
		t.Fatal(err)
	}
	code := f.fake.GrantCode("inst-1")
	first := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(code))
	if first.status != http.StatusOK {
		t.Fatalf("first PUT: got %d, want 200: %s", first.status, first.body)
	}
	tok, err := f.st.LoadToken(ctx, "inst-1")
	if err != nil {
		t.Fatal(err)
	}

	again := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(code))
	if again.status != http.StatusOK || again.body != first.body {
		t.Fatalf("the same PUT again: got %d %s, want 200 and the first answer %s", again.status, again.body, first.body)
	}
	if got := f.exchanges(); got[http.StatusOK] != 1 || len(got) != 1 {
		t.Errorf("token calls by status: %v, want the one exchange of the first PUT", got)
	}
	if now, err := f.st.LoadToken(ctx, "inst-1"); err != nil || now.RefreshToken != tok.RefreshToken || now.AccessToken != tok.AccessToken {
		t.Errorf("the retry changed the stored tokens (%v)", err)
	}
	if dump := redistest.Dump(t, f.r); strings.Contains(dump, code) {
		t.Error("Redis holds the grant code in clear")
	}

	// A PUT with a code Heroku refuses (a mistaken or hostile one) leaves
	// the instance registered by the first: its retry is still a repeat.
	if resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody("not-a-grant-code")); resp.status != http.StatusUnprocessableEntity {
		t.Fatalf("a code Heroku refuses: got %d, want 422: %s", resp.status, resp.body)
	}
	if resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(code)); resp.status != http.StatusOK {
		t.Fatalf("the first code after a refused one: got %d, want 200: %s", resp.status, resp.body)
	}
	if got := f.exchanges(); got[http.StatusOK] != 1 || len(got) != 2 {
		t.Errorf("token calls by status: %v, want the first PUT's exchange and the refused code's", got)
	}

	// A new code for the registered instance is exchanged, and its tokens replace the first.
	code2 := f.fake.GrantCode("inst-1")
	if resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(code2)); resp.status != http.StatusOK {
		t.Fatalf("a new code: got %d, want 200: %s", resp.status, resp.body)
	}
	if got := f.exchanges(); got[http.StatusOK] != 2 {
		t.Errorf("token calls by status: %v, want the new code exchanged", got)
	}
	if now, err := f.st.LoadToken(ctx, "inst-1"); err != nil || now.RefreshToken == tok.RefreshToken {
		t.Errorf("the new code's tokens were not stored (%v)", err)
	}

	// Once deprovisioned, the instance holds no tokens: the code is
	// exchanged again, Heroku refuses it, and the answer says so.
	if resp := f.api(http.MethodDelete, "/api/v1/instances/inst-1", ""); resp.status != http.StatusOK {
		t.Fatalf("delete: got %d: %s", resp.status, resp.body)
	}
	resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(code2))
	if resp.status != http.StatusUnprocessableEntity || !strings.Contains(resp.body, "Heroku refused the oauth_grant") {
		t.Errorf("the spent code after a DELETE: got %d, want 422 from Heroku: %s", resp.status, resp.body)
	}
}

// TestOneGrantTwoRegistrationsAtOnce: two PUTs carry the same grant code at
// once, because the partner sent it twice or because its client gave up
// on a slow exchange and retried while the first still ran. Only one
// exchange reaches Heroku, and neither PUT answers 422.
func TestOneGrantTwoRegistrationsAtOnce(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		// firstTimeout is the first client's timeout; 0 waits for the answer.
		firstTimeout time.Duration
	}{
		{name: "both wait"},
		{name: "the first client gives up", firstTimeout: 200 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if err := f.fake.AddAddon(herokufake.AddonSpec{ID: "inst-1", App: "app-1", ConfigVars: []string{"MYADDON_URL"}}); err != nil {
				t.Fatal(err)
			}
			code := f.fake.GrantCode("inst-1")
			f.fake.Script(herokufake.OAuthToken, herokufake.Delay(time.Second))
			var wg sync.WaitGroup
			statuses := make([]int, 2)
			errs := make([]error, 2)
			for i, timeout := range []time.Duration{tt.firstTimeout, 0} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					statuses[i], errs[i] = f.putWithTimeout("/api/v1/instances/inst-1", grantBody(code), timeout)
				}()
				if timeout > 0 {
					wg.Wait() // its client gave up while the exchange is slow: the retry follows
				}
			}
			wg.Wait()
			if tt.firstTimeout > 0 && !errors.Is(errs[0], context.DeadlineExceeded) {
				t.Fatalf("the first client: got %d, %v, want it to give up", statuses[0], errs[0])
			}
			first := 0
			if tt.firstTimeout > 0 {
				first = 1
			}
			for i := first; i < 2; i++ {
				if errs[i] != nil || statuses[i] != http.StatusOK {
					t.Errorf("PUT %d: got %d, %v, want 200", i+1, statuses[i], errs[i])
				}
			}
			f.srv.Close() // waits for the first PUT's work, which goes on after its client gave up
			if got := f.exchanges(); got[http.StatusOK] != 1 || len(got) != 1 {
				t.Errorf("token calls by status: %v, want one exchange", got)
			}
			if tok, err := f.st.LoadToken(context.Background(), "inst-1"); err != nil || tok.RefreshToken.IsZero() {
				t.Errorf("tokens after the registrations: %v", err)
			}
		})
	}
}

// putWithTimeout sends an API PUT with a client that gives up after
// timeout (0: a minute), and returns the status. It may run on any
// goroutine.
func (f *fixture) putWithTimeout(path, body string, timeout time.Duration) (int, error) {
	if timeout == 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// A PUT with an oauth_grant that reaches the registry once its process has
// begun to stop (registry.WaitGrants) is refused with 503 and its code is
// not sent to Heroku: the process would exit before it stored the tokens
// the spent code bought, where unspent the code registers the instance
// through another process.
func TestGrantRefusedUnexchangedOnceStopping(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if err := f.fake.AddAddon(herokufake.AddonSpec{ID: "inst-1", App: "app-1", ConfigVars: []string{"MYADDON_URL"}}); err != nil {
		t.Fatal(err)
	}
	code := f.fake.GrantCode("inst-1")
	if err := f.params.Registry.WaitGrants(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := f.api(http.MethodPut, "/api/v1/instances/inst-1", grantBody(code))
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, "not exchanged") {
		t.Errorf("PUT while stopping = %d %s; want 503 with Retry-After, saying the grant was not exchanged", r.status, r.body)
	}
	if n := len(f.fake.Calls(herokufake.OAuthToken)); n != 0 {
		t.Errorf("%d calls to Heroku's token endpoint, want the code left unspent", n)
	}
	if _, err := f.st.Instance(context.Background(), "inst-1"); err == nil {
		t.Error("inst-1 is registered by a PUT refused as the process stopped")
	}
}
