package heroku_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/heroku"
)

// The BeforeSend hook runs once the token is loaded and the limiter has
// granted the call, just before it is sent; an error from it sends nothing.
// A call that cannot get a token never reaches it.
func TestBeforeSendRunsJustBeforeAConfigUpdate(t *testing.T) {
	t.Parallel()
	s := newScript(t)
	s.on(patchRoute, reply{status: 200, body: okConfig})
	lim := &countingLimiter{}
	c := newClient(t, s, heroku.WithTokenStore(newMemTokens(addonID, validToken())), heroku.WithLimiter(lim))
	var calls int
	var waitsSeen int
	ctx := heroku.WithBeforeSend(context.Background(), func() error {
		calls++
		lim.mu.Lock()
		waitsSeen = lim.waits
		lim.mu.Unlock()
		if n := len(s.requests(patchRoute)); n != 0 {
			t.Errorf("hook ran after %d requests were sent", n)
		}
		return nil
	})
	if err := c.UpdateConfig(ctx, v3Target(), oneVar()); err != nil {
		t.Fatal(err)
	}
	if calls != 1 || waitsSeen != 1 {
		t.Errorf("hook ran %d times, after %d limiter waits; want once, after the wait", calls, waitsSeen)
	}

	refuse := errors.New("store down")
	ctx = heroku.WithBeforeSend(context.Background(), func() error { return refuse })
	if err := c.UpdateConfig(ctx, v3Target(), oneVar()); !errors.Is(err, refuse) || heroku.IsPermanent(err) {
		t.Errorf("err = %v, want the hook's error, transient", err)
	}
	if n := len(s.requests(patchRoute)); n != 1 {
		t.Errorf("%d PATCH requests, want 1: a refused hook sends nothing", n)
	}

	noToken := newClient(t, s, heroku.WithTokenStore(newMemTokens("other", validToken())))
	calls = 0
	ctx = heroku.WithBeforeSend(context.Background(), func() error { calls++; return nil })
	if err := noToken.UpdateConfig(ctx, v3Target(), oneVar()); !heroku.IsTokenUnusable(err) || !heroku.IsPermanent(err) || calls != 0 {
		t.Errorf("without a token: err %v, hook ran %d times; want a permanent unusable-token error and no hook", err, calls)
	}
}

// An unreadable stored token is permanent, like a missing one.
func TestUnreadableTokenIsPermanent(t *testing.T) {
	t.Parallel()
	err := errors.Join(heroku.ErrTokenUnreadable, errors.New("seal: cannot open value"))
	if !heroku.IsPermanent(err) || !heroku.IsTokenUnusable(err) {
		t.Errorf("Classify = %s, want permanent and unusable", heroku.Classify(err))
	}
}

func TestAddonState(t *testing.T) {
	t.Parallel()
	route := "GET /addons/" + addonID
	for _, tc := range []struct {
		name  string
		reply reply
		want  string
		err   bool
	}{
		{"provisioned", reply{status: 200, body: `{"id":"x","state":"provisioned"}`}, heroku.AddonProvisioned, false},
		{"deprovisioned", reply{status: 200, body: `{"id":"x","state":"deprovisioned"}`}, heroku.AddonDeprovisioned, false},
		{"404", reply{status: 404, body: `{"id":"not_found","message":"Couldn't find that add-on."}`}, heroku.AddonMissing, false},
		{"410", reply{status: 410, body: `{"id":"gone"}`}, heroku.AddonMissing, false},
		{"403", reply{status: 403, body: `{"id":"forbidden"}`}, "", true},
		// A proxy's 404, without Heroku's error id, says nothing of the add-on.
		{"404 page", reply{status: 404, body: `<html><h1>404 Not Found</h1></html>`, header: map[string]string{"Content-Type": "text/html"}}, "", true},
		{"404 gateway", reply{status: 404, body: `{"message":"Not Found"}`}, "", true},
		{"410 empty", reply{status: 410}, "", true},
		{"malformed", reply{status: 200, body: `{}`}, "", true},
		{"state named twice", reply{status: 200, body: `{"state":"provisioned","state":"deprovisioned"}`}, "", true},
		{"state named in two cases", reply{status: 200, body: `{"state":"provisioned","STATE":"deprovisioned"}`}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newScript(t)
			s.on(route, tc.reply)
			c := newClient(t, s, heroku.WithTokenStore(newMemTokens(addonID, validToken())))
			state, err := c.AddonState(context.Background(), v3Target())
			if state != tc.want || (err != nil) != tc.err {
				t.Fatalf("AddonState = %q, %v; want %q (error %v)", state, err, tc.want, tc.err)
			}
			got := s.requests(route)
			if len(got) != 1 || got[0].header.Get("Authorization") != "Bearer "+accessToken ||
				!strings.Contains(got[0].header.Get("Accept"), "version=3") {
				t.Errorf("requests: %+v; want one V3 call with the add-on's token", got)
			}
			if tc.name == "deprovisioned" && !heroku.AddonGone(state) {
				t.Error("AddonGone(deprovisioned) = false")
			}
		})
	}
	c := newClient(t, newScript(t))
	if _, err := c.AddonState(context.Background(), v1Target()); !errors.Is(err, heroku.ErrNotConfigured) {
		t.Errorf("V1 AddonState: %v, want ErrNotConfigured", err)
	}
}
