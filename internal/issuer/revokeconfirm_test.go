package issuer_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// reply is one scripted answer: a status, a Content-Type and a body.
type reply struct {
	status   int
	ct, body string
}

// Gateways' and frameworks' answers for a path they have no route for,
// which no list of known bodies covers: a DELETE route dropped in a
// deploy answers every revocation with one of them.
var unroutedNotFound = map[string]reply{
	"aws api gateway": {404, "application/json", `{"message":"Not Found"}`},
	"kong":            {404, "application/json; charset=utf-8", `{"message":"no Route matched with those values"}`},
	"fastify":         {404, "application/json", `{"message":"Route DELETE:/credentials/x not found","error":"Not Found","statusCode":404}`},
	"koa":             {404, "text/plain; charset=utf-8", "Not Found"},
	"empty":           {404, "", ""},
}

// Pages a catch-all route or a proxy answers with 200, which sniffing the
// Content-Type of the body alone misses.
var hiddenPages = map[string]reply{
	"index with a byte-order mark": {200, "text/html; charset=utf-8",
		"\ufeff<!DOCTYPE html><html><head><title>App</title></head><body><div id=\"root\"></div></body></html>"},
	"xhtml sign-in page": {200, "text/html", `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Sign in</title></head><body><form></form></body></html>`},
	"meta refresh": {200, "text/html", `<meta http-equiv="refresh" content="0; url=/sso/login"><p>Signing in...</p>`},
}

// revokeAgainst serves DELETE with del and a verify of cred_1 with verify,
// and returns how many verifies were asked and what Revoke made of it. A
// verify of any other credential (worksForAny's probe) gets 422, as an
// issuer whose verify tells credentials apart answers one it never minted.
func revokeAgainst(t *testing.T, del, verify reply) (int, error) {
	t.Helper()
	return revokeAgainstProbed(t, del, verify, reply{422, "application/json", `{"error":"unknown_credential"}`})
}

// revokeAgainstProbed is revokeAgainst whose verify of any credential but
// cred_1 gets probe.
func revokeAgainstProbed(t *testing.T, del, verify, probe reply) (int, error) {
	t.Helper()
	var verifies atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		a := del
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/credentials/cred_1/verify":
			a = verify
			verifies.Add(1)
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/verify"):
			a = probe
		}
		if a.ct != "" {
			w.Header().Set("Content-Type", a.ct)
		}
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	t.Cleanup(srv.Close)
	h, err := issuer.NewHTTP(srv.URL, key, issuer.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	err = h.Revoke(context.Background(), "inst-1", "cred_1")
	return int(verifies.Load()), err
}

// A verify that answers 2xx for every credential, one that cannot exist
// too (a stub), says nothing of the one revoked: the DELETE's 404 keeps
// the contract's meaning, revoked, rather than be retried for ever. A
// probe that fails for now leaves the question open.
func TestRevoke404WithAVerifyThatSaysEverythingWorks(t *testing.T) {
	t.Parallel()
	works := reply{200, "application/json", `{"ok":true}`}
	del := reply{404, "application/json", `{"error":"no_such_credential"}`}
	if _, err := revokeAgainstProbed(t, del, works, works); err != nil {
		t.Errorf("a stub verify: Revoke = %v, want revoked", err)
	}
	_, err := revokeAgainstProbed(t, del, works, reply{503, "text/plain", "down"})
	if e := (*issuer.Error)(nil); !errors.As(err, &e) || e.Code != "service_unavailable" || !issuer.IsTransient(err) {
		t.Errorf("a probe answered 503: Revoke = %#v, want a transient error", err)
	}
}

// A 404 to DELETE counts as a revocation (the contract's "no such
// credential") unless the issuer's own verify says the credential still
// works: then the DELETE never reached the issuer, and it is retried
// (I3). An issuer without verify, one that forgets what it revoked, and one
// that says the credential does not work lose nothing.
func TestRevoke404IsCheckedWithVerify(t *testing.T) {
	t.Parallel()
	verifies := map[string]struct {
		verify  reply
		revoked bool
		code    string // when not revoked
	}{
		"verify says it works":          {reply{200, "application/json", `{"ok":true}`}, false, issuer.CodeStillWorks},
		"verify says it works, no body": {reply{204, "", ""}, false, issuer.CodeStillWorks},
		"verify says it is revoked":     {reply{410, "application/json", `{"error":"credential_revoked"}`}, true, ""},
		"verify says it does not work":  {reply{422, "application/json", `{"error":"unknown_credential"}`}, true, ""},
		"verify unsupported":            {reply{404, "application/json", `{"error":"verify_unsupported"}`}, true, ""},
		"verify answers a page":         {reply{200, "text/html", "<!DOCTYPE html><html><body>hi</body></html>"}, true, ""},
		"verify refused":                {reply{403, "application/json", `{"error":"forbidden"}`}, true, ""},
		"verify fails for now":          {reply{503, "text/plain", "down"}, false, "service_unavailable"},
		// A gateway that answers the DELETE 404 may throttle verify too:
		// come back later is no answer.
		"verify throttled":      {reply{429, "application/json", `{"message":"Too Many Requests"}`}, false, "too_many_requests"},
		"verify timed out":      {reply{408, "text/plain", "Request Timeout"}, false, "request_timeout"},
		"verify asked too soon": {reply{425, "", ""}, false, "too_early"},
	}
	for delName, del := range unroutedNotFound {
		for verName, v := range verifies {
			t.Run(delName+", "+verName, func(t *testing.T) {
				t.Parallel()
				asked, err := revokeAgainst(t, del, v.verify)
				if asked != 1 {
					t.Errorf("%d verifies asked, want 1", asked)
				}
				var e *issuer.Error
				switch {
				case v.revoked && err != nil:
					t.Errorf("Revoke = %v, want revoked", err)
				case !v.revoked && (!errors.As(err, &e) || e.Code != v.code || !issuer.IsTransient(err)):
					t.Errorf("Revoke = %#v, want a transient %s error", err, v.code)
				}
			})
		}
	}
}

// A 2xx page to DELETE is no revocation (page_answer), however the page
// opens, unless the issuer's own verify says the credential does not
// work; a verify saying it works says why (still_works).
func TestRevokePageAnswerIsCheckedWithVerify(t *testing.T) {
	t.Parallel()
	for name, page := range hiddenPages {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cases := []struct {
				verify reply
				code   string // "" for revoked
			}{
				{reply{404, "application/json", `{"error":"verify_unsupported"}`}, issuer.CodePageAnswer},
				{page, issuer.CodePageAnswer},
				{reply{200, "application/json", `{}`}, issuer.CodeStillWorks},
				{reply{410, "application/json", `{"error":"credential_revoked"}`}, ""},
			}
			for _, c := range cases {
				_, err := revokeAgainst(t, page, c.verify)
				var e *issuer.Error
				switch {
				case c.code == "" && err != nil:
					t.Errorf("verify %d: Revoke = %v, want revoked", c.verify.status, err)
				case c.code != "" && (!errors.As(err, &e) || e.Code != c.code || !issuer.IsTransient(err)):
					t.Errorf("verify %d %q: Revoke = %#v, want a transient %s error", c.verify.status, c.verify.body, err, c.code)
				}
			}
		})
	}
}

// The issuer's own XML answers to DELETE stay its word: a 2xx whose first
// element is the issuer's own is no page, whatever elements it holds
// (<metadata>, <header>, <title>), and an XML 403 is a refusal, permanent.
func TestRevokeXMLOfTheIssuersIsNoPage(t *testing.T) {
	t.Parallel()
	for name, del := range map[string]reply{
		"bare element": {200, "application/xml", `<revoked id="cred_1"/>`},
		"metadata":     {200, "application/xml", `<?xml version="1.0"?><response><metadata><id>r1</id></metadata></response>`},
		"header":       {200, "application/xml", `<?xml version="1.0"?><result><header><code>0</code></header></result>`},
		"soap":         {200, "text/xml", `<?xml version="1.0"?><Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body>ok</Body></Envelope>`},
		"title":        {200, "application/xml", `<credential><title>cred_1</title><state>revoked</state></credential>`},
	} {
		asked, err := revokeAgainst(t, del, reply{200, "application/json", `{}`})
		if err != nil || asked != 0 {
			t.Errorf("%s: Revoke = %v after %d verifies, want revoked without asking", name, err, asked)
		}
	}
	_, err := revokeAgainst(t, reply{403, "application/xml", `<?xml version="1.0"?><error><header><code>forbidden</code></header></error>`},
		reply{404, "", ""})
	if !issuer.IsPermanent(err) {
		t.Errorf("an XML 403 of the issuer's = %v, want permanent", err)
	}
}

// A 410 to DELETE is how many APIs answer a second DELETE, the first one's
// answer lost: verify's word that the credential does not work records it
// revoked, rather than set aside as a refusal no retry can clear. Without
// that word it stays a refusal; a verify that says it works, or cannot say
// yet, leaves it to be tried again.
func TestRevoke410IsCheckedWithVerify(t *testing.T) {
	t.Parallel()
	gone := reply{410, "application/json", `{"error":"credential_revoked"}`}
	for name, c := range map[string]struct {
		verify    reply
		revoked   bool
		permanent bool
		code      string
	}{
		"verify says it is revoked": {reply{410, "application/json", `{"error":"credential_revoked"}`}, true, false, ""},
		"verify says unknown":       {reply{422, "application/json", `{"error":"unknown_credential"}`}, true, false, ""},
		"verify unsupported":        {reply{404, "application/json", `{"error":"verify_unsupported"}`}, false, true, "credential_revoked"},
		"verify says it works":      {reply{200, "application/json", `{"ok":true}`}, false, false, issuer.CodeStillWorks},
		"verify throttled":          {reply{429, "", ""}, false, false, "too_many_requests"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			asked, err := revokeAgainst(t, gone, c.verify)
			if asked != 1 {
				t.Errorf("%d verifies asked, want 1", asked)
			}
			var e *issuer.Error
			switch {
			case c.revoked && err != nil:
				t.Errorf("Revoke = %v, want revoked", err)
			case !c.revoked && (!errors.As(err, &e) || e.Code != c.code || issuer.IsPermanent(err) != c.permanent):
				t.Errorf("Revoke = %#v, want a %s error, permanent %v", err, c.code, c.permanent)
			}
		})
	}
}
