package issuer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/jsonkey"
	"github.com/rekeyhq/rekey/internal/secret"
)

const (
	// maxResponseBytes bounds what is read of any issuer response.
	maxResponseBytes = 256 << 10
	// maxScanBytes bounds what is read of a mint answer over
	// maxResponseBytes, looking for the id of what it minted (mintedID).
	// Heroku holds at most 32 KB of config vars per app: an answer this
	// large is broken whatever it holds.
	maxScanBytes = 1 << 20
)

// CallTimeout bounds one webhook call; the caller's context too. A revoke
// task's run, which may make four (tasks.RevokeTimeout), outlasts them.
const CallTimeout = 30 * time.Second

// HTTP is the issuer that calls the partner's webhook service, as README.md
// specifies it, signing every request. It never follows a redirect: a 3xx
// is an error retried like a 5xx, so a signed request never reaches a host
// other than REKEY_ISSUER_URL's and a redirected DELETE is never taken for a
// revocation. It is safe for concurrent use.
type HTTP struct {
	base string
	key  secret.String
	// previous is the secret key replaced, whose signatures follow key's
	// while the issuer may still hold it (WithPreviousSecret).
	previous  secret.String
	client    *http.Client
	now       func() time.Time
	allowHTTP bool
	// pageGone: a 404 page on DELETE means revoked (WithNotFoundPageRevoked).
	pageGone bool
	// verified reads a 404 to verify (WithVerify).
	verified verifyHistory
	// rechecks are the waits before verify asks again about a credential
	// a 404 says the issuer does not know (WithVerifyRechecks).
	rechecks []time.Duration
}

var _ Issuer = (*HTTP)(nil)

// Option configures an HTTP issuer and checks its input.
type Option func(*HTTP) error

// WithHTTPClient sets the HTTP client (default: a 30 s timeout, on a
// transport of the issuer's own rather than http.DefaultTransport; a c
// without a Transport uses that one, as Go's clients do). The issuer
// uses a copy whose CheckRedirect refuses every redirect, whatever c's says,
// and whose Timeout is the default one when c sets none: the timeout bounds
// reading the answer too, so an answer that never ends cannot hold a worker
// past its mint's time limit, leaving no time to record what was minted.
func WithHTTPClient(c *http.Client) Option {
	return func(h *HTTP) error {
		if c == nil {
			return errors.New("http client is nil")
		}
		h.client = noRedirects(c)
		if h.client.Timeout <= 0 {
			h.client.Timeout = CallTimeout
		}
		return nil
	}
}

// WithClock sets the clock that timestamps signatures.
func WithClock(now func() time.Time) Option {
	return func(h *HTTP) error {
		if now == nil {
			return errors.New("clock is nil")
		}
		h.now = now
		return nil
	}
}

// WithAllowHTTP lets the base URL be plain http:// to a host that is not
// loopback (REKEY_ISSUER_ALLOW_HTTP). Without it only https://, or http://
// to 127.0.0.0/8, ::1 or localhost, is accepted: the signing secret does not
// travel, but minted credentials do.
func WithAllowHTTP(allow bool) Option {
	return func(h *HTTP) error {
		h.allowHTTP = allow
		return nil
	}
}

// WithNotFoundPageRevoked makes a 404 that comes as a page (answer.page)
// mean revoked too (REKEY_ISSUER_404_PAGE_REVOKED), for an issuer whose
// framework answers a credential it does not know with its default "not
// found" page and that cannot be changed to answer it with JSON of its own
// or an empty body. Without
// it such an answer is an *Error with CodeNotFoundPage, retried.
func WithNotFoundPageRevoked(revoked bool) Option {
	return func(h *HTTP) error {
		h.pageGone = revoked
		return nil
	}
}

// WithPreviousSecret signs every request with previous too
// (REKEY_ISSUER_SECRET_PREVIOUS, the secret REKEY_ISSUER_SECRET replaced),
// after the current secret's signatures (SignRequestRotating), so the
// issuer takes rekey's requests whether it still holds the old secret or
// holds the new one already. An empty previous changes nothing.
func WithPreviousSecret(previous secret.String) Option {
	return func(h *HTTP) error {
		h.previous = previous
		return nil
	}
}

// NewHTTP returns an issuer calling the webhook service at baseURL, signing
// with key (REKEY_ISSUER_SECRET).
func NewHTTP(baseURL string, key secret.String, opts ...Option) (*HTTP, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("issuer: base url must be an absolute http(s) URL without credentials, query or fragment")
	}
	if key.IsZero() {
		return nil, errors.New("issuer: signing secret is empty")
	}
	h := &HTTP{base: strings.TrimRight(u.String(), "/"), key: key, now: time.Now,
		client:   noRedirects(&http.Client{Timeout: CallTimeout, Transport: newTransport()}),
		rechecks: slices.Clone(DefaultVerifyRechecks)}
	for _, opt := range opts {
		if err := opt(h); err != nil {
			return nil, fmt.Errorf("issuer: %w", err)
		}
	}
	if u.Scheme == "http" && !h.allowHTTP && !IsLoopback(u.Hostname()) {
		return nil, errors.New("issuer: base url must be https:// unless its host is loopback or plain http is allowed")
	}
	return h, nil
}

// newTransport returns a transport set up as http.DefaultTransport is
// (proxy from the environment, dial and TLS timeouts, HTTP/2) but whose
// connections are the issuer's alone. On a shared transport, code elsewhere
// in the process could break a call the issuer already answered: net/http
// puts a connection back in the idle pool before it hands a bodiless answer
// (the 204 a DELETE gets, an empty 404) to the call waiting for it, and a
// CloseIdleConnections in that gap closes the connection under the call,
// which fails as transport_error though the issuer acted. Any library may
// call that on http.DefaultTransport, and every httptest.Server.Close does.
func newTransport() http.RoundTripper {
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		return t.Clone()
	}
	return http.DefaultTransport // replaced by the program: its choice stands
}

// IsLoopback reports whether host (without port) names this machine:
// localhost, 127.0.0.0/8 or ::1. Plain http:// to such a host never leaves
// it.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// noRedirects returns a copy of c that hands every 3xx back to the caller
// instead of following it.
func noRedirects(c *http.Client) *http.Client {
	cp := *c
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cp
}

// Mint calls POST {base}/credentials.
func (h *HTTP) Mint(ctx context.Context, instanceID, rotationID string) (Credential, error) {
	if instanceID == "" || rotationID == "" {
		return Credential{}, fmt.Errorf("issuer mint: empty instance or rotation id: %w", ErrInvalid)
	}
	req := map[string]string{"instance_id": instanceID, "rotation_id": rotationID}
	a, err := h.exchange(ctx, "mint", http.MethodPost, h.base+"/credentials", req, mintedAnyway)
	if err != nil {
		return Credential{}, err
	}
	switch {
	case a.status >= 400 && a.status <= 499 && a.htmlPage():
		// A refusal that came as an HTML page (a firewall's block page, a
		// proxy's sign-in, the router's page for an issuer app renamed)
		// is not the issuer's word: the mint, keyed by the rotation, is
		// asked again, rather than the rotation failed for good, and with
		// it every rotation of a wave, one after the other.
		return Credential{}, &Error{Op: "mint", Status: a.status, Code: CodePageAnswer}
	case !ok2xx(a.status):
		return Credential{}, answerError("mint", a.status, a.body)
	case a.cutShort():
		// JSON that breaks off under a framing that reads as a clean end
		// (a body framed by the connection's end, a Content-Length shorter
		// than the body) is cut as one whose reading failed is, and named
		// so: asked again, the issuer answers it again (I6).
		if err := mintedAnyway(a.status, bytes.NewReader(a.body), true); err != nil {
			return Credential{}, err
		}
		return Credential{}, &Error{Op: "mint", Status: a.status, Code: CodeUnreadable}
	case a.fields().saysFailed():
		return Credential{}, failedMint(a.status, a.body)
	}
	return decodeCredential(a.status, a.body)
}

// failedMint is the error of a 2xx mint answer whose JSON also says the
// mint failed (saysFailed: an "error", "success" false, a "status" of
// "error"): a role created but its grants, or its copy to the read
// replicas, failed. Pushed, it could restart every app on a credential
// that does not work, under an issuer without verify, and the one that
// worked would be revoked after the grace (I1). A credential it names is
// an *UnusableCredentialError, recorded discarded and revoked (I3), never
// pushed; without one the answer is retried, as one without an id is.
func failedMint(status int, body []byte) error {
	failed := &Error{Op: "mint", Status: status, Code: CodeErrorAnswer}
	scan := mintedID(bytes.NewReader(body))
	if scan.id == "" {
		return failed
	}
	return &UnusableCredentialError{CredentialID: scan.id, Config: scan.config, ConfigUnchecked: scan.unchecked, Err: failed}
}

// Verify calls POST {base}/credentials/{id}/verify: 2xx works; 409, 410
// and 422 say the credential does not work; 404 means unsupported or, by
// WithVerify's mode, that the issuer does not know the credential, unless
// it comes as a page (answer.page), which is then retried. A 404 read as
// "does not know" is asked again after each of WithVerifyRechecks' waits
// first, and holds only when every answer is the same. A 2xx,
// 409, 410 or 422 is the issuer's own answer, which WithVerify's memory
// remembers; a 404 is not, since whatever stands in front of the issuer
// answers one too.
func (h *HTTP) Verify(ctx context.Context, instanceID, credentialID string) error {
	u, err := h.credentialURL("verify", instanceID, credentialID)
	if err != nil {
		return err
	}
	for waits, again := h.rechecks, false; ; waits, again = waits[1:], true {
		err := h.verifyOnce(ctx, u, instanceID, credentialID, again)
		var unknown *UnknownCredentialError
		if !errors.As(err, &unknown) || len(waits) == 0 {
			return err
		}
		// An issuer that answers from replicas may answer from one that
		// has not yet seen the credential another minted a moment ago:
		// the 404 is read as "lost" only once it holds after the waits.
		t := time.NewTimer(waits[0])
		select {
		case <-ctx.Done():
			t.Stop()
			return &Error{Op: "verify", Code: transportCode(ctx.Err())}
		case <-t.C:
		}
	}
}

// verifyOnce asks the issuer once whether the credential works (Verify);
// again says the issuer answered 404 for it before, and then a 2xx page
// (answer.htmlPage) is no answer: it is retried, like a 404 page. So it
// is from an issuer that must answer verify itself (one whose 404 would
// say it does not know the credential, WithVerify): the page says the
// request never reached its handler, not that the credential works.
func (h *HTTP) verifyOnce(ctx context.Context, u, instanceID, credentialID string, again bool) error {
	a, err := h.do(ctx, "verify", http.MethodPost, u+"/verify", credentialBody(ActionVerify, instanceID, credentialID))
	switch {
	case err != nil:
		return err
	case a.status == http.StatusNotFound:
		err := h.verified.notFound(ctx, h.now())
		var unknown *UnknownCredentialError
		if errors.As(err, &unknown) && a.page() {
			// A page says the request did not reach the issuer's handler
			// (a renamed app, an unrouted path): no word on the credential,
			// so it is retried, as on DELETE.
			return &Error{Op: "verify", Status: a.status, Code: CodeNotFoundPage}
		}
		return err
	case ok2xx(a.status) && a.htmlPage() && (again || !errors.Is(h.verified.notFound(ctx, h.now()), ErrVerifyUnsupported)):
		return &Error{Op: "verify", Status: a.status, Code: CodePageAnswer}
	case ok2xx(a.status) && (a.saysNotWorking() || a.moreAfterJSON()):
		// A 2xx whose body says it failed (as JSON or as a text naming a
		// failure), or that the credential does not work (an issuer
		// answering the credential's state: "valid" or "works" false,
		// "revoked" true), is no word that it works: never pushed on it,
		// asked again later. So is one whose JSON has more after it,
		// which says two things.
		return &Error{Op: "verify", Status: a.status, Code: CodeErrorAnswer}
	case ok2xx(a.status):
		// A page (a catch-all route's, a router's) is no verify answer
		// of the issuer's: it is not remembered as one.
		if !a.page() {
			h.verified.answered(ctx, h.now())
		}
		return nil
	case doesNotWork(a.status) && !a.page():
		// A page saying so is a CDN's or a firewall's, not the issuer's
		// answer: it is not remembered as one either.
		h.verified.answered(ctx, h.now())
	}
	return answerError("verify", a.status, a.body)
}

// revokedNothing reports whether a DELETE's 2xx JSON says it revoked
// nothing ("revoked" false, or 0 as a count of none) and nothing else says
// the call failed.
func (a answer) revokedNothing() bool {
	f := a.fields()
	v, ok := f.flag("revoked")
	return ok && !v && !f.saysFailed() && !a.moreAfterJSON()
}

// doesNotWork reports whether status is the contract's answer to verify
// for a credential that does not work.
func doesNotWork(status int) bool {
	return status == http.StatusConflict || status == http.StatusGone || status == http.StatusUnprocessableEntity
}

// Revoke calls DELETE {base}/credentials/{id}: 2xx and 404 both mean
// revoked; a 3xx does not, nor does a 404 that comes as a page
// (answer.page; unless WithNotFoundPageRevoked). Such a page is what
// Heroku's router answers for an app that was renamed or deleted, and what
// web frameworks answer for a path they have no route for: it says the request did not
// reach an issuer, not that the credential is gone, and taking it for a
// revocation would leave every due credential working while rekey records
// it revoked (I3). It is retried like a 5xx. So is a 2xx whose body is an
// HTML page (answer.htmlPage): a catch-all route (a single-page app's
// index, served for every path and method) or a proxy's sign-in page
// answered, not the issuer. A 410 that is not a page is revoked when
// verify says the credential does not work (confirmRevoked), and a
// refusal otherwise, as any other 4xx.
func (h *HTTP) Revoke(ctx context.Context, instanceID, credentialID string) error {
	u, err := h.credentialURL("revoke", instanceID, credentialID)
	if err != nil {
		return err
	}
	a, err := h.do(ctx, "revoke", http.MethodDelete, u, credentialBody(ActionRevoke, instanceID, credentialID))
	switch {
	case err != nil:
		return err
	case ok2xx(a.status) && a.htmlPage():
		return h.confirmRevoked(ctx, u, instanceID, credentialID, a.status, false,
			&Error{Op: "revoke", Status: a.status, Code: CodePageAnswer})
	case ok2xx(a.status) && a.revokedNothing():
		// {"revoked": 0} or false, nothing else saying the call failed:
		// false, or a count of none, as an issuer that deletes what it
		// revokes answers a second DELETE once the first's answer was
		// lost. Verify decides, and its 404 may be the issuer's "no such
		// credential" too.
		return h.confirmRevoked(ctx, u, instanceID, credentialID, a.status, true,
			&Error{Op: "revoke", Status: a.status, Code: CodeErrorAnswer})
	case ok2xx(a.status) && (a.fields().saysFailed("revoked") || a.errorText() || a.moreAfterJSON()):
		// A 2xx whose body says it failed (an API that answers every call
		// 200 and puts its error in the body, as JSON or as a text naming
		// a failure), or whose JSON has more after it: not a revocation,
		// unless verify says the credential no longer works.
		return h.confirmRevoked(ctx, u, instanceID, credentialID, a.status, false,
			&Error{Op: "revoke", Status: a.status, Code: CodeErrorAnswer})
	case ok2xx(a.status) && a.goneText():
		// The text of a 404 or a 410 ("Not Found", "404 Not Found", "Gone")
		// answered 200 (a catch-all route's, a proxy's that answers every
		// call 200) is checked as a 404 is: revoked unless verify says the
		// credential works, when the DELETE never reached the issuer.
		return h.confirmRevoked(ctx, u, instanceID, credentialID, a.status, false, nil)
	case ok2xx(a.status):
		return nil
	case a.status == http.StatusNotFound && a.page() && !h.pageGone:
		return h.confirmRevoked(ctx, u, instanceID, credentialID, a.status, false,
			&Error{Op: "revoke", Status: a.status, Code: CodeNotFoundPage})
	case a.status == http.StatusNotFound:
		return h.confirmRevoked(ctx, u, instanceID, credentialID, a.status, false, nil)
	case a.status == http.StatusGone && !a.page():
		// "Gone" to a DELETE is how many APIs answer a second one: the
		// first revoked the credential and its answer was lost. Verify's
		// 409, 410 or 422 records it revoked; without that word it stays
		// the refusal it reads as, set aside for an operator.
		return h.confirmRevoked(ctx, u, instanceID, credentialID, a.status, false, answerError("revoke", a.status, a.body))
	case a.status >= 400 && a.status <= 499 && a.htmlPage():
		// A refusal that came as an HTML page (a firewall's block page, a
		// proxy's sign-in) is not the issuer's word: the revocation is
		// tried again, and goes through once the page is gone, rather
		// than set aside as dead for an operator.
		return &Error{Op: "revoke", Status: a.status, Code: CodePageAnswer}
	}
	return answerError("revoke", a.status, a.body)
}

// confirmRevoked asks the issuer's verify about a credential whose DELETE
// was answered by something that may not be the issuer: a 404 (the
// issuer's "no such credential", or a gateway's or a framework's answer
// for a path it has no route for, whose bodies no list covers), a 2xx
// page, or a 410 (gone: revoked by an earlier DELETE whose answer was
// lost, or a refusal). It returns what the DELETE's answer alone means (nil for revoked,
// or the page's error), unless verify says otherwise in the issuer's own
// words:
//   - 409, 410 or 422, not a page: the credential does not work, so it is
//     revoked, whatever stood in front of the DELETE;
//   - a 2xx that is not a page whose body says the credential does not
//     work, and nothing else (fields.saysGone): revoked, as above;
//   - any other 2xx that is not a page: the credential works, so the DELETE did
//     not reach the issuer (I3): CodeStillWorks, retried; unless verify
//     says the same of a credential that cannot exist (worksForAny: a
//     probe saying that one does not work is no stub's answer);
//   - a 5xx, a 3xx, a 408, 425 or 429 (come back later: a gateway that
//     throttles verify while it answers the DELETE 404), or no answer: the
//     question is open, and the revocation is tried again rather than
//     recorded.
//
// A 404 to verify (an issuer without verify, or one that forgets what it
// revoked), a page and any other answer leave the DELETE's meaning as it
// was; but after a DELETE answered that it revoked nothing (unknownGone),
// a 404 that is no page, from an issuer whose 404 says it does not know
// the credential (REKEY_ISSUER_VERIFY, verifyHistory.notFound), is its
// word that the credential does not work: the contract lets verify
// answer a revoked credential so. Read as the DELETE's failure, the
// revocation was retried until it went dead, though nothing was left to
// revoke. So an issuer that keeps to the contract loses nothing, and one that
// answers verify keeps a dropped DELETE route from recording revocations
// that never happened.
func (h *HTTP) confirmRevoked(ctx context.Context, u, instanceID, credentialID string, deleteStatus int, unknownGone bool, otherwise error) error {
	v, err := h.do(ctx, "revoke", http.MethodPost, u+"/verify", credentialBody(ActionVerify, instanceID, credentialID))
	switch {
	case err != nil:
		return err
	case doesNotWork(v.status) && !v.page():
		return nil
	case unknownGone && v.status == http.StatusNotFound && !v.page():
		var unknown *UnknownCredentialError
		switch err := h.verified.notFound(ctx, h.now()); {
		case errors.As(err, &unknown):
			return nil
		case !errors.Is(err, ErrVerifyUnsupported):
			return err // whether the issuer verifies could not be read: retried
		}
		return otherwise
	case ok2xx(v.status) && !v.htmlPage():
		f := v.fields()
		if f.saysGone() {
			// The issuer's 2xx answering the credential's state ("valid":
			// false): its word that the credential does not work, as a 409,
			// 410 or 422 is. Read as "works", the revocation stayed
			// still_works for ever, whatever the issuer said.
			return nil
		}
		stub, err := h.worksForAny(ctx, instanceID, v.notWorking(f))
		switch {
		case err != nil:
			return err
		case stub:
			return otherwise
		}
		return &Error{Op: "revoke", Status: deleteStatus, Code: CodeStillWorks}
	case v.status >= 300 && v.status <= 399, v.status >= 500, v.status >= 400 && !permanentStatus(v.status):
		return answerError("revoke", v.status, nil)
	}
	return otherwise
}

// worksForAny asks verify about a credential id that no issuer minted (a
// random one) and reports whether it answers that one as it answered the
// credential: a 2xx that is no page, whose body says the call failed or
// the credential does not work (answer.saysNotWorking) if, and only if,
// the credential's did (failed). Then its answer says nothing (a stub that
// answers 200 to every verify, which passes every check of a freshly
// minted credential), and a DELETE's 404 keeps the meaning the contract
// gives it, revoked, rather than be retried for ever. A probe answered
// {"valid": false} or with an error where the credential's answer said it
// works is an issuer telling credentials apart, no stub: its "works"
// stands. A 5xx, a 3xx or no answer is an error: asked again later.
func (h *HTTP) worksForAny(ctx context.Context, instanceID string, failed bool) (bool, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	probe := "rekey_probe_" + hex.EncodeToString(b[:])
	v, err := h.do(ctx, "revoke", http.MethodPost, h.base+"/credentials/"+probe+"/verify",
		credentialBody(ActionVerify, instanceID, probe))
	switch {
	case err != nil:
		return false, err
	case v.status >= 300 && v.status <= 399, v.status >= 500:
		return false, answerError("revoke", v.status, nil)
	}
	return ok2xx(v.status) && !v.htmlPage() && v.saysNotWorking() == failed, nil
}

// credentialBody is the body of verify and revoke. It names the credential
// as the path does, and the action as the method does, so that an issuer
// still checking v1 signatures only (which cover the body, not the method
// or path) can refuse a body signed for another credential or another
// action: a captured verify replayed as a DELETE says "verify".
func credentialBody(action, instanceID, credentialID string) map[string]string {
	return map[string]string{"action": action, "instance_id": instanceID, "credential_id": credentialID}
}

// Actions named in verify and revoke bodies.
const (
	ActionVerify = "verify"
	ActionRevoke = "revoke"
)

func (h *HTTP) credentialURL(op, instanceID, credentialID string) (string, error) {
	if instanceID == "" || credentialID == "" {
		return "", fmt.Errorf("issuer %s: empty instance or credential id: %w", op, ErrInvalid)
	}
	return h.base + "/credentials/" + url.PathEscape(credentialID), nil
}

// answer is what an issuer answered to one request.
type answer struct {
	status      int
	body        []byte
	contentType string // the Content-Type header as sent; may be empty
}

// page reports whether the answer is a page that whatever serves the URL
// answers for any path it has no route for, rather than an issuer's word:
// an HTML page (its Content-Type says so or, when it names none, its body
// looks like one), or the default not-found answer of Go's net/http
// ("404 page not found"), of Starlette and FastAPI ({"detail":"Not
// Found"}), of Phoenix, or of Rails and Spring Boot (statusNotFoundJSON).
// The last three answer JSON because rekey asks for it (Accept). An empty
// body is no page whatever the header says (Flask, for one, labels every
// empty answer text/html).
func (a answer) page() bool {
	body := bytes.TrimSpace(a.body)
	if len(body) == 0 {
		return false
	}
	if slices.ContainsFunc(defaultNotFound, func(d string) bool { return string(body) == d }) || statusNotFoundJSON(body) {
		return true
	}
	ct := a.contentType
	if ct == "" {
		ct = http.DetectContentType(a.body)
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "text/html" || mt == "application/xhtml+xml")
}

// fields is an answer's body read as a JSON object (a byte-order mark
// before it looked past), its keys in lower case and its values as written;
// nil when it is none. A key named twice, in any case, with values that
// say two things holds namedTwice instead (fields.twice); with values that
// say the same (sameWord), its first.
type fields map[string]json.RawMessage

// namedTwice is what fields holds for a key the answer names more than once with
// values that say two things ({"ok":false,"ok":true}, {"Error":"locked","error":""}):
// no JSON text, so that no reading of a value takes it for one.
var namedTwice = json.RawMessage("\x00twice")

// fields reads the answer's body once, for saysFailed and saysTrue. Keys
// are matched without case, as encoding/json matches a struct's fields: an
// issuer whose serializer writes "Success" or "Error" (ASP.NET's) says what
// "success" and "error" say, and read as the bare 2xx such an answer
// recorded a revocation that failed (I3).
func (a answer) fields() fields {
	body := bytes.TrimPrefix(bytes.TrimSpace(a.body), utf8BOM)
	if !json.Valid(body) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	f := fields{}
	for dec.More() {
		t, _ := dec.Token()
		key, _ := t.(string)
		var v json.RawMessage
		if dec.Decode(&v) != nil {
			return nil
		}
		key, v = strings.ToLower(key), bytes.TrimSpace(v)
		if old, seen := f[key]; seen {
			if sameWord(key, old, v) {
				continue // the first, which says the same
			}
			v = namedTwice
		}
		f[key] = v
	}
	return f
}

// sameWord reports whether a and b, two values of key, say the same as
// flag and saysFailed read them, however written: null and "", "ok" and
// "OK", true and "true" ({"error":null,"Error":""} says no error once).
// A key that is no flag is compared as its reader reads it (sameReading).
func sameWord(key string, a, b json.RawMessage) bool {
	if bytes.Equal(a, namedTwice) {
		return false
	}
	if same, ok := sameReading[key]; ok {
		return same(a, b)
	}
	fa, fb := fields{key: a}, fields{key: b}
	va, oka := fa.flag(key)
	vb, okb := fb.flag(key)
	return va == vb && oka == okb && fa.saysFailed(key) == fb.saysFailed(key)
}

// sameReading compares the values of a key that is no flag, by what its
// reader makes of them: two times are alike when they are one instant,
// however written, not whenever neither is a flag.
var sameReading = map[string]func(a, b json.RawMessage) bool{
	"last_used_at": sameLastUse,
}

// twice reports whether the answer names key more than once with values
// that say two things (sameWord): neither is its word.
func (f fields) twice(key string) bool { return bytes.Equal(f[key], namedTwice) }

// flag reads key as a boolean: JSON's true and false, or the strings
// "true" and "false" in any case, spaces trimmed, as issuers that write
// every value as a string answer. False is also written as PHP, MySQL and
// PostgreSQL write it: the number 0, or "0", "no", "n", "off" or "f" (a
// verify's {"valid": 0} says the credential does not work, and read as no
// flag at all it was the bare 2xx, "works"). Their true spellings (1,
// "yes") stay unread, as before: ok is false for any other value, or none.
func (f fields) flag(key string) (value, ok bool) {
	raw := bytes.TrimSpace(f[key])
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = []byte(strings.ToLower(strings.TrimSpace(s)))
	}
	switch string(raw) {
	case "true":
		return true, true
	case "false", "0", "no", "n", "off", "f":
		return false, true
	}
	if n, err := strconv.ParseFloat(string(raw), 64); err == nil && n == 0 {
		return false, true // 0.0, -0, 0e0
	}
	return false, false
}

// saysFailed reports whether the body is a JSON object that says the call
// failed: an "error" or "errors" that is not empty (nor the number 0, a
// count or code of none, nor false as flag reads it), "ok", "success" or one of also set to false
// (flag: "false" too), or a "status" of "error", "fail", "failed" or
// "failure" (JSend's, in any case). A 2xx is the contract's "revoked" (or
// "works"); a body that says otherwise makes it ambiguous, and rekey never
// records a revocation, nor pushes, on an ambiguous answer (I1, I3). A
// DELETE's answer is also asked for "revoked": to verify, "revoked": false
// says the credential works.
func (f fields) saysFailed(also ...string) bool {
	if f == nil {
		return false
	}
	// A key the answer names twice, one value saying it failed and the
	// other not ({"ok":false,"ok":true}), is read as a failure: rekey never
	// records a revocation, nor pushes, on an ambiguous answer.
	if slices.ContainsFunc(append([]string{"error", "errors", "ok", "success", "status"}, also...), f.twice) {
		return true
	}
	for _, k := range []string{"error", "errors"} {
		raw := bytes.TrimSpace(f[k])
		var n float64
		// False written as flag reads it ("false", "0", "no": an issuer
		// writing every value as a string) says no error, as false does.
		if v, ok := f.flag(k); ok && !v {
			continue
		}
		switch string(raw) {
		case "", "null", "false", `""`, "[]", "{}":
		default:
			// A count or code of none ("errors": 0, "error": 0) says
			// the call succeeded.
			if json.Unmarshal(raw, &n) == nil && n == 0 {
				continue
			}
			return true
		}
	}
	for _, k := range append([]string{"ok", "success"}, also...) {
		if v, ok := f.flag(k); ok && !v {
			return true
		}
	}
	// JSend and APIs like it answer 200 and say in "status" that the call
	// failed.
	var status string
	if json.Unmarshal(f["status"], &status) == nil {
		switch strings.ToLower(strings.TrimSpace(status)) {
		case "error", "fail", "failed", "failure":
			return true
		}
	}
	return false
}

// saysTrue reports whether the body is a JSON object whose key is set to
// true (flag: "true" too).
func (f fields) saysTrue(key string) bool {
	v, ok := f.flag(key)
	return ok && v
}

// saysNotWorking reports whether a verify answer's body says the call
// failed, as JSON or as a text naming a failure (errorText), or that the
// credential does not work: "valid" or "works" false, "revoked" true (an
// issuer answering the credential's state), or a text naming a 404 or a
// 410 ("Not Found", "410 Gone": goneText), which to verify says the
// credential is unknown or gone, never that it works.
func (a answer) saysNotWorking() bool { return a.notWorking(a.fields()) }

// notWorking is saysNotWorking of the answer whose body reads as f.
func (a answer) notWorking(f fields) bool {
	return f.saysFailed("valid", "works") || f.saysTrue("revoked") || f.twice("revoked") ||
		(f == nil && (a.errorText() || a.goneText()))
}

// errorText reports whether the answer's body, not JSON but for a JSON
// string, is a text naming a failure as a whole: one of failureTexts, in
// any case, spaces collapsed and a closing '.' or '!' dropped, maybe after
// an error status ("500 Internal Server Error") and maybe followed by ':'
// and a reason ("Error: credential locked"). A framework or proxy answering
// every call 200 writes its error so. The rule is narrow on purpose: a
// text that names no failure as its first words ("OK", "revoked",
// "credential revoked, no error"), or an empty body, is the contract's 2xx.
func (a answer) errorText() bool {
	text, ok := a.shortText()
	return ok && slices.Contains(failureTexts, text)
}

// goneText reports whether the answer's body, read as errorText reads it,
// is "not found" or "gone" (maybe after their status, "404 Not Found"):
// to DELETE the contract's revoked, to verify a credential the issuer does
// not have, which does not work.
func (a answer) goneText() bool {
	text, ok := a.shortText()
	return ok && (text == "not found" || text == "gone")
}

// shortText is the answer's body as errorText compares it: not JSON but
// for a JSON string (or a status alone, "500", which is JSON too), in lower
// case, spaces collapsed, a ':' and reason after it and a closing '.' or
// '!' dropped, and an error status before it ("500 Internal Server Error",
// after "HTTP/1.1" too) or after "error" ("Error 500") read as its reason
// or "error". ok is false for an empty body, a long one or other JSON.
func (a answer) shortText() (text string, ok bool) {
	body := trimmed(a.body)
	if len(body) == 0 || len(body) > 1024 {
		return "", false
	}
	text = string(body)
	if json.Valid(body) && !errorStatus(text) { // a status alone ("500") is JSON too
		if json.Unmarshal(body, &text) != nil {
			return "", false // JSON, but no string: saysFailed's to read
		}
	}
	text = strings.ToLower(strings.Join(strings.Fields(text), " "))
	if head, _, ok := strings.Cut(text, ":"); ok {
		text = head
	}
	text = strings.TrimRight(text, ".! ")
	// A status line ("HTTP/1.1 500 Internal Server Error") reads as its
	// status and reason.
	if version, rest, ok := strings.Cut(text, " "); ok && strings.HasPrefix(version, "http/") {
		text = rest
	}
	first, rest, _ := strings.Cut(text, " ")
	switch {
	case errorStatus(first) && rest == "":
		// A status alone ("500") reads as its reason.
		text = strings.ToLower(http.StatusText(atoi(first)))
	case errorStatus(first):
		text = rest
	case first == "error" && errorStatus(rest):
		// "Error 500".
		text = first
	}
	return text, true
}

// errorStatus reports whether s is a 4xx or 5xx status code written out.
func errorStatus(s string) bool {
	return len(s) == 3 && s >= "400" && s <= "599" && strings.Trim(s, "0123456789") == "" && http.StatusText(atoi(s)) != ""
}

// atoi is s as a number, 0 when it is none.
func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// failureTexts are the texts errorText reads as a failure: plain words, and
// the reason phrases of 4xx and 5xx statuses (but "not found" and "gone",
// which name a credential the issuer does not have: the contract's
// revoked).
var failureTexts = func() []string {
	t := []string{"error", "err", "failed", "fail", "failure", "not ok", "server error", "not authorized",
		"not authorised", "unauthorised", "access denied", "permission denied", "denied", "invalid signature",
		"bad signature", "invalid request", "timeout", "timed out"}
	for code := 400; code <= 599; code++ {
		if p := strings.ToLower(http.StatusText(code)); p != "" && code != http.StatusNotFound && code != http.StatusGone {
			t = append(t, p)
		}
	}
	return t
}()

// saysGone reports whether a verify answer's body says, in the issuer's
// own words, that the credential does not work: "valid" or "works" false,
// or "revoked" true (flag), with no key saying it works ("valid" or
// "works" true, "revoked" false) or unread as a boolean, and no failure of the call (saysFailed:
// an "error", "ok" false, a "status" of "error"). Such an answer says what
// a 409, 410 or 422 says; one that says both, or that the call failed, is
// ambiguous: no word on the credential.
func (f fields) saysGone() bool {
	if f.saysFailed() {
		return false
	}
	gone := false
	for _, k := range []string{"valid", "works", "revoked"} {
		v, ok := f.flag(k)
		switch _, present := f[k]; {
		case !present:
			continue
		case !ok: // "valid": "yes", null: no reading it
			return false
		}
		if v == (k == "revoked") {
			gone = true
		} else {
			return false
		}
	}
	return gone
}

// htmlPage reports whether the answer's body itself reads as an HTML page,
// whatever its Content-Type says. A 2xx is judged so, not by page: Express
// (res.send) and Flask label any text an issuer answers with text/html,
// while a catch-all route's index or a proxy's sign-in page is HTML.
//
// A byte-order mark, an XML prolog (XHTML's) or a page that opens with a
// tag http.DetectContentType does not know (<meta>, for a refresh) hides
// the page from it: those are looked past. An XML answer of the issuer's
// own, whose first element is its own (<response>, <Envelope>), is no
// page, whatever elements it holds.
func (a answer) htmlPage() bool {
	body := trimmed(a.body)
	if sniffedHTML(body) {
		return true
	}
	rest := skipPrologs(body)
	return sniffedHTML(rest) || opensWithTag(rest, "meta")
}

func sniffedHTML(body []byte) bool {
	mt, _, err := mime.ParseMediaType(http.DetectContentType(body))
	return err == nil && mt == "text/html"
}

// skipPrologs returns body past its XML declaration, processing
// instructions and comments, and the spaces between them.
func skipPrologs(body []byte) []byte {
	for {
		var end []byte
		switch {
		case bytes.HasPrefix(body, []byte("<?")):
			end = []byte("?>")
		case bytes.HasPrefix(body, []byte("<!--")):
			end = []byte("-->")
		default:
			return body
		}
		i := bytes.Index(body, end)
		if i < 0 {
			return body
		}
		body = bytes.TrimSpace(body[i+len(end):])
	}
}

// opensWithTag reports whether body opens with the element name, in any
// case, followed by a space, '>' or '/' ("<meta " but not "<metadata>").
func opensWithTag(body []byte, name string) bool {
	n := len(name) + 1
	if len(body) <= n || body[0] != '<' || !bytes.EqualFold(body[1:n], []byte(name)) {
		return false
	}
	switch body[n] {
	case ' ', '\t', '\r', '\n', '>', '/':
		return true
	}
	return false
}

// defaultNotFound are web frameworks' answers, spaces trimmed, for a path
// they have no route for: Go's net/http, Starlette and FastAPI, Phoenix's
// generated ErrorJSON.
var defaultNotFound = []string{"404 page not found", `{"detail":"Not Found"}`, `{"errors":{"detail":"Not Found"}}`}

// statusNotFoundJSON reports whether body is the JSON that Rails
// (ActionDispatch::PublicExceptions: {"status":404,"error":"Not Found"})
// and Spring Boot (its error controller, which adds a timestamp and the
// path) answer, asked for JSON, for a path they have no route for: an
// object whose status is 404 and whose error is the status's reason
// phrase, which no issuer's own code is (ValidCode).
func statusNotFoundJSON(body []byte) bool {
	var v struct {
		Status int    `json:"status"`
		Error  string `json:"error"`
	}
	return body[0] == '{' && json.Unmarshal(body, &v) == nil && v.Status == http.StatusNotFound &&
		v.Error == http.StatusText(http.StatusNotFound)
}

// do sends one signed JSON request and returns the answer, its body read
// with a size limit. A call that got no answer returns an *Error with the
// failure's kind only: the transport's text names the URL, whose path may
// hold a secret of the partner's.
//
// A 2xx whose JSON breaks off before its end is no answer either: the body
// framed by the connection's end (no Content-Length, not chunked) whose
// connection closed mid-body, or one longer than the Content-Length a proxy
// sent, reads as a clean, short body, and what is missing may be the part
// that said the call failed or that the credential does not work
// ({"valid":false}, {"ok":false,"error":...}). Read as the contract's bare
// 2xx, a verify pushed a credential that does not work to every app, and a
// DELETE recorded a revocation while the credential kept working (I3). A
// usage answer is read as exact JSON (decodeUsage): one cut short is
// malformed there, no evidence either way, as before.
func (h *HTTP) do(ctx context.Context, op, method, u string, payload any) (answer, error) {
	a, err := h.exchange(ctx, op, method, u, payload, nil)
	if err == nil && op != OpUsage && ok2xx(a.status) && a.cutShort() {
		return answer{}, &Error{Op: op, Status: a.status, Code: CodeUnreadable}
	}
	return a, err
}

// cutShort reports whether the answer's body opens a JSON object or array
// (a byte-order mark and spaces before it looked past) that ends before it
// closes. A body malformed otherwise, or whole JSON with more after it, is
// left to the readings of a 2xx as before.
func (a answer) cutShort() bool {
	opens, _, err := jsonHead(a.body)
	return opens && errors.Is(err, io.ErrUnexpectedEOF)
}

// moreAfterJSON reports whether the answer's body (a byte-order mark and
// spaces around it looked past) opens with a whole JSON object or array
// and has more after it: a handler that wrote its answer and then an error
// (Go's http.Error adds its text to a body already begun, under the status
// already sent), or a middleware's second write. fields reads no such body,
// and read as the contract's bare 2xx, a verify answered {"valid":false}
// and an error text pushed a credential that does not work, and a DELETE
// answered {"ok":false,...} and an error text was recorded revoked while
// the credential kept working (I3).
func (a answer) moreAfterJSON() bool {
	opens, rest, err := jsonHead(a.body)
	return opens && err == nil && rest > 0
}

// wholeJSON reports whether body (a byte-order mark and spaces around it
// looked past) is one JSON object or array, whole, and nothing after it.
// A number or a word is never taken for whole: more of it may have been
// on the way.
func wholeJSON(body []byte) bool {
	opens, rest, err := jsonHead(body)
	return opens && err == nil && rest == 0
}

// jsonHead decodes the JSON object or array body opens with, a byte-order
// mark and spaces around it looked past: whether it opens with one, how
// many bytes come after what was decoded, and the decoding's error.
func jsonHead(body []byte) (opens bool, rest int64, err error) {
	body = trimmed(body)
	if len(body) == 0 || body[0] != '{' && body[0] != '[' {
		return false, 0, nil
	}
	d := json.NewDecoder(bytes.NewReader(body))
	var v json.RawMessage
	err = d.Decode(&v)
	return true, int64(len(body)) - d.InputOffset(), err
}

// trimmed is body without the spaces and the byte-order mark around it.
func trimmed(body []byte) []byte {
	return bytes.TrimSpace(bytes.TrimPrefix(bytes.TrimSpace(body), utf8BOM))
}

// exchange is do, with unreadable, when not nil, to look at an answer that
// cannot be read: it gets the status and what there is of the body, and
// returns the error to give instead of the unreadable answer's, or nil to
// keep that one. Of an answer over maxResponseBytes that is the whole body
// (what was read and the rest, unbounded: unreadable bounds it); of one
// whose reading failed (it broke off, or never ended within the client's
// timeout) before its JSON ended it is what was read before, and brokenOff
// is true.
func (h *HTTP) exchange(ctx context.Context, op, method, u string, payload any,
	unreadable func(status int, body io.Reader, brokenOff bool) error) (answer, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return answer{}, &Error{Op: op, Code: CodeRequest}
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(raw))
	if err != nil {
		return answer{}, &Error{Op: op, Code: CodeRequest}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set(SignatureHeader, SignRequestRotating(h.key, h.previous, h.now(), method, req.URL.EscapedPath(), raw))
	resp, err := h.client.Do(req)
	if err != nil {
		return answer{}, &Error{Op: op, Code: transportCode(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 {
		// "101 Switching Protocols": Go hands the connection itself over as
		// the body, which neither the client's timeout nor ctx ends. No
		// answer of the contract, read as no answer: retried.
		return answer{}, &Error{Op: op, Status: resp.StatusCode, Code: CodeUnreadable}
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		// An encoding the transport did not undo (it asks for gzip alone,
		// and decodes that): br, deflate, a proxy's own. Its bytes, read as
		// they are, hold neither JSON nor a text, and a 2xx would read as
		// the contract's bare 2xx, a verify's "works" or a DELETE's
		// "revoked": no answer, retried.
		return answer{}, &Error{Op: op, Status: resp.StatusCode, Code: CodeUnreadable}
	}
	// Reading the body ends with ctx too, whatever the transport does.
	defer context.AfterFunc(ctx, func() { resp.Body.Close() })()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	// A body whose reading failed once its JSON had ended (the connection
	// closed before a chunked body's last chunk, or short of its
	// Content-Length, or held open past the client's timeout) holds the
	// issuer's whole answer: a complete JSON object or array says all it
	// says, where a body cut inside its JSON stays unreadable. Taken for
	// one broken off, a mint's good credential was discarded and revoked
	// and its rotation failed for good.
	if len(body) <= maxResponseBytes && (err == nil || wholeJSON(body)) {
		return answer{status: resp.StatusCode, body: body, contentType: resp.Header.Get("Content-Type")}, nil
	}
	if unreadable != nil {
		var rest io.Reader = bytes.NewReader(body)
		if err == nil {
			rest = io.MultiReader(rest, resp.Body)
		}
		if err := unreadable(resp.StatusCode, rest, err != nil); err != nil {
			return answer{}, err
		}
	}
	return answer{}, &Error{Op: op, Status: resp.StatusCode, Code: CodeUnreadable}
}

// mintedAnyway looks in a 2xx mint answer rekey cannot read, too large to
// use or broken off before its end, within its first maxScanBytes, for the
// id of the credential it names: the issuer minted that credential
// whatever became of its answer, so it must be recorded and revoked rather
// than left working with nobody knowing of it (I3). It returns an
// *UnusableCredentialError naming it, or nil when there is none (the
// answer is then retried). An answer cut short (one whose JSON ended is
// read as the answer: exchange) leaves its config unchecked (mintedID),
// unless what was read holds it whole; brokenOff
// (UnusableCredentialError.BrokenOff) says the answer was cut, not too
// large: asked again, the issuer answers it again (I6), maybe whole.
func mintedAnyway(status int, body io.Reader, brokenOff bool) error {
	if !ok2xx(status) {
		return nil
	}
	a := mintedID(io.LimitReader(body, maxScanBytes))
	if a.id == "" {
		return nil
	}
	return &UnusableCredentialError{CredentialID: a.id, Config: a.config, ConfigUnchecked: a.unchecked,
		BrokenOff: brokenOff, Err: &Error{Op: "mint", Status: status, Code: CodeUnreadable}}
}

// usable reports whether config names at least one var and every var can
// reach the apps as written (usableVar).
func usable(config map[string]string) bool {
	for name, v := range config {
		if !usableVar(name, v) {
			return false
		}
	}
	return len(config) > 0
}

func ok2xx(status int) bool { return status >= 200 && status <= 299 }

// answerError is the one place that turns an issuer's non-2xx answer into an
// Error. Of the body only a code is kept, and only when it looks like one
// (ValidCode): the body may hold anything, a live credential included.
func answerError(op string, status int, body []byte) error {
	var answer struct {
		Code  any `json:"code"`
		Error any `json:"error"`
	}
	_ = json.Unmarshal(body, &answer) // a body that is not JSON leaves both empty
	code := StatusCode(status)
	if code == CodeRedirect { // whatever the body says, rekey did not follow it
		return &Error{Op: op, Status: status, Code: code}
	}
	for _, c := range []any{answer.Code, answer.Error} {
		if s, ok := c.(string); ok && ValidCode(s) {
			code = s
			break
		}
	}
	return &Error{Op: op, Status: status, Code: code}
}

// numericID returns the text of an answer's credential_id written as a
// JSON number, a whole one (digits only: 1e3 or 4.0 could name another
// credential than their text), when it is named once.
func numericID(body []byte) (string, bool) {
	var r struct {
		CredentialID json.RawMessage `json:"credential_id"`
	}
	if json.Unmarshal(body, &r) != nil || !jsonkey.OnceEach(body, "credential_id") {
		return "", false
	}
	id := string(r.CredentialID)
	if len(id) == 0 || len(id) > 20 || strings.Trim(id, "0123456789") != "" {
		return "", false
	}
	return id, true
}

// utf8BOM is the byte-order mark some frameworks write before a UTF-8 body.
var utf8BOM = []byte("\xef\xbb\xbf")

// scanLeniently is mintedID over an answer that is not exactly JSON: its
// first JSON value when there is one whole (a byte-order mark before it,
// anything after it), so that its config counts as read whole, else what
// there is of it.
func scanLeniently(body []byte) mintAnswer {
	body = bytes.TrimPrefix(body, utf8BOM)
	var first json.RawMessage
	if json.NewDecoder(bytes.NewReader(body)).Decode(&first) == nil {
		body = first
	}
	return mintedID(bytes.NewReader(body))
}

// decodeCredential reads a mint answer. An answer without an id or config is
// the issuer's bug; it is reported without the body, which holds secrets.
// Without an id it stays retryable, in case the issuer is fixed. With one,
// the issuer minted that credential: the answer is an
// *UnusableCredentialError naming it, so that it is recorded and revoked
// rather than left working at the issuer with nobody knowing of it.
func decodeCredential(status int, body []byte) (Credential, error) {
	var r struct {
		CredentialID string          `json:"credential_id"`
		Config       json.RawMessage `json:"config"`
	}
	malformed := &Error{Op: "mint", Status: status, Code: CodeMalformed}
	// The scan finds the strings of every "config" the answer holds, where
	// encoding/json reads the last: an id holding a secret of any of them
	// is refused, as an unusable answer's is (store.DiscardMinted).
	if err := json.Unmarshal(body, &r); err != nil || r.CredentialID == "" {
		if id, ok := numericID(body); ok {
			// An id written as a number (a database's key): the answer is
			// the contract's but for that, the credential minted. Retried,
			// each answer would leave one more working credential nobody
			// knows of; named, it is recorded and revoked, and the
			// rotation fails, saying so.
			scan := mintedID(bytes.NewReader(body))
			return Credential{}, &UnusableCredentialError{CredentialID: id, Config: scan.config,
				ConfigUnchecked: scan.unchecked, Err: &Error{Op: "mint", Status: status, Code: CodeIDNotString}}
		}
		// Not exactly JSON, but naming an id: the contract's object with a
		// second write after it (an error page a middleware added), or a
		// byte-order mark before it. (One cut short, under a framing that
		// reads as a clean end, is unreadable: Mint.)
		// The issuer minted that credential; retried, each answer would
		// leave one more working credential nobody knows of, so it is
		// named, as an answer broken off mid-read is (mintedAnyway).
		if scan := scanLeniently(body); scan.id != "" {
			return Credential{}, &UnusableCredentialError{CredentialID: scan.id, Config: scan.config,
				ConfigUnchecked: scan.unchecked, Err: malformed}
		}
		return Credential{}, malformed
	}
	scan := mintedID(bytes.NewReader(body))
	unusable := &UnusableCredentialError{CredentialID: r.CredentialID, Config: scan.config,
		ConfigUnchecked: scan.unchecked, Err: malformed}
	// An answer naming credential_id or config twice (also in another
	// case, as encoding/json matches them) gave two, and encoding/json keeps
	// the last silently: the credential pushed could be recorded, and later
	// revoked, under an id not its own.
	var config map[string]string
	if !jsonkey.OnceEach(body, "credential_id", "config") || !readExactly(r.Config) || !jsonkey.Once(r.Config) ||
		json.Unmarshal(r.Config, &config) != nil || !usable(config) || secret.Holds(r.CredentialID, scan.config...) {
		return Credential{}, unusable
	}
	c := Credential{ID: r.CredentialID, Config: make(map[string]secret.String, len(config))}
	for name, v := range config {
		c.Config[name] = secret.New(v)
	}
	return c, nil
}
