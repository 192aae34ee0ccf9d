package herokufake

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

const (
	errorsURL    = "https://devcenter.heroku.com/articles/platform-api-reference#errors"
	rateLimitURL = "https://devcenter.heroku.com/articles/platform-api-reference#rate-limits"
	maxBody      = 1 << 20
)

// apiError is Heroku's error body. Messages never carry secret values.
type apiError struct {
	ID      string `json:"id"`
	Message string `json:"message"`
	URL     string `json:"url"`
}

// exchange is one request to the Heroku API and its answer so far.
type exchange struct {
	f      *Fake
	w      http.ResponseWriter
	r      *http.Request
	bucket string // the bucket RateLimit-Remaining reports on
	status int    // 0 until answered
}

// api wraps the handler of endpoint e with what every Heroku answer shares:
// a Request-Id, injected faults, and counting the call.
func (f *Fake) api(e Endpoint, h func(*exchange)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x := &exchange{f: f, w: w, r: bodyRead(r)}
		w.Header().Set("Request-Id", newUUID())
		at := f.now()
		ref := r.PathValue("addon") + r.PathValue("heroku_id") // at most one is set
		defer func() { f.record(Call{Endpoint: e, Status: x.status, At: at}, ref) }()
		if f.inject(e, x) {
			return
		}
		h(x)
	})
}

// bodyRead returns r with its body read ahead into memory (at most maxBody+1
// bytes). Once the body is consumed the server watches the connection, so
// r's context ends when the client gives up, even while a call hangs.
func bodyRead(r *http.Request) *http.Request {
	b, _ := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	r.Body = io.NopCloser(bytes.NewReader(b))
	return r
}

// json answers status with v as the body.
func (x *exchange) json(status int, v any) {
	h := x.w.Header()
	if h.Get("RateLimit-Remaining") == "" {
		h.Set("RateLimit-Remaining", strconv.Itoa(x.f.remaining(x.bucket)))
	}
	h.Set("Content-Type", "application/json")
	x.status = status
	x.w.WriteHeader(status)
	_ = json.NewEncoder(x.w).Encode(v)
}

// fail answers Heroku's error body.
func (x *exchange) fail(status int, id, message string) {
	x.json(status, apiError{ID: id, Message: message, URL: errorsURL})
}

// rateLimited answers the 429 of an empty bucket. Heroku sends no Retry-After.
func (x *exchange) rateLimited() {
	x.w.Header().Set("RateLimit-Remaining", "0")
	x.json(http.StatusTooManyRequests, apiError{
		ID:      "rate_limit",
		Message: "Your account reached the API rate limit. Please wait a few minutes before making new requests.",
		URL:     rateLimitURL,
	})
}

// decode reads a JSON body of at most maxBody bytes into v.
func (x *exchange) decode(v any) error {
	body := http.MaxBytesReader(x.w, x.r.Body, maxBody)
	return json.NewDecoder(body).Decode(v)
}

// statusIDs are Heroku's error ids by status, for scripted answers.
var statusIDs = map[int]string{
	400: "bad_request", 401: "unauthorized", 402: "delinquent", 403: "forbidden",
	404: "not_found", 406: "not_acceptable", 409: "conflict", 410: "gone",
	422: "invalid_params", 429: "rate_limit", 500: "internal_server_error",
	503: "service_unavailable",
}

// respond answers a scripted or random error status.
func (x *exchange) respond(status int) {
	if status == http.StatusTooManyRequests {
		x.rateLimited()
		return
	}
	id, ok := statusIDs[status]
	if !ok {
		id = "error"
	}
	x.fail(status, id, fmt.Sprintf("Injected %d answer.", status))
}

// echo answers status with a message that repeats the config values of the
// request's body, V3 ({"config":[{"name","value"}]}) or V1
// ({"config":{name:value}}).
func (x *exchange) echo(status int) {
	var body struct {
		Config json.RawMessage `json:"config"`
	}
	raw, _ := io.ReadAll(x.r.Body)
	_ = json.Unmarshal(raw, &body)
	var values []string
	var v3 []configVar
	var v1 map[string]string
	if json.Unmarshal(body.Config, &v3) == nil {
		for _, v := range v3 {
			if v.Value != nil {
				values = append(values, v.Name+"="+*v.Value)
			}
		}
	} else if json.Unmarshal(body.Config, &v1) == nil {
		for name, v := range v1 {
			values = append(values, name+"="+v)
		}
	}
	id, ok := statusIDs[status]
	if !ok {
		id = "error"
	}
	x.fail(status, id, "Config rejected: "+strings.Join(values, ", "))
}

// newUUID returns a random version 4 UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// newToken returns a random URL-safe string with prefix.
func newToken(prefix string) string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}
