package heroku

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/rekeyhq/rekey/internal/printable"
	"github.com/rekeyhq/rekey/internal/secret"
)

const (
	// maxErrorBodyBytes bounds what is read of a non-2xx response.
	maxErrorBodyBytes = 64 << 10
	// maxMessageLen bounds Heroku's message as kept in an error.
	maxMessageLen = 512
)

// APIError is a non-2xx answer from Heroku other than 429. It holds only
// what is safe to log.
type APIError struct {
	Status    int    // HTTP status
	ID        string // Heroku's error id, such as "not_found"
	Message   string // Heroku's message, with any secret of the request removed
	RequestID string // Heroku's Request-Id header
	Endpoint  string // one of the Endpoint constants
	// IDWithheld says the answer carried an error id of Heroku's form that
	// ID does not keep: an opaque call keeps only the ids knownIDs lists.
	IDWithheld bool
}

// CarriesID reports whether the answer carried an error id of Heroku's
// form, kept in ID or withheld, as every 4xx of Heroku's does: a proxy's
// own page (an egress proxy's 404 for a route it does not pass on) does
// not. An id rekey does not list is still Heroku's.
func (e *APIError) CarriesID() bool { return e.ID != "" || e.IDWithheld }

// Error names the endpoint, status, Heroku's id and message and request id.
func (e *APIError) Error() string {
	s := fmt.Sprintf("heroku %s: status %d", e.Endpoint, e.Status)
	if e.ID != "" {
		s += " " + e.ID
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RequestID != "" {
		s += " (request id " + e.RequestID + ")"
	}
	return s
}

// RateLimitError is a 429 answer: the account's call budget is empty.
type RateLimitError struct {
	Endpoint  string
	RequestID string
	// Remaining is RateLimit-Remaining, or -1 when absent.
	Remaining int
	// RetryAfter comes from a Retry-After header; 0 when there is none,
	// which is usual: Heroku does not document one.
	RetryAfter time.Duration
}

// Error names the endpoint, the budget left and the request id.
func (e *RateLimitError) Error() string {
	s := fmt.Sprintf("heroku %s: rate limited (status 429, remaining %d", e.Endpoint, e.Remaining)
	if e.RetryAfter > 0 {
		s += ", retry after " + e.RetryAfter.String()
	}
	if e.RequestID != "" {
		s += ", request id " + e.RequestID
	}
	return s + ")"
}

// responseError is the one place that turns a response status into an error:
// nil for 2xx, *RateLimitError for 429 and *APIError for anything else. It
// reads at most maxErrorBodyBytes of the body, and removes the request's
// secrets from Heroku's message in case Heroku echoes one, and keeps no
// message or request id where it may hold an app's (an opaque call: see
// call.opaque), nor an error id Heroku is not known to send. Heroku's id is
// kept only when it reads as one (idPattern): it becomes a failure code,
// which operators group by and see in `rekey instances show`. The message
// keeps no control character: a line break or a terminal escape in it
// would forge lines, or drive the terminal, wherever it is printed.
func responseError(resp *http.Response, endpoint string, opaque bool, now time.Time, secrets []string) error {
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	requestID := resp.Header.Get("Request-Id")
	if !requestIDPattern.MatchString(requestID) || scrub(requestID, secrets) != requestID || opaque {
		requestID = "" // not one of Heroku's, or it could carry what the call never held
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		return &RateLimitError{
			Endpoint:   endpoint,
			RequestID:  requestID,
			Remaining:  parseRemaining(resp.Header),
			RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now),
		}
	}
	var body struct {
		ID      string `json:"id"`
		Message string `json:"message"`
		// Error is OAuth's error code (RFC 6749, 5.2), such as
		// "invalid_grant", which a token endpoint may answer instead of
		// Heroku's id: it stands for the id when there is none.
		Error string `json:"error"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes))
	_ = json.Unmarshal(raw, &body) // a body that is not Heroku's JSON leaves ID and Message empty
	if body.ID == "" {
		body.ID = body.Error
	}
	id, withheld := scrub(body.ID, secrets), false
	if !idPattern.MatchString(id) {
		id = ""
	} else if opaque && !knownIDs[id] {
		id, withheld = "", true
	}
	msg := ""
	if !opaque && resp.StatusCode < 500 {
		msg = secret.Clip(printable.Text(scrub(body.Message, secrets)), maxMessageLen)
	}
	return &APIError{Status: resp.StatusCode, ID: id, Message: msg, RequestID: requestID, Endpoint: endpoint,
		IDWithheld: withheld}
}

// quotesTheApp reports whether an error answer to endpoint may quote the
// app's live credentials, which the call was never handed and no scrubber
// finds: a read of the config answers with them; a refused change of the
// config may quote them ("it is now ...") or the value sent cut short
// ("postgres://u:4f2a…"). Neither the message nor the Request-Id of such
// an answer is kept (a front that saw the app's config can echo it in
// either); the status and Heroku's error id say what happened. Other
// calls keep their request id, which Heroku's support finds the call by,
// and their 4xx message ("Couldn't find that add-on."), which tells an
// operator what to do; a 5xx's message is not kept anywhere, being as
// often a router's or a proxy's as Heroku's, its text anything it was
// handed.
func quotesTheApp(endpoint string) bool {
	switch endpoint {
	case EndpointGetConfig, EndpointV1Get, EndpointPatchConfig, EndpointV1Put:
		return true
	}
	return false
}

// MaxRetryAfter caps the wait a Retry-After header asks for. Heroku's
// budget refills 75 calls a minute; a longer wait than this is a proxy's
// mistake or a misread date, and taken whole it would park a rotation, and
// the instance with it, for as long as the header says (years, or a
// negative wait once the seconds overflow).
const MaxRetryAfter = 15 * time.Minute

// requestIDPattern is what a request id may look like to be kept in an
// error: Heroku's are UUIDs, sometimes with a suffix.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// knownIDs are the error ids an opaque call's error keeps: Heroku's
// Platform API's and OAuth's (RFC 6749, 5.2). Any other word could be an
// app's password of lower-case letters, or a piece of one.
var knownIDs = map[string]bool{
	"bad_request": true, "conflict": true, "delinquent": true, "forbidden": true, "gone": true, "internal_server_error": true,
	"invalid_params": true, "not_acceptable": true, "not_found": true, "payment_required": true,
	"precondition_failed": true, "rate_limit": true, "service_unavailable": true, "suspended": true,
	"two_factor": true, "unauthorized": true, "unavailable": true, "unprocessable_entity": true, "verification_needed": true,
	"invalid_request": true, "invalid_client": true, "invalid_grant": true, "unauthorized_client": true,
	"unsupported_grant_type": true, "invalid_scope": true,
}

// idPattern is what Heroku's error ids look like ("not_found",
// "invalid_params"): lowercase letters and underscores.
var idPattern = regexp.MustCompile(`^[a-z][a-z_]{0,63}$`)

// parseRetryAfter reads Retry-After as seconds or an HTTP date, at most
// MaxRetryAfter; 0 when absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs > 0 {
		return time.Duration(min(secs, int64(MaxRetryAfter/time.Second))) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return min(at.Sub(now), MaxRetryAfter)
	}
	return 0
}

// scrub replaces every secret of the request found in s with the redaction
// (secret.Scrub, the one scrubber).
func scrub(s string, secrets []string) string {
	known := make([]secret.String, len(secrets))
	for i, v := range secrets {
		known[i] = secret.New(v)
	}
	return secret.Scrub(s, known...)
}
