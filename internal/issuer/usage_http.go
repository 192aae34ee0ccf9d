package issuer

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/rekeyhq/rekey/internal/jsonkey"
	"github.com/rekeyhq/rekey/internal/secret"
)

// ActionUsage is the action named in a usage request's body.
const ActionUsage = "usage"

// maxUsedByLen bounds the hint of who used a credential that rekey keeps.
const maxUsedByLen = 64

var _ UsageReporter = (*HTTP)(nil)

// Usage calls GET {base}/credentials/{id}/usage, signed like every call and
// with a body naming the credential and the action. 404 means the issuer
// does not report usage (ErrUsageUnsupported). A last use later than now is
// taken as now: evidence never counts as use beyond the present, so it can
// hold a revocation only until its cap (README.md, issuer contract). An
// answer that cannot be read (not JSON, too large, a redirect) is an *Error
// and is no evidence either way.
func (h *HTTP) Usage(ctx context.Context, instanceID, credentialID string) (Usage, error) {
	u, err := h.credentialURL("usage", instanceID, credentialID)
	if err != nil {
		return Usage{}, err
	}
	a, err := h.do(ctx, "usage", http.MethodGet, u+"/usage", credentialBody(ActionUsage, instanceID, credentialID))
	switch {
	case err != nil:
		return Usage{}, err
	case a.status == http.StatusNotFound && a.page():
		// Heroku's router or a framework answered, not the issuer: no
		// evidence either way, so a hold keeps its last one.
		return Usage{}, &Error{Op: "usage", Status: a.status, Code: CodeNotFoundPage}
	case a.status == http.StatusNotFound:
		return Usage{}, ErrUsageUnsupported
	case !ok2xx(a.status):
		return Usage{}, answerError("usage", a.status, a.body)
	case a.fields().saysFailed():
		// A 2xx whose body says it failed carries no last_used_at, which
		// would read as "never used": no evidence either way, so a hold
		// keeps its last.
		return Usage{}, &Error{Op: "usage", Status: a.status, Code: CodeErrorAnswer}
	}
	return decodeUsage(a.status, a.body, h.now())
}

// decodeUsage reads a usage answer: {"last_used_at": RFC 3339 or null,
// "last_used_by": optional short hint}.
func decodeUsage(status int, body []byte, now time.Time) (Usage, error) {
	var r struct {
		LastUsedAt *string `json:"last_used_at"`
		LastUsedBy string  `json:"last_used_by"`
	}
	malformed := &Error{Op: "usage", Status: status, Code: CodeMalformed}
	if err := json.Unmarshal(body, &r); err != nil || !oneLastUse(body) {
		return Usage{}, malformed
	}
	var u Usage
	if r.LastUsedAt != nil {
		at, err := time.Parse(time.RFC3339Nano, *r.LastUsedAt)
		if err != nil {
			return Usage{}, malformed
		}
		u.LastUsedAt = ClampUsage(at, now)
	}
	u.LastUsedBy = CleanUsedBy(r.LastUsedBy)
	return u, nil
}

// oneLastUse reports whether every last_used_at the answer names (also in
// another case, as encoding/json matches it) says the same as the first
// (sameWord: one instant however written, or null each time).
// encoding/json keeps the last silently: a recent use then null read as
// "never used", which released a hold on a credential the same answer
// reported in use.
func oneLastUse(body []byte) bool {
	vs := jsonkey.Values(body, "last_used_at")
	for _, v := range vs[min(1, len(vs)):] {
		if !sameWord("last_used_at", vs[0], v) {
			return false
		}
	}
	return true
}

// sameLastUse reports whether two last_used_at values say the same as
// decodeUsage reads them: null both, or one instant.
func sameLastUse(a, b json.RawMessage) bool {
	var sa, sb *string
	if json.Unmarshal(a, &sa) != nil || json.Unmarshal(b, &sb) != nil || (sa == nil) != (sb == nil) {
		return false
	}
	if sa == nil {
		return true
	}
	ta, errA := time.Parse(time.RFC3339Nano, *sa)
	tb, errB := time.Parse(time.RFC3339Nano, *sb)
	return errA == nil && errB == nil && ta.Equal(tb)
}

// ClampUsage returns at, or now when at is later: a credential is never
// taken as used beyond the present.
func ClampUsage(at, now time.Time) time.Time {
	if at.After(now) {
		return now.UTC()
	}
	return at.UTC()
}

// CleanUsedBy keeps a usage hint only when it is short printable text
// (an address, a client name); anything else is dropped, not shown. So is
// text that looks like a token (secret.LooksGenerated) or that may hold a
// password however it looks (mayHoldPassword), since the hint is kept in
// clear and shown to operators and the customer while the credential is
// live (I5). So is one holding a key written in groups (a UUID,
// secret.KeyInGroups), which LooksGenerated lets pass: an issuer whose
// credentials are such keys may echo the one asked about.
func CleanUsedBy(s string) string {
	if len(s) > maxUsedByLen || secret.LooksGenerated(s) || holdsKeyInGroups(s) || mayHoldPassword(s) {
		return ""
	}
	for _, r := range s {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return ""
		}
	}
	return s
}

// holdsKeyInGroups reports whether s holds a key written in groups
// (secret.KeyInGroups) between any characters that are neither letters,
// digits nor dashes, or dashes that join no group: a dash at either end of
// a word, or two or more together ("client--<key>", "<key>-"), which
// KeyInGroups reads as an empty group, no key.
func holdsKeyInGroups(s string) bool {
	words := strings.FieldsFunc(s, func(r rune) bool {
		return r != '-' && (r > unicode.MaxASCII || !unicode.IsLetter(r) && !unicode.IsDigit(r))
	})
	for _, w := range words {
		if slices.ContainsFunc(strings.Split(w, "--"), func(part string) bool {
			return secret.KeyInGroups(strings.Trim(part, "-"))
		}) {
			return true
		}
	}
	return false
}

// mayHoldPassword reports whether a hint may hold a password that
// LooksGenerated lets pass (a human-chosen one, with dashes): a URL's user
// information, a password where a URL's port belongs, a user and password
// without a host ("app:pw"), or with a slash ("app/pw@db"), a client's
// -p flag ("-ppw"), a parameter named like a secret, or a word that names
// one anywhere ("password = pw", `{"password":"pw"}`, "Bearer pw"), read as
// written and percent-decoded. A user alone before a host
// ("app@10.0.0.5"), an IP address and a host's port hold none and are
// kept. It errs towards dropping: a hint is a courtesy, a password in it a
// leak.
func mayHoldPassword(s string) bool {
	forms := []string{s}
	if dec, err := url.PathUnescape(s); err == nil && dec != s {
		forms = append(forms, dec)
	}
	for _, f := range forms {
		lower := strings.ToLower(f)
		if slices.ContainsFunc(secretWords, func(w string) bool { return strings.Contains(lower, w) }) {
			return true
		}
		for _, word := range strings.Fields(f) {
			if userPassword(word) || secretParam(word) || bareUserPassword(word) || slashPassword(word) || flagPassword(word) {
				return true
			}
		}
	}
	return false
}

// secretWords name a secret wherever they stand in a hint, in lower case.
var secretWords = []string{"pass", "pwd", "secret", "token", "cred", "bearer", "authorization"}

// bareUserPassword reports whether word reads as a user and password
// without a host ("app:Hunter2"): something after its last ':' that is no
// port, in a word (after any user and '@') that is no IP address
// ("2001:db8::1", "[2001:db8::1]:5432").
func bareUserPassword(word string) bool {
	if strings.Contains(word, "://") {
		return false // a URL: userPassword's case
	}
	if at := strings.LastIndexByte(word, '@'); at >= 0 {
		word = word[at+1:] // a user before the host: userPassword's case
	}
	colon := strings.LastIndexByte(word, ':')
	if colon < 0 || strings.Trim(word[colon+1:], "0123456789") == "" {
		return false
	}
	host := strings.TrimSuffix(strings.TrimPrefix(word, "["), "]")
	if h, _, err := net.SplitHostPort(word); err == nil {
		host = strings.Trim(h, "[]")
	}
	return net.ParseIP(host) == nil
}

// userPassword reports whether word holds a user and password before a
// host ("app:pw@10.0.0.5", "postgres://app:pw@h"), any user information
// after a scheme ("redis://:pw@h", "postgres://app@h": the ':' of the
// scheme comes before the '@'), or an authority whose last ':' is followed
// by no port ("postgres://app:pw", its host cut off).
func userPassword(word string) bool {
	if at := strings.LastIndexByte(word, '@'); at >= 0 && strings.Contains(word[:at], ":") {
		return true
	}
	for rest := word; ; {
		i := strings.Index(rest, "://")
		if i < 0 {
			return false
		}
		rest = rest[i+3:]
		auth := rest
		if end := strings.IndexAny(auth, "/?#"); end >= 0 {
			auth = auth[:end]
		}
		colon := strings.LastIndexByte(auth, ':')
		if colon >= 0 && !strings.HasSuffix(auth, "]") && strings.Trim(auth[colon+1:], "0123456789") != "" {
			return true
		}
	}
}

// slashPassword reports whether word reads as a user and password written
// with a slash before a host ("app/Hunter2@db", as Oracle's clients take
// them): a '/' before the last '@', with no scheme.
func slashPassword(word string) bool {
	at := strings.LastIndexByte(word, '@')
	return at >= 0 && !strings.Contains(word, "://") && strings.Contains(word[:at], "/")
}

// flagPassword reports whether word is a password given as a client's
// -p flag ("-pHunter2", as mysql takes it); psql's -p takes a port, and a
// port is kept ("-p5432").
func flagPassword(word string) bool {
	return strings.HasPrefix(word, "-p") && strings.Trim(word[2:], "0123456789") != ""
}

// secretNames are what a parameter's name that holds a secret holds, in
// lower case: password=, sslpassword=, pwd=, access_token=, api_key=,
// client_secret=, X-Amz-Signature=, Credential=; and pw= and p=, whole.
var secretNames = []string{"pass", "pwd", "secret", "token", "key", "auth", "sig", "cred"}

// secretParam reports whether word sets a parameter named like a secret
// (secretNames), as a URL's query or a connection string does.
func secretParam(word string) bool {
	w := strings.ToLower(word)
	for i := 0; i < len(w); i++ {
		if w[i] != '=' {
			continue
		}
		start := i
		for start > 0 && isNameByte(w[start-1]) {
			start--
		}
		name := w[start:i]
		if name == "pw" || name == "p" || slices.ContainsFunc(secretNames, func(n string) bool { return strings.Contains(name, n) }) {
			return true
		}
	}
	return false
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}
