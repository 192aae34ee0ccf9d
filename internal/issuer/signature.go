package issuer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
)

// SignatureHeader carries the signature of every issuer webhook request.
const SignatureHeader = "Rekey-Signature"

// DefaultSkew is how far a signature's timestamp may be from the receiver's
// clock.
const DefaultSkew = 5 * time.Minute

// ErrBadSignature is returned, wrapped with a reason, by VerifySignature,
// VerifySignatureV2 and VerifyRequest.
var ErrBadSignature = errors.New("issuer: bad signature")

// The signature schemes of the Rekey-Signature header. A header carries one
// timestamp and any number of schemes; receivers ignore schemes they do not
// know, so new ones can be added beside the old.
const (
	// schemeV1 signs "<t>.<body>": kept for issuers written before v2. It
	// does not say which request the body was for.
	schemeV1 = "v1"
	// schemeV2 signs "<t>.<METHOD>.<PATH>.<body>", so a signature is valid
	// for one method on one path only.
	schemeV2 = "v2"
)

// Sign returns a Rekey-Signature header value carrying the v1 scheme only:
// "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with key>".
// rekey itself sends SignRequest's value; Sign stays for tests of v1-only
// receivers.
func Sign(key secret.String, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + "," + schemeV1 + "=" + hex.EncodeToString(macV1(key, ts, body))
}

// SignRequest returns the Rekey-Signature header value rekey sends with a
// request: "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">,
// v2=<hex HMAC-SHA256 of "<t>.<METHOD>.<PATH>.<body>">", both keyed with
// key. path is the request's escaped URL path as sent, without the query.
func SignRequest(key secret.String, t time.Time, method, path string, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return Sign(key, t, body) + "," + schemeV2 + "=" + hex.EncodeToString(macV2(key, ts, method, path, body))
}

// SignRequestRotating returns SignRequest's value for key followed, when
// previous is set and differs from key, by the v1 and v2 signatures made
// with previous under the same timestamp:
// "t=<unix>,v1=<key's>,v2=<key's>,v1=<previous's>,v2=<previous's>". It is
// how REKEY_ISSUER_SECRET rotates without a window where rekey and the
// issuer disagree: while REKEY_ISSUER_SECRET_PREVIOUS holds the old secret,
// an issuer holding either finds one signature of its scheme that matches.
// That asks of the receiver what VerifySignature and VerifySignatureV2 do:
// accept any matching signature among several of one scheme, not only the
// first or the last. With previous unset the value is SignRequest's, byte
// for byte.
func SignRequestRotating(key, previous secret.String, t time.Time, method, path string, body []byte) string {
	header := SignRequest(key, t, method, path, body)
	if previous.IsZero() || previous.Reveal() == key.Reveal() {
		return header
	}
	ts := strconv.FormatInt(t.Unix(), 10)
	return header + "," + schemeV1 + "=" + hex.EncodeToString(macV1(previous, ts, body)) +
		"," + schemeV2 + "=" + hex.EncodeToString(macV2(previous, ts, method, path, body))
}

func macV1(key secret.String, ts string, body []byte) []byte {
	return mac(key, []byte(ts), body)
}

func macV2(key secret.String, ts, method, path string, body []byte) []byte {
	return mac(key, []byte(ts), []byte(method), []byte(path), body)
}

// mac is HMAC-SHA256 of the parts joined with ".".
func mac(key secret.String, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, []byte(key.Reveal()))
	for i, p := range parts {
		if i > 0 {
			m.Write([]byte{'.'})
		}
		m.Write(p)
	}
	return m.Sum(nil)
}

// VerifySignature checks the v1 scheme of a Rekey-Signature header against
// body: the timestamp must lie within skew of now (DefaultSkew when skew <=
// 0) and one v1 signature must match, compared in constant time. It is for
// issuers written before v2; a v1 signature made for one request is valid
// for any request with the same body, so new receivers call
// VerifySignatureV2 or VerifyRequest instead.
func VerifySignature(key secret.String, header string, body []byte, now time.Time, skew time.Duration) error {
	sig, err := parseSignature(header, now, skew)
	if err != nil {
		return err
	}
	return sig.match(schemeV1, macV1(key, sig.ts, body))
}

// VerifySignatureV2 checks the v2 scheme of a Rekey-Signature header: the
// timestamp must lie within skew of now (DefaultSkew when skew <= 0) and one
// v2 signature must match method, path and body, compared in constant time.
// path is the request's escaped URL path as it arrived, without the query
// (VerifyRequest finds it in an *http.Request). A signature captured from
// another request, or a header with v1 only, is refused.
func VerifySignatureV2(key secret.String, header, method, path string, body []byte, now time.Time, skew time.Duration) error {
	sig, err := parseSignature(header, now, skew)
	if err != nil {
		return err
	}
	return sig.match(schemeV2, macV2(key, sig.ts, method, path, body))
}

// VerifyRequest checks the v2 signature of a webhook request the receiver
// got, whose body it has read. The path is taken from r.RequestURI, the
// request line as it arrived, so a handler mounted under http.StripPrefix
// still checks the path rekey signed.
func VerifyRequest(key secret.String, r *http.Request, body []byte, now time.Time, skew time.Duration) error {
	return VerifySignatureV2(key, r.Header.Get(SignatureHeader), r.Method, requestPath(r), body, now, skew)
}

// requestPath is the escaped path of the request line, without the query:
// the path the sender signed.
func requestPath(r *http.Request) string {
	uri := r.RequestURI
	if uri == "" { // a request built in process, never sent
		return r.URL.EscapedPath()
	}
	if i := strings.Index(uri, "://"); i >= 0 { // absolute form, through a proxy
		uri = uri[i+3:]
		if j := strings.IndexByte(uri, '/'); j >= 0 {
			uri = uri[j:]
		} else {
			uri = "/"
		}
	}
	path, _, _ := strings.Cut(uri, "?")
	return path
}

// signature is a parsed Rekey-Signature header.
type signature struct {
	ts      string
	schemes map[string][]string // scheme -> hex signatures
}

// parseSignature splits "t=...,v1=...,v2=..." and checks the timestamp.
func parseSignature(header string, now time.Time, skew time.Duration) (signature, error) {
	if skew <= 0 {
		skew = DefaultSkew
	}
	sig := signature{schemes: map[string][]string{}}
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case !ok:
			continue
		case k == "t":
			sig.ts = v
		default:
			sig.schemes[k] = append(sig.schemes[k], v)
		}
	}
	if sig.ts == "" {
		return signature{}, fmt.Errorf("%w: header needs t=", ErrBadSignature)
	}
	sec, err := strconv.ParseInt(sig.ts, 10, 64)
	if err != nil {
		return signature{}, fmt.Errorf("%w: malformed timestamp", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > skew || d < -skew {
		return signature{}, fmt.Errorf("%w: timestamp outside the allowed skew", ErrBadSignature)
	}
	return sig, nil
}

// match reports whether one signature of scheme equals want.
func (s signature) match(scheme string, want []byte) error {
	for _, h := range s.schemes[scheme] {
		if got, err := hex.DecodeString(h); err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no matching %s signature", ErrBadSignature, scheme)
}
