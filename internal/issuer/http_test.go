package issuer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/secret"
)

// demoIssuer returns a Demo served over real HTTP and an HTTP issuer
// pointed at it.
func demoIssuer(t *testing.T, opts ...issuer.DemoOption) (*issuer.Demo, *issuer.HTTP) {
	t.Helper()
	d := issuer.NewDemo(opts...)
	srv := httptest.NewServer(http.StripPrefix("/rekey", issuer.NewDemoServer(d, key)))
	t.Cleanup(srv.Close)
	h, err := issuer.NewHTTP(srv.URL+"/rekey/", key, issuer.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	return d, h
}

func TestHTTPAgainstDemoServer(t *testing.T) {
	t.Parallel()
	d, h := demoIssuer(t)
	ctx := context.Background()

	first, err := h.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	value := first.Config[issuer.DefaultConfigVar].Reveal()
	if again.ID != first.ID || again.Config[issuer.DefaultConfigVar].Reveal() != value {
		t.Fatalf("same rotation minted %s then %s", first.ID, again.ID)
	}
	if !strings.HasPrefix(value, "postgres://u_"+first.ID+":") || !strings.HasSuffix(value, "@db.myaddon.example/d_inst-1") {
		t.Errorf("value %q does not look like a database URL", value)
	}
	if id, ok := d.Lookup(value); !ok || id != first.ID {
		t.Errorf("Lookup = %q, %v", id, ok)
	}
	other, err := h.Mint(ctx, "inst-1", "rot-2")
	if err != nil || other.ID == first.ID {
		t.Fatalf("second rotation: %v, id %s", err, other.ID)
	}
	if st := d.Stats(); st.MintCalls != 3 || st.Minted != 2 || st.MintedPerRotation["rot-1"] != 1 {
		t.Errorf("stats = %+v", st)
	}

	if err := h.Verify(ctx, "inst-1", first.ID); err != nil {
		t.Fatalf("Verify live credential: %v", err)
	}
	for i := range 2 { // the second revoke gets 404, which also means revoked
		if err := h.Revoke(ctx, "inst-1", first.ID); err != nil {
			t.Fatalf("Revoke #%d: %v", i+1, err)
		}
	}
	if _, ok := d.RevokedAt(first.ID); !ok || d.Valid(first.ID) || !d.Valid(other.ID) {
		t.Errorf("after revoke: revoked %v, first valid %v, other valid %v", ok, d.Valid(first.ID), d.Valid(other.ID))
	}
	if err := h.Verify(ctx, "inst-1", first.ID); !issuer.IsPermanent(err) {
		t.Errorf("Verify revoked credential = %v, want permanent", err)
	}
	// Two verifies asked by the test, and one by the second DELETE, whose 404
	// is confirmed by verify before it counts as a revocation.
	if st := d.Stats(); st.Revoked != 1 || st.VerifyCalls != 3 {
		t.Errorf("stats = %+v", st)
	}
}

func TestHTTPVerifyUnsupported(t *testing.T) {
	t.Parallel()
	_, h := demoIssuer(t, issuer.WithoutVerify())
	err := h.Verify(context.Background(), "inst-1", "cred_x")
	if !errors.Is(err, issuer.ErrVerifyUnsupported) || issuer.IsPermanent(err) || issuer.IsTransient(err) {
		t.Errorf("Verify = %v, want ErrVerifyUnsupported, neither permanent nor transient", err)
	}
}

func TestHTTPDemoFaultsCrossTheWire(t *testing.T) {
	t.Parallel()
	_, h := demoIssuer(t, issuer.WithMintFault(func(instanceID, _ string) error {
		if instanceID == "inst-down" {
			return &issuer.Error{Op: "mint", Status: http.StatusServiceUnavailable, Code: "database_restarting"}
		}
		return &issuer.Error{Op: "mint", Status: http.StatusUnprocessableEntity, Code: "instance_suspended"}
	}))
	_, err := h.Mint(context.Background(), "inst-down", "r")
	if !issuer.IsTransient(err) {
		t.Errorf("503 fault = %v, want transient", err)
	}
	_, err = h.Mint(context.Background(), "inst-bad", "r")
	var e *issuer.Error
	if !issuer.IsPermanent(err) || !errors.As(err, &e) || e.Code != "instance_suspended" {
		t.Errorf("422 fault = %v, want permanent with the issuer's code", err)
	}
}

func TestHTTPWrongKeyIsRefused(t *testing.T) {
	t.Parallel()
	d := issuer.NewDemo()
	srv := httptest.NewServer(issuer.NewDemoServer(d, key))
	t.Cleanup(srv.Close)
	h, err := issuer.NewHTTP(srv.URL, secret.New("not-the-key"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Mint(context.Background(), "inst-1", "rot-1")
	var e *issuer.Error
	if !errors.As(err, &e) || e.Status != http.StatusUnauthorized || d.Stats().Minted != 0 {
		t.Errorf("Mint with the wrong key = %v, minted %d", err, d.Stats().Minted)
	}
}

// scripted is an issuer that answers every request with one status and
// body, recording the escaped path and whether the signature was valid.
type scripted struct {
	status int
	body   string
	// header, when set, is the answer's Content-Type; "none" sends none
	// (Go's server would otherwise name one from the body).
	header string

	mu       sync.Mutex
	paths    []string
	bodies   []string
	badSigns int // requests whose v1 or v2 signature did not match
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.paths = append(s.paths, r.Method+" "+r.URL.EscapedPath())
	s.bodies = append(s.bodies, string(body))
	if issuer.VerifySignature(key, r.Header.Get(issuer.SignatureHeader), body, now, 0) != nil ||
		issuer.VerifyRequest(key, r, body, now, 0) != nil {
		s.badSigns++
	}
	s.mu.Unlock()
	switch s.header {
	case "":
	case "none":
		w.Header()["Content-Type"] = nil
	default:
		w.Header().Set("Content-Type", s.header)
	}
	w.WriteHeader(s.status)
	_, _ = io.WriteString(w, s.body)
}

func scriptedIssuer(t *testing.T, s *scripted, opts ...issuer.Option) *issuer.HTTP {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	h, err := issuer.NewHTTP(srv.URL, key, append([]issuer.Option{issuer.WithClock(func() time.Time { return now }),
		issuer.WithVerifyRechecks()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHTTPClassifiesStatuses(t *testing.T) {
	t.Parallel()
	const mintOK = `{"credential_id":"cred_1","config":{"MYADDON_URL":"postgres://u:p@h/d"}}`
	tests := []struct {
		op     string
		status int
		body   string
		want   string // ok, unsupported, permanent or transient
	}{
		{"mint", 201, mintOK, "ok"},
		{"mint", 200, mintOK, "ok"},
		{"mint", 200, `{"credential_id":"cred_1"}`, "transient"},
		{"mint", 200, `not json`, "transient"},
		{"mint", 400, `{"error":"bad instance"}`, "permanent"},
		{"mint", 404, ``, "permanent"},
		{"mint", 422, ``, "permanent"},
		{"mint", 408, ``, "transient"},
		{"mint", 429, ``, "transient"},
		{"mint", 500, ``, "transient"},
		{"mint", 503, `<html>down</html>`, "transient"},
		{"mint", 403, `{"error":"forbidden"}`, "permanent"},
		// A firewall's block page, a proxy's sign-in, the router's page for
		// an issuer app renamed: the mint, keyed by its rotation, is asked
		// again rather than the rotation failed for good.
		{"mint", 403, `<!DOCTYPE html><html><head><title>Access denied</title></head><body>Request blocked</body></html>`, "transient"},
		{"mint", 401, `<html><body>Sign in</body></html>`, "transient"},
		{"mint", 404, `<!DOCTYPE html><html><body>There's nothing here, yet.</body></html>`, "transient"},
		{"verify", 200, ``, "ok"},
		{"verify", 204, ``, "ok"},
		{"verify", 404, ``, "unsupported"},
		{"verify", 409, ``, "permanent"},
		{"verify", 410, ``, "permanent"},
		{"verify", 422, ``, "permanent"},
		{"verify", 502, ``, "transient"},
		{"revoke", 204, ``, "ok"},
		{"revoke", 404, ``, "ok"},
		{"revoke", 404, `<html>no such app</html>`, "transient"},
		{"revoke", 200, `<!DOCTYPE html><html><body><div id="root"></div></body></html>`, "transient"},
		{"revoke", 403, ``, "permanent"},
		{"revoke", 403, `{"error":"forbidden"}`, "permanent"},
		// A firewall's or a proxy's page is not the issuer refusing.
		{"revoke", 403, `<!DOCTYPE html><html><head><title>Access denied</title></head><body>Request blocked</body></html>`, "transient"},
		{"revoke", 401, `<html><body>Sign in</body></html>`, "transient"},
		{"revoke", 422, `<html><body>Unprocessable</body></html>`, "transient"},
		{"revoke", 500, ``, "transient"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %d %s", tt.op, tt.status, tt.body), func(t *testing.T) {
			t.Parallel()
			s := &scripted{status: tt.status, body: tt.body}
			err := call(scriptedIssuer(t, s), tt.op, "a/b c")
			if got := outcome(err); got != tt.want {
				t.Errorf("%s on %d = %v (%s), want %s", tt.op, tt.status, err, got, tt.want)
			}
			if s.badSigns != 0 {
				t.Errorf("%d requests arrived with a bad signature", s.badSigns)
			}
		})
	}
}

// call runs op against h for instance "inst-1" and credential (or rotation)
// id.
func call(h *issuer.HTTP, op, id string) error {
	ctx := context.Background()
	switch op {
	case "mint":
		_, err := h.Mint(ctx, "inst-1", id)
		return err
	case "verify":
		return h.Verify(ctx, "inst-1", id)
	}
	return h.Revoke(ctx, "inst-1", id)
}

func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, issuer.ErrVerifyUnsupported):
		return "unsupported"
	case issuer.IsPermanent(err):
		return "permanent"
	case issuer.IsTransient(err):
		return "transient"
	}
	return "neither"
}

// A 404 to DELETE is the issuer's word that the credential is gone, unless
// it comes as an HTML page: Heroku's router answers a renamed or deleted
// app's every path with one, and frameworks answer paths they have no
// route for with one. Such a page is retried, not taken for a revocation,
// unless the partner's issuer is known to answer that way
// (WithNotFoundPageRevoked).
func TestRevokeTakesA404PageForNoAnswer(t *testing.T) {
	t.Parallel()
	const page = "<!DOCTYPE html>\n<html><head><title>No such app</title></head><body>There is nothing here, yet.</body></html>"
	tests := []struct {
		name, header, body string
		revoked            bool
	}{
		{"json", "application/json", `{"error":"no_live_credential"}`, true},
		{"empty body labelled html", "text/html; charset=utf-8", "", true},
		{"blank body labelled html", "text/html", " \r\n", true},
		{"plain text of the issuer's", "text/plain; charset=utf-8", "no such credential\n", true},
		{"go's default answer", "text/plain; charset=utf-8", "404 page not found\n", false},
		{"fastapi's default answer", "application/json", `{"detail":"Not Found"}`, false},
		{"rails' default answer to json", "application/json; charset=utf-8", `{"status":404,"error":"Not Found"}`, false},
		{"spring boot's default answer to json", "application/json",
			`{"timestamp":"2026-03-01T12:00:00.000+00:00","status":404,"error":"Not Found","path":"/credentials/cred_1"}`, false},
		{"phoenix's default answer to json", "application/json", `{"errors":{"detail":"Not Found"}}`, false},
		{"json of the issuer's naming the status", "application/json", `{"status":404,"error":"no_such_credential"}`, true},
		{"html page", "text/html; charset=utf-8", page, false},
		{"html page in capitals", "Text/HTML", page, false},
		{"xhtml page", "application/xhtml+xml", page, false},
		{"html page without a content type", "none", page, false},
		{"html page sniffed by the issuer's server", "", page, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &scripted{status: http.StatusNotFound, body: tt.body, header: tt.header}
			err := scriptedIssuer(t, s).Revoke(context.Background(), "inst-1", "cred_1")
			if tt.revoked {
				if err != nil {
					t.Errorf("404 %s: %v, want revoked", tt.name, err)
				}
				return
			}
			var e *issuer.Error
			if !errors.As(err, &e) || e.Code != issuer.CodeNotFoundPage || e.Status != http.StatusNotFound || !issuer.IsTransient(err) {
				t.Errorf("404 %s: %#v, want a transient %s error", tt.name, err, issuer.CodeNotFoundPage)
			}
			if err != nil && strings.Contains(err.Error(), "nothing here") {
				t.Errorf("the page's text reached the error: %v", err)
			}
			s = &scripted{status: http.StatusNotFound, body: tt.body, header: tt.header}
			if err := scriptedIssuer(t, s, issuer.WithNotFoundPageRevoked(true)).Revoke(context.Background(), "inst-1", "cred_1"); err != nil {
				t.Errorf("404 %s with WithNotFoundPageRevoked: %v, want revoked", tt.name, err)
			}
		})
	}
}

// A 2xx to DELETE or to verify is a page only when its body reads as HTML:
// Express's res.send("ok") and Flask's return "revoked" label any text
// text/html, and such an issuer's answer is its own.
func TestTextLabelledHTMLIsNoPageIn2xx(t *testing.T) {
	t.Parallel()
	for _, op := range []string{"revoke", "verify"} {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			s := &scripted{status: http.StatusOK, body: "ok", header: "text/html; charset=utf-8"}
			h := scriptedIssuer(t, s, issuer.WithVerify(issuer.VerifyRequired, nil))
			if err := call(h, op, "cred_1"); err != nil {
				t.Errorf("%s answered 200 \"ok\" labelled text/html = %v, want done", op, err)
			}
		})
	}
}

// An issuer cannot pass its own error code for rekey's: a JSON answer
// naming not_found_page keeps the status's code.
func TestIssuerCannotClaimNotFoundPage(t *testing.T) {
	t.Parallel()
	s := &scripted{status: http.StatusForbidden, body: `{"error":"not_found_page"}`, header: "application/json"}
	err := scriptedIssuer(t, s).Revoke(context.Background(), "inst-1", "cred_1")
	var e *issuer.Error
	if !errors.As(err, &e) || e.Code != "forbidden" || !issuer.IsPermanent(err) {
		t.Errorf("403 naming not_found_page = %#v, want a permanent forbidden", err)
	}
}

func TestHTTPEscapesCredentialIDs(t *testing.T) {
	t.Parallel()
	s := &scripted{status: 204}
	h := scriptedIssuer(t, s)
	for _, op := range []string{"verify", "revoke"} {
		if err := call(h, op, "a/b c?d"); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"POST /credentials/a%2Fb%20c%3Fd/verify", "DELETE /credentials/a%2Fb%20c%3Fd"}
	if fmt.Sprint(s.paths) != fmt.Sprint(want) {
		t.Errorf("paths = %v, want %v", s.paths, want)
	}
	if s.badSigns != 0 {
		t.Errorf("%d requests with an escaped path arrived with a bad signature", s.badSigns)
	}
	if err := h.Revoke(context.Background(), "inst-1", ""); !errors.Is(err, issuer.ErrInvalid) || !issuer.IsPermanent(err) {
		t.Errorf("empty id = %v, want permanent ErrInvalid", err)
	}
}

func TestHTTPTransportErrorsAreTransient(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	h, err := issuer.NewHTTP(srv.URL+"/hooks/path-token-123", key)
	if err != nil {
		t.Fatal(err)
	}
	err = h.Revoke(context.Background(), "inst-1", "cred_1")
	var e *issuer.Error
	if !issuer.IsTransient(err) || strings.Contains(err.Error(), "path-token-123") ||
		!errors.As(err, &e) || e.Code != issuer.CodeRefused {
		t.Errorf("Revoke against a closed server = %v, want transient connection_refused without the URL", err)
	}
}

// An issuer built without WithHTTPClient keeps its connections to itself,
// so that no other code in the process can break a call the issuer
// answered. net/http puts a connection back in its idle pool before it
// hands a bodiless answer (the 204 a DELETE gets, an empty 404) to the call
// waiting for it; a CloseIdleConnections on the same transport in that gap
// closes the connection under the call, which then fails with
// "CloseIdleConnections called", read as transport_error, though the
// issuer acted. Every httptest.Server.Close calls it on
// http.DefaultTransport, and any library may. The trace's PutIdleConn runs
// in that gap, so the test reaps http.DefaultTransport there, then waits
// for the call to notice. It is not parallel: other tests' clients use
// http.DefaultTransport.
func TestHTTPCallsSurviveOthersClosingIdleConnections(t *testing.T) {
	h := scriptedIssuer(t, &scripted{status: http.StatusNoContent})
	var reaped atomic.Int64
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		PutIdleConn: func(err error) {
			if err != nil {
				return
			}
			http.DefaultTransport.(interface{ CloseIdleConnections() }).CloseIdleConnections()
			reaped.Add(1)
			time.Sleep(10 * time.Millisecond)
		},
	})
	for i := range 3 {
		if err := h.Revoke(ctx, "inst-1", "cred_1"); err != nil {
			t.Fatalf("revoke #%d answered 204 = %v, want nil", i+1, err)
		}
	}
	if reaped.Load() == 0 {
		t.Fatal("no connection went back to the idle pool: the test reaped nothing")
	}
}

func TestNewHTTPChecksInput(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"", "issuer.example", "ftp://issuer.example", "https://u:p@issuer.example", "https://issuer.example/?a=1"} {
		if _, err := issuer.NewHTTP(base, key); err == nil {
			t.Errorf("NewHTTP(%q) accepted a bad URL", base)
		}
	}
	if _, err := issuer.NewHTTP("https://issuer.example", secret.String{}); err == nil {
		t.Error("NewHTTP accepted an empty secret")
	}
	if _, err := issuer.NewHTTP("https://issuer.example", key, issuer.WithHTTPClient(nil)); err == nil {
		t.Error("NewHTTP accepted a nil client")
	}
}

// A mint answer too large to use (over 256 KiB) still tells which
// credential the issuer minted when it names one: the error is then an
// *UnusableCredentialError naming it, so that it is recorded and revoked
// (I3), wherever the id stands in the answer, up to 1 MiB in, read as
// encoding/json reads it (the last top-level key matching credential_id,
// case aside). An answer that names none, or names it only past 1 MiB, or
// that is no 2xx, stays an unreadable answer, retried.
func TestMintAnswerTooLargeStillNamesItsCredential(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 300<<10)
	tests := []struct {
		name   string
		status int
		body   string
		want   string // the id found, "" for none
	}{
		{"id after the config", 200, `{"config":{"MYADDON_URL":"` + big + `"},"credential_id":"cred_late"}`, "cred_late"},
		{"id first", 201, `{"credential_id":"cred_early","config":{"MYADDON_URL":"` + big + `"}}`, "cred_early"},
		{"id between other fields", 200, `{"meta":[1,{"a":"` + big + `"}],"credential_id":"cred_mid","extra":"` + big + `"}`, "cred_mid"},
		{"the same id twice", 200, `{"credential_id":"cred_2","pad":"` + big + `","credential_id":"cred_2"}`, "cred_2"},
		{"two ids", 200, `{"credential_id":"cred_a","pad":"` + big + `","credential_id":"cred_b"}`, "cred_b"},
		{"upper-case key", 200, `{"pad":"` + big + `","Credential_ID":"cred_upper"}`, "cred_upper"},
		{"no id", 200, `{"config":{"MYADDON_URL":"` + big + `"}}`, ""},
		{"nested id only", 200, `{"config":{"credential_id":"cred_nested","MYADDON_URL":"` + big + `"}}`, ""},
		{"id not a string", 200, `{"pad":"` + big + `","credential_id":7}`, ""},
		{"id past 1 MiB", 200, `{"pad":"` + strings.Repeat("x", 1<<20) + `","credential_id":"cred_far"}`, ""},
		{"not an object", 200, `["` + big + `","credential_id","cred_x"]`, ""},
		{"an error status", 500, `{"pad":"` + big + `","credential_id":"cred_err"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := scriptedIssuer(t, &scripted{status: tt.status, body: tt.body}).Mint(context.Background(), "inst-1", "rot_1")
			var ie *issuer.Error
			if !errors.As(err, &ie) || ie.Code != issuer.CodeUnreadable || ie.Status != tt.status {
				t.Fatalf("Mint = %v, want an unreadable answer with status %d", err, tt.status)
			}
			var unusable *issuer.UnusableCredentialError
			got := ""
			if errors.As(err, &unusable) {
				got = unusable.CredentialID
			}
			if got != tt.want {
				t.Errorf("credential named %q, want %q", got, tt.want)
			}
			if got != "" && unusable.BrokenOff {
				t.Error("BrokenOff = true for an answer read to its end: too large, it would be too large again")
			}
			if strings.Contains(err.Error(), "cred_") || strings.Contains(fmt.Sprintf("%#v", err), "cred_") {
				t.Errorf("the error shows the id: %v", err)
			}
		})
	}
}

// A 2xx mint answer that breaks off, or whose body never ends (a proxy
// holding the connection, a framework streaming), before its JSON ended
// still tells which credential the issuer minted when what was read names
// one, as an answer too large does: the error is an
// *UnusableCredentialError naming it, its config cut short, unchecked
// (ConfigUnchecked), and BrokenOff, where one too large is not: the
// rotation asks the mint again. One whose JSON ended before the body's
// framing did is the issuer's whole answer: the credential. The read stops
// at the client's timeout, whatever the issuer holds open.
func TestMintAnswerThatNeverEndsStillNamesItsCredential(t *testing.T) {
	t.Parallel()
	const whole = `{"credential_id":"cred_streamed","config":{"MYADDON_URL":"postgres://u:` +
		`0123456789abcdef0123456789abcdef@db.example/d"}}` + "\n"
	tests := []struct {
		name      string
		body      string
		end       string // "held" keeps the body open, "cut" closes it before its last chunk
		unchecked bool
	}{
		{"whole, then held open", whole, "held", false},
		{"whole, then cut", whole, "cut", false},
		{"half, then held open", whole[:60], "held", true},
		{"half, then cut", whole[:60], "cut", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write([]byte(tt.body))
				w.(http.Flusher).Flush()
				if tt.end == "cut" {
					conn, _, err := http.NewResponseController(w).Hijack()
					if err == nil {
						_ = conn.Close() // no terminating chunk
					}
					return
				}
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
			}))
			t.Cleanup(srv.Close)
			h, err := issuer.NewHTTP(srv.URL, key, issuer.WithHTTPClient(&http.Client{Timeout: 200 * time.Millisecond}))
			if err != nil {
				t.Fatal(err)
			}
			c, err := h.Mint(context.Background(), "inst-1", "rot-1")
			if !tt.unchecked {
				if err != nil || c.ID != "cred_streamed" ||
					c.Config["MYADDON_URL"].Reveal() != "postgres://u:0123456789abcdef0123456789abcdef@db.example/d" {
					t.Fatalf("Mint = %q, %v; want the credential its whole JSON names", c.ID, err)
				}
				return
			}
			var unusable *issuer.UnusableCredentialError
			if !errors.As(err, &unusable) || unusable.CredentialID != "cred_streamed" || unusable.Code() != issuer.CodeUnreadable {
				t.Fatalf("Mint = %v (transient: %v); want an unreadable answer naming cred_streamed so that it is revoked",
					err, issuer.IsTransient(err))
			}
			if !unusable.ConfigUnchecked {
				t.Error("ConfigUnchecked = false, want true")
			}
			if !unusable.BrokenOff {
				t.Error("BrokenOff = false, want true: the answer's reading failed, the mint may be asked again")
			}
			if strings.Contains(err.Error(), "cred_") || strings.Contains(fmt.Sprintf("%#v", err), "cred_") ||
				strings.Contains(err.Error(), "0123456789abcdef") {
				t.Errorf("the error shows the id or the secret: %v", err)
			}
		})
	}
}

// An issuer's answer that encoding/json would read as other text than the
// issuer wrote (bytes that are not UTF-8, half a surrogate pair escaped
// alone, both read as U+FFFD), or whose vars cannot reach a dyno's
// environment as written (a NUL, an '=' in a name), or names a var twice
// (encoding/json keeps the last value silently), or is blank, or a URL
// with white space around it or a control character inside, names a
// credential whose config no app could use: it is refused as unusable, so
// that it is revoked, never pushed. What encoding/json reads exactly
// passes as it is, a value of several lines, or another value ending with
// a space or a newline, too.
func TestMintAnswerReadOtherwiseThanWrittenIsUnusable(t *testing.T) {
	t.Parallel()
	answer := func(config string) string { return `{"credential_id":"cred_9","config":{` + config + `}}` }
	refused := map[string]string{
		"not UTF-8":                  `"MYADDON_URL":"postgres://u:p` + "\xff" + `@h/d"`,
		"not UTF-8 in a name":        `"MYADDON_` + "\xc3" + `URL":"postgres://u:p@h/d"`,
		"a first half alone":         `"MYADDON_URL":"postgres://u:p\ud800@h/d"`,
		"a first half at the end":    `"MYADDON_URL":"postgres://u:p@h/d\ud83d"`,
		"a second half alone":        `"MYADDON_URL":"postgres://u:p\udc00@h/d"`,
		"two first halves":           `"MYADDON_URL":"postgres://u:p\ud83d\ud83d@h/d"`,
		"a NUL escaped":              `"MYADDON_URL":"postgres://u:p\u0000@h/d"`,
		"a NUL in a name":            `"MYADDON\u0000_URL":"postgres://u:p@h/d"`,
		"an '=' in a name":           `"MYADDON_URL=x":"postgres://u:p@h/d"`,
		"one good var, one bad var":  `"MYADDON_URL":"postgres://u:p@h/d","MYADDON_KEY":"k\udfff"`,
		"a var named twice":          `"MYADDON_URL":"postgres://u:one@h/d","MYADDON_URL":"postgres://u:two@h/d"`,
		"a var named twice, escaped": `"MYADDON_URL":"postgres://u:one@h/d","MYADDON\u005fURL":"postgres://u:two@h/d"`,
		// Pushed, the apps would restart on a URL or key they cannot use.
		"a value of spaces":  `"MYADDON_URL":"   "`,
		"a trailing newline": `"MYADDON_URL":"postgres://u:p@h/d\n"`,
		"a carriage return":  `"MYADDON_URL":"postgres://u:p@h/d\r\n"`,
		"a leading space":    `"MYADDON_URL":" postgres://u:p@h/d"`,
		"a trailing tab":     `"MYADDON_URL":"https://h/d?k=sk_live_0123456789\t"`,
		// A password from a base64 encoder that wraps its lines (Python's
		// encodebytes, Java's MIME encoder), or another control character
		// inside: url.Parse refuses the URL.
		"a wrapped password": `"MYADDON_URL":"postgres://u:QUFB\nQkJD@h/d"`,
		"a tab inside":       `"MYADDON_URL":"postgres://u:QUFB\tQkJD@h/d"`,
		"a DEL inside":       `"MYADDON_URL":"postgres://u:QUFB\u007fQkJD@h/d"`,
	}
	for name, config := range refused {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := scriptedIssuer(t, &scripted{status: 201, body: answer(config)}).Mint(context.Background(), "inst-1", "rot_1")
			var unusable *issuer.UnusableCredentialError
			if !errors.As(err, &unusable) || unusable.CredentialID != "cred_9" || unusable.Code() != issuer.CodeMalformed {
				t.Fatalf("Mint = %v, want the credential named as unusable", err)
			}
		})
	}
	accepted := map[string]struct{ config, want string }{
		"a pair escaped":           {`"MYADDON_URL":"pw-\ud83d\ude00"`, "pw-\U0001F600"},
		"U+FFFD written":           {`"MYADDON_URL":"pw-` + "\uFFFD" + `"`, "pw-\uFFFD"},
		"U+FFFD escaped":           {`"MYADDON_URL":"pw-\ufffd"`, "pw-\uFFFD"},
		"a backslash, then text":   {`"MYADDON_URL":"pw-\\ud800"`, `pw-\ud800`},
		"a certificate's lines":    {`"MYADDON_URL":"-----BEGIN-----\nMIIB\n-----END-----\n"`, "-----BEGIN-----\nMIIB\n-----END-----\n"},
		"an '=' in a value":        {`"MYADDON_URL":"https://h/?a=b"`, "https://h/?a=b"},
		"escaped quote and slash":  {`"MYADDON_URL":"p\"w\/x\\"`, `p"w/x\`},
		"a password, a space last": {`"MYADDON_URL":"Zq9 x!4 "`, "Zq9 x!4 "},
		"JSON, its newline last":   {`"MYADDON_URL":"{\"k\":1}\n"`, "{\"k\":1}\n"},
		"a URL of several hosts":   {`"MYADDON_URL":"postgres://u:p@h1:5432,h2:5432/d"`, "postgres://u:p@h1:5432,h2:5432/d"},
		// Values of several lines that hold a URL, but are none.
		"a key file holding a URL": {`"MYADDON_URL":"{\n  \"type\": \"service_account\",\n  \"token_uri\": \"https://oauth2.googleapis.com/token\"\n}\n"`,
			"{\n  \"type\": \"service_account\",\n  \"token_uri\": \"https://oauth2.googleapis.com/token\"\n}\n"},
		"an INI file holding a URL": {`"MYADDON_URL":"[db]\nurl = postgres://u:p@h/d\nuser = u"`, "[db]\nurl = postgres://u:p@h/d\nuser = u"},
	}
	for name, tt := range accepted {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := scriptedIssuer(t, &scripted{status: 201, body: answer(tt.config)}).Mint(context.Background(), "inst-1", "rot_1")
			if err != nil {
				t.Fatalf("Mint = %v, want the credential", err)
			}
			if got := c.Config["MYADDON_URL"].Reveal(); got != tt.want {
				t.Errorf("MYADDON_URL = %q, want %q", got, tt.want)
			}
		})
	}
}

// An issuer that writes credential_id as a number (a database's key) minted
// that credential all the same. Read as malformed and retried, each answer
// left one more working credential nobody knew of; now the answer names
// it, by the number's text, as unusable, so that it is recorded and revoked.
// A number that is not whole, or an id named twice, names nothing.
func TestMintAnswerWithANumericIDNamesItsCredential(t *testing.T) {
	t.Parallel()
	const config = `"config":{"MYADDON_URL":"postgres://u:0123456789abcdef@h/d"}`
	for body, want := range map[string]string{
		`{"credential_id":4217,` + config + `}`:                       "4217",
		`{` + config + `,"credential_id":90071992547409930}`:          "90071992547409930",
		`{"credential_id":4.2e3,` + config + `}`:                      "",
		`{"credential_id":-7,` + config + `}`:                         "",
		`{"credential_id":1,"credential_id":"cred_1",` + config + `}`: "",
	} {
		_, err := scriptedIssuer(t, &scripted{status: 201, body: body}).Mint(context.Background(), "inst-1", "rot_1")
		var unusable *issuer.UnusableCredentialError
		switch {
		case want == "" && errors.As(err, &unusable):
			t.Errorf("%s: names credential %q, want nothing named", body, unusable.CredentialID)
		case want == "" && !issuer.IsTransient(err):
			t.Errorf("%s: %v, want a malformed answer, retried", body, err)
		case want != "" && (!errors.As(err, &unusable) || unusable.CredentialID != want ||
			unusable.Code() != issuer.CodeIDNotString || unusable.ConfigUnchecked):
			t.Errorf("%s: %v, want credential %s named as unusable, its config checked", body, err, want)
		}
	}
}

// A URL whose issuer pasted it with Unicode white space around it (a
// no-break space, a line separator, NEL), a byte-order mark before it, or
// a C1 control character inside, is no URL an app can use: Go's url.Parse
// refuses one that starts with the mark, and the others name a database,
// host or port that does not exist. It is refused as unusable, so that it
// is revoked, never pushed. A URL with a host of other letters than ASCII
// passes.
func TestMintAnswerURLWithUnicodeSpaceIsUnusable(t *testing.T) {
	t.Parallel()
	answer := func(value string) string {
		return `{"credential_id":"cred_9","config":{"MYADDON_URL":"` + value + `"}}`
	}
	refused := map[string]string{
		"a no-break space last":  `postgres://u:p@h/d\u00a0`,
		"a no-break space first": `\u00a0postgres://u:p@h/d`,
		"a NEL last":             `postgres://u:p@h/d\u0085`,
		"a line separator last":  `postgres://u:p@h/d\u2028`,
		"an ideographic space":   `https://h/d?k=sk_live_0123456789\u3000`,
		"a byte-order mark":      `\ufeffpostgres://u:p@h/d`,
		"a zero-width space":     `postgres://u:p@h/d\u200b`,
		"a C1 control inside":    `postgres://u:p\u0090x@h/d`,
	}
	for name, value := range refused {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := scriptedIssuer(t, &scripted{status: 201, body: answer(value)}).Mint(context.Background(), "inst-1", "rot_1")
			var unusable *issuer.UnusableCredentialError
			if !errors.As(err, &unusable) || unusable.CredentialID != "cred_9" || unusable.Code() != issuer.CodeMalformed {
				t.Fatalf("Mint = %v, want the credential named as unusable", err)
			}
		})
	}
	c, err := scriptedIssuer(t, &scripted{status: 201, body: answer(`https://u:p@b\u00fccher.example/d`)}).Mint(context.Background(), "inst-1", "rot_1")
	if err != nil || c.Config["MYADDON_URL"].Reveal() != "https://u:p@bücher.example/d" {
		t.Fatalf("Mint of a URL with a host of other letters = %v, want it accepted as written", err)
	}
}
