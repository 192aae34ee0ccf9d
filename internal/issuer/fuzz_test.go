package issuer_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/secret"
)

// placeholder marks where a fuzzed body holds the planted secret.
const placeholder = "SECRET"

// answerTransport answers every request with one status and body, in
// process, so the fuzzer exercises the issuer's whole reading of an answer
// without a network.
type answerTransport struct {
	status int
	body   []byte
}

func (a answerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: a.status, Header: http.Header{"Location": {"https://elsewhere.example/x"}},
		Body: io.NopCloser(bytes.NewReader(a.body)), Request: r, ProtoMajor: 1, ProtoMinor: 1}, nil
}

// FuzzIssuerAnswer feeds the HTTP issuer arbitrary answers (status and
// body, with a planted secret where the body says SECRET). Properties: no
// panic; every outcome is one the contract allows for that status; an
// error's text is fully determined by the operation, the status and a code
// (rekey's or a snake_case word from the body's code or error field), so
// the planted secret never appears in it; a minted credential's values
// never print.
func FuzzIssuerAnswer(f *testing.F) {
	for _, seed := range []struct {
		status int
		body   string
	}{
		{201, `{"credential_id":"cred_1","config":{"MYADDON_URL":"postgres://u:SECRET@db/x"}}`},
		{200, `{"credential_id":"SECRET","config":{"A":"SECRET","B":""}}`},
		{503, `database unreachable while checking postgres://u17:SECRET@db/x`},
		{503, `{"error":"database unreachable: SECRET"}`},
		{422, `{"error":"instance_suspended","message":"SECRET"}`},
		{409, `{"code":"SECRET","error":"quota_exceeded"}`},
		{302, `{"error":"moved"}`},
		{404, `SECRET`},
		{200, `{"credential_id":1,"config":[]}`},
	} {
		f.Add(seed.status, []byte(seed.body), []byte("pw17"))
	}
	f.Fuzz(func(t *testing.T, status int, body, planted []byte) {
		st := 200 + int(uint(status)%400) // 200..599: what a client can be handed
		sec := "pw-" + hex.EncodeToString(planted)
		body = bytes.ReplaceAll(body, []byte(placeholder), []byte(sec))
		h, err := issuer.NewHTTP("https://issuer.example/hooks", secret.New("k"),
			issuer.WithHTTPClient(&http.Client{Transport: answerTransport{st, body}}))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		c, mintErr := h.Mint(ctx, "inst-1", "rot-1")
		checkMinted(t, st, body, c, mintErr)
		verifyErr := h.Verify(ctx, "inst-1", "cred_1")
		revokeErr := h.Revoke(ctx, "inst-1", "cred_1")
		checkOutcome(t, "verify", st, body, verifyErr, st == http.StatusNotFound)
		checkOutcome(t, "revoke", st, body, revokeErr, false)
		for op, err := range map[string]error{"mint": mintErr, "verify": verifyErr, "revoke": revokeErr} {
			checkErrorText(t, op, st, body, err, sec)
		}
	})
}

func checkMinted(t *testing.T, st int, body []byte, c issuer.Credential, err error) {
	if err != nil {
		return
	}
	if st < 200 || st > 299 || c.ID == "" || len(c.Config) == 0 {
		t.Fatalf("mint on %d succeeded with %d vars, id %q", st, len(c.Config), c.ID)
	}
	// A U+FFFD the body does not hold, literally or escaped, is one
	// encoding/json put in place of what the issuer wrote.
	written := bytes.Contains(body, []byte("\uFFFD")) || bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`))
	for name, v := range c.Config {
		if name == "" || v.IsZero() || fmt.Sprint(v) != secret.Redacted || fmt.Sprintf("%#v", v) != secret.Redacted {
			t.Fatalf("config var %q is empty or prints its value", name)
		}
		text := name + v.Reveal()
		if strings.ContainsRune(text, 0) || strings.ContainsRune(name, '=') || strings.ContainsRune(text, utf8.RuneError) && !written {
			t.Fatalf("config var %q was accepted with a NUL, an '=' in its name or a U+FFFD the issuer did not write", name)
		}
		value := v.Reveal()
		if strings.TrimSpace(value) == "" || strings.Contains(value, "://") && strings.Trim(value, " \t\r\n\v\f") != value {
			t.Fatalf("config var %q was accepted blank, or a URL with white space around it", name)
		}
	}
}

// checkOutcome holds verify and revoke to the contract: 2xx works, 404
// means unsupported (verify) or revoked (revoke), and anything else is an
// error; a 3xx is never success and never permanent. A 410 to revoke is
// either: revoked when verify, answered the same here, says the credential
// does not work and neither answer is a page, which this check does not
// tell apart, and an error otherwise. A 2xx to verify or revoke whose JSON
// body says it failed, or has more after it, is a transient error_answer,
// and one whose JSON breaks off before its end a transient
// unreadable_answer.
func checkOutcome(t *testing.T, op string, st int, body []byte, err error, unsupported bool) {
	okStatus := st >= 200 && st <= 299 || (op == "revoke" && st == http.StatusNotFound)
	var e *issuer.Error
	switch {
	case op == "revoke" && st == http.StatusGone:
	case st >= 200 && st <= 299 && errors.As(err, &e) && e.Code == issuer.CodeErrorAnswer:
		if !issuer.IsTransient(err) || !saysFailed(body) && !moreAfterJSON(body) {
			t.Fatalf("%s on %d = %v, want transient and a body that says it failed or has more after its JSON", op, st, err)
		}
	case st >= 200 && st <= 299 && errors.As(err, &e) && e.Code == issuer.CodeUnreadable:
		if !issuer.IsTransient(err) || !cutShort(body) {
			t.Fatalf("%s on %d = %v, want transient and a body whose JSON breaks off", op, st, err)
		}
	case unsupported:
		if !errors.Is(err, issuer.ErrVerifyUnsupported) {
			t.Fatalf("%s on %d = %v, want unsupported", op, st, err)
		}
	case okStatus != (err == nil):
		t.Fatalf("%s on %d = %v", op, st, err)
	case st >= 300 && st <= 399 && (issuer.IsPermanent(err) || !issuer.IsTransient(err)):
		t.Fatalf("%s on %d = %v, want transient", op, st, err)
	}
}

func checkErrorText(t *testing.T, op string, st int, body []byte, err error, sec string) {
	var e *issuer.Error
	if err == nil || errors.Is(err, issuer.ErrVerifyUnsupported) {
		return
	}
	if !errors.As(err, &e) {
		t.Fatalf("%s on %d = %T %v, want *issuer.Error", op, st, err, err)
	}
	if want := fmt.Sprintf("issuer %s: status %d (%s)", op, st, e.Code); err.Error() != want {
		t.Fatalf("%s error %q, want %q", op, err, want)
	}
	if e.Code != issuer.StatusCode(st) && e.Code != issuer.CodeMalformed && e.Code != issuer.CodeUnreadable &&
		(e.Code != issuer.CodeErrorAnswer || st < 200 || st > 299 || !saysFailed(body) && (op == "mint" || !moreAfterJSON(body))) &&
		(e.Code != issuer.CodeIDNotString || op != "mint" || !numericIDIn(body)) &&
		(!issuer.ValidCode(e.Code) || !bodyNames(body, e.Code)) {
		t.Fatalf("%s error code %q comes from neither the status nor the body's code", op, e.Code)
	}
	for _, out := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		if strings.Contains(out, sec) {
			t.Fatalf("%s error leaks the planted secret: %s", op, out)
		}
	}
}

// bodyNames reports whether the body's code or error field is code.
func bodyNames(body []byte, code string) bool {
	var b struct {
		Code  any `json:"code"`
		Error any `json:"error"`
	}
	_ = json.Unmarshal(body, &b)
	return b.Code == code || b.Error == code
}

// saysFailed reports whether body is a JSON object with an error, errors,
// ok, success, revoked, status, valid or works field, in any case (what a
// revoke's, and a mint's, error_answer reads).
func saysFailed(body []byte) bool {
	var v map[string]json.RawMessage
	if json.Unmarshal(bytes.TrimPrefix(bytes.TrimSpace(body), []byte("\xef\xbb\xbf")), &v) != nil {
		return false
	}
	for key := range v {
		switch strings.ToLower(key) {
		case "error", "errors", "ok", "success", "revoked", "status", "valid", "works":
			return true
		}
	}
	return false
}

// numericIDIn reports whether a mint answer's body writes credential_id as
// a whole number, which the mint names as credential_id_not_string.
func numericIDIn(body []byte) bool {
	var r struct {
		CredentialID json.RawMessage `json:"credential_id"`
	}
	id := ""
	if json.Unmarshal(body, &r) == nil {
		id = string(r.CredentialID)
	}
	return id != "" && strings.Trim(id, "0123456789") == ""
}

// moreAfterJSON reports whether body, spaces and a byte-order mark
// trimmed, opens with a whole JSON object or array and has more after it.
func moreAfterJSON(body []byte) bool {
	body = bytes.TrimSpace(bytes.TrimPrefix(bytes.TrimSpace(body), []byte("\xef\xbb\xbf")))
	if len(body) == 0 || body[0] != '{' && body[0] != '[' {
		return false
	}
	d := json.NewDecoder(bytes.NewReader(body))
	var v json.RawMessage
	return d.Decode(&v) == nil && d.InputOffset() < int64(len(body))
}

// cutShort reports whether body, spaces and a byte-order mark trimmed,
// opens a JSON object or array that ends before it closes.
func cutShort(body []byte) bool {
	body = bytes.TrimSpace(bytes.TrimPrefix(bytes.TrimSpace(body), []byte("\xef\xbb\xbf")))
	if len(body) == 0 || body[0] != '{' && body[0] != '[' {
		return false
	}
	var v json.RawMessage
	return errors.Is(json.NewDecoder(bytes.NewReader(body)).Decode(&v), io.ErrUnexpectedEOF)
}
