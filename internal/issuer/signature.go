package issuer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
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

// ErrBadSignature is returned, wrapped with a reason, by VerifySignature.
var ErrBadSignature = errors.New("issuer: bad signature")

// Sign returns the Rekey-Signature header value for body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with key>".
func Sign(key secret.String, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(key, ts, body))
}

func mac(key secret.String, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(key.Reveal()))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifySignature checks a Rekey-Signature header against body: the
// timestamp must lie within skew of now (DefaultSkew when skew <= 0) and one
// v1 signature must match, compared in constant time. Receivers of the
// issuer webhook call it before acting on a request.
func VerifySignature(key secret.String, header string, body []byte, now time.Time, skew time.Duration) error {
	if skew <= 0 {
		skew = DefaultSkew
	}
	ts, sigs, err := parseSignature(header)
	if err != nil {
		return err
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: malformed timestamp", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > skew || d < -skew {
		return fmt.Errorf("%w: timestamp outside the allowed skew", ErrBadSignature)
	}
	want := mac(key, ts, body)
	for _, s := range sigs {
		if got, err := hex.DecodeString(s); err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no matching v1 signature", ErrBadSignature)
}

// parseSignature splits "t=...,v1=...[,v1=...]" into the timestamp and the
// v1 signatures; other schemes are ignored so senders can add new ones.
func parseSignature(header string) (ts string, v1 []string, err error) {
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case !ok:
			continue
		case k == "t":
			ts = v
		case k == "v1":
			v1 = append(v1, v)
		}
	}
	if ts == "" || len(v1) == 0 {
		return "", nil, fmt.Errorf("%w: header needs t= and v1=", ErrBadSignature)
	}
	return ts, v1, nil
}
