package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"time"

	"github.com/rekeyhq/rekey/internal/jsonkey"
	"github.com/rekeyhq/rekey/internal/printable"
)

// Request body limits. A body over its limit is refused with 413 before
// anything is applied.
const (
	// maxInstanceBody bounds PUT /api/v1/instances/{addon_id}.
	maxInstanceBody = 1 << 20
	// maxRotationsBody bounds POST /api/v1/rotations: room for
	// maxRotationIDs ids of about 80 characters (Heroku's are 36-character
	// uuids).
	maxRotationsBody = 8 << 20
)

// writeJSON writes v with status, safe on the terminal of an operator
// reading the API with curl (printable.JSON).
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
	_, _ = w.Write(printable.JSON(b.Bytes()))
}

// apiError is the body of every API error: one sentence naming what was wrong.
type apiError struct {
	Error string `json:"error"`
}

// writeError writes {"error": msg} with status.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Error: msg})
}

// bodyError is a request body that cannot be used, with the status to answer.
type bodyError struct {
	status int
	msg    string
}

func (e *bodyError) Error() string { return e.msg }

// decodeBody reads one JSON object of at most limit bytes from r into v,
// refusing unknown fields, wrong types, trailing data, repeated keys and
// keys that name a field only without case (checkKeys). Errors are
// *bodyError with a sentence that names the field at fault.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return &bodyError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", limit)}
	case err != nil:
		return &bodyError{http.StatusBadRequest, "request body could not be read"}
	case len(bytes.TrimSpace(raw)) == 0:
		return &bodyError{http.StatusBadRequest, "request body is empty: send a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &bodyError{http.StatusBadRequest, describeJSONError(err, raw)}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &bodyError{http.StatusBadRequest, "request body must hold exactly one JSON object"}
	}
	if err := jsonkey.Check(raw, reflect.TypeOf(v)); err != nil {
		return &bodyError{http.StatusBadRequest, err.Error()}
	}
	return nil
}

// describeJSONError turns a decoding error into a sentence naming the field.
func describeJSONError(err error, raw []byte) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("request body is not valid JSON (at byte %d)", syntax.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "request body is not valid JSON: it ends too early"
	case errors.As(err, &typ) && typ.Field == "":
		return fmt.Sprintf("request body must be a JSON object, not %s", typ.Value)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q must be %s, not %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
	}
	var unknown string
	if _, e := fmt.Sscanf(err.Error(), "json: unknown field %q", &unknown); e == nil {
		return fmt.Sprintf("field %q is not known", clipID(unknown))
	}
	var when *time.ParseError
	if errors.As(err, &when) {
		return `field "oauth.expires_at" must be an RFC 3339 time such as "2026-01-02T15:04:05Z"`
	}
	if field := nonStringField(raw); field != "" {
		return fmt.Sprintf("field %q must be a string", field)
	}
	return "request body could not be decoded: check the field types"
}

// jsonKind names a Go kind the way a JSON client thinks of it.
func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	case "int", "int64", "float64":
		return "a number"
	}
	return "of another type"
}

// nonStringField names the field of an instance body that must be a JSON
// string and is not. Secrets and times decode through their own types,
// whose errors encoding/json does not attribute to a field.
func nonStringField(raw []byte) string {
	var body struct {
		OAuthGrant  map[string]json.RawMessage `json:"oauth_grant"`
		OAuth       map[string]json.RawMessage `json:"oauth"`
		LogInputURL json.RawMessage            `json:"log_input_url"`
	}
	if json.Unmarshal(raw, &body) != nil {
		return ""
	}
	if v := string(body.LogInputURL); v != "" && v != "null" && v[0] != '"' {
		return "log_input_url"
	}
	check := func(prefix string, m map[string]json.RawMessage, names ...string) string {
		for _, n := range names {
			if v, ok := m[n]; ok && (len(v) == 0 || v[0] != '"') {
				return prefix + "." + n
			}
		}
		return ""
	}
	if f := check("oauth_grant", body.OAuthGrant, "code"); f != "" {
		return f
	}
	return check("oauth", body.OAuth, "access_token", "refresh_token", "expires_at")
}
