package breaker_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/tasks"
)

// A push Heroku answered 2xx whose body never arrived whole (the
// connection reset halfway through it, or the body trickling past the
// client's timeout, as during an incident at Heroku or on the network
// between) is a call whose answer was lost on the way, as a reset before
// the status line is: it says nothing of the account, nor that something
// other than Heroku answers. Counted as answers "Heroku never gives", a
// wave met by such an incident opened the breaker and paused every bulk
// rotation until an operator resumed it, its reason asking whether
// HEROKU_API_URL is Heroku's. A 2xx whose whole body is no config (a page,
// an empty config) still counts.
func TestPushesWhose2xxBodyBreaksOffAreNoDenials(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t, policy)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The add-ons from the tenth on answer with a trickle.
		if strings.HasPrefix(r.URL.Path, "/addons/0000001") {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "4096")
			w.WriteHeader(http.StatusOK)
			for range 40 {
				if _, err := w.Write([]byte(" ")); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				time.Sleep(50 * time.Millisecond)
			}
			return
		}
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n[{\"name\":\"MYADDON_URL\",\"val")
		_ = buf.Flush()
	}))
	t.Cleanup(front.Close)
	c, err := heroku.NewClient(heroku.WithAPIURL(front.URL), heroku.WithTokenStore(liveTokens{}),
		heroku.WithHTTPClient(&http.Client{Timeout: 500 * time.Millisecond,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}))
	if err != nil {
		t.Fatal(err)
	}
	push := func(n int) {
		t.Helper()
		id := fmt.Sprintf("%08d-89ab-cdef-0123-456789abcdef", n)
		err := c.UpdateConfig(ctx, heroku.Target{AddonID: id, APIVersion: heroku.APIVersionV3},
			[]heroku.ConfigVar{{Name: "MYADDON_URL", Value: secret.New(fmt.Sprintf("postgres://u:new%d@db/x", n))}})
		if err == nil {
			t.Fatalf("push %d confirmed by a body that broke off", n)
		}
		g.b.Observe(ctx, id, err)
	}
	for n := range 10 {
		push(n)
	}
	for n := 10; n < 12; n++ {
		push(n)
	}
	s, err := g.b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Open || g.paused(t, tasks.QueueBulk) || s.Window.Denied != 0 {
		t.Fatalf("status = %+v, window %+v; want closed, none denied", s, s.Window)
	}
}

// liveTokens holds a valid token for every add-on.
type liveTokens struct{}

func (liveTokens) LoadToken(context.Context, string) (heroku.Token, error) {
	return heroku.Token{AccessToken: secret.New("access"), RefreshToken: secret.New("refresh"),
		ExpiresAt: time.Now().Add(8 * time.Hour)}, nil
}

func (liveTokens) SaveToken(context.Context, string, heroku.Token) error { return nil }
