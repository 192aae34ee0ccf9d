package web_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// holdSessionEnd is a go-redis hook that holds the write of a sign-out's
// mark until the request's context is done or a while has passed, so that
// a customer's browser can go away in between.
type holdSessionEnd struct{ reached chan struct{} }

func (holdSessionEnd) DialHook(next redis.DialHook) redis.DialHook { return next }

func (holdSessionEnd) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h holdSessionEnd) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if args := cmd.Args(); cmd.Name() == "set" && len(args) > 1 && strings.Contains(args[1].(string), "session_ended:") {
			close(h.reached)
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
			}
		}
		return next(ctx, cmd)
	}
}

// TestLogoutOfABrowserThatLeftEndsTheSession signs out and closes the
// connection before the answer comes (the customer closed the tab at once,
// or Heroku's router gave up on a slow Redis after 30 seconds): the
// sign-out is applied all the same, so a copy of the cookie, or the
// browser's own, which never saw its removal, no longer opens the
// dashboard.
func TestLogoutOfABrowserThatLeftEndsTheSession(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	session := f.login("inst-1")
	token := f.csrf(session)
	hold := holdSessionEnd{reached: make(chan struct{})}
	f.r.Client.AddHook(hold)

	conn, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	body := url.Values{"csrf_token": {token}}.Encode()
	req := "POST /dashboard/logout HTTP/1.1\r\nHost: rekey\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
		"Cookie: rekey_session=" + session.Value + "\r\nContent-Length: " + itoa(int64(len(body))) + "\r\n\r\n" + body
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hold.reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the sign-out never wrote its mark")
	}
	_ = conn.Close()

	deadline := time.Now().Add(5 * time.Second)
	for {
		resp := f.get("/dashboard", session)
		if resp.status == http.StatusUnauthorized {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session still opens the dashboard (%d) after a sign-out whose browser left before the answer", resp.status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
