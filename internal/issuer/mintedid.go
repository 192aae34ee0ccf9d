package issuer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/rekeyhq/rekey/internal/secret"
)

// Bounds of what mintedID keeps of one JSON string while it reads a mint
// answer: a key longer than maxKeyBytes cannot be "credential_id", escaped
// or not, and an id longer than maxIDBytes is none rekey can use
// (store.ValidID allows 128 bytes).
const (
	maxKeyBytes = 128
	maxIDBytes  = 1024
)

// Bounds of what mintedID keeps of the answer's config: its strings, for
// the caller to check the id against (an id must not hold a secret of its
// config, store.SavePending). Heroku keeps at most 32 KB of config vars
// for an app, so a config past maxConfigBytes is no config an issuer
// means; each string counts stringOverhead more, so that many short ones
// cannot make it large. A string shorter than minSecretBytes is not kept:
// no such string is a secret secret.Holds looks for (a generated run is
// longer, and a URL with a password of 8 bytes is too). Of a string longer
// than maxConfigValue only a URL's scheme and authority, where its
// password is, are kept; an authority cut before its password ends is
// past the bounds, unless the password is longer than any id.
const (
	maxUsableID    = 128 // the longest id store.ValidID allows
	maxConfigBytes = 64 << 10
	maxConfigValue = 8 << 10
	stringOverhead = 32
	minSecretBytes = 13
)

// errScan stops mintedID's reading at malformed JSON.
var errScan = errors.New("not a JSON object")

// mintAnswer is what mintedID finds in a mint answer.
type mintAnswer struct {
	// id is the credential id it names, "" when none.
	id string
	// config holds the strings of its config, names and values, and its
	// numbers as written.
	config []secret.String
	// unchecked says config is not all of them: the reading stopped
	// before the answer's end (cut short, malformed), or they were past
	// the bounds.
	unchecked bool
	// held is what config counts against maxConfigBytes, past it when
	// strings were dropped for it.
	held int
}

// mintedID returns the credential id a mint answer names, with the strings
// of its config, reading r to its end or to the first malformed byte with
// a fixed buffer, however large the answer or its values: every value
// other than the id and the config is read past and dropped, never held.
// The id is the one decodeCredential would take: the value of the last
// top-level key that matches "credential_id" ignoring case, as
// encoding/json matches a struct's field. It is "" when that value is no
// string or too long to be an id, when the answer names no id, or when it
// is not a JSON object. An answer cut short (r ends) gives the id named
// before the cut. The config is the value of every top-level key matching
// "config" the same way, whatever its kind: its strings at any depth, keys
// too (an issuer may swap names and values), and its numbers (literal),
// within the bounds above.
func mintedID(r io.Reader) mintAnswer {
	s := &jsonScanner{r: bufio.NewReaderSize(r, 16<<10)}
	a := mintAnswer{unchecked: true} // until the closing brace is read
	if c, err := s.next(); err != nil || c != '{' {
		return a
	}
	badID := false // a credential_id that is no string: encoding/json fails the answer
	for first := true; ; first = false {
		c, err := s.next()
		if c == '}' && first && err == nil {
			a.unchecked = !s.atEnd()
			return a
		}
		if err != nil || c != '"' {
			return a // the end of the answer, or malformed
		}
		key, err := s.topKey()
		if err != nil {
			return a
		}
		if c, err := s.next(); err != nil || c != ':' {
			return a
		}
		c, err = s.next()
		if err != nil {
			return a
		}
		switch {
		case key == keyConfig:
			err = s.walk(c, &a) // keeping its strings
		case key != keyID:
			err = s.skip(c)
		case c == '"':
			var v string
			var fits bool
			v, fits, err = s.str(maxIDBytes)
			a.id = ""
			if fits {
				a.id = v
			}
		case c == 'n':
			err = s.skip(c) // null leaves the id as it was, as it leaves a Go string
		default:
			// A number, an object...: decodeCredential cannot read the
			// answer either.
			err, a.id, badID = s.skip(c), "", true
		}
		if err != nil {
			return a
		}
		c, err = s.next()
		if err == nil && c == '}' {
			a.unchecked = a.held > maxConfigBytes || !s.atEnd()
			if badID {
				a.id = "" // encoding/json fails the answer whatever came after
			}
			return a
		}
		if err != nil || c != ',' {
			return a
		}
	}
}

// keepString reads a string whose opening quote was read and keeps it in
// a's config, as the bounds allow; past them it is read and dropped.
func (s *jsonScanner) keepString(a *mintAnswer) error {
	if a.held > maxConfigBytes {
		return s.skipStr()
	}
	v, cut, err := s.prefix(maxConfigValue)
	if err != nil {
		return err
	}
	if cut {
		// Only a URL's scheme and authority: its password, if any, is there.
		scheme := strings.Index(v, "://")
		if scheme < 0 {
			return nil
		}
		rest := v[scheme+3:]
		switch end, at, colon := strings.IndexAny(rest, "/?#"), strings.LastIndexByte(rest, '@'), strings.IndexByte(rest, ':'); {
		case end >= 0:
			v = v[:scheme+3+end]
		case at >= 0:
			// A host past the cut: the user and password come before it
			// (a later '@' would only lengthen the password).
			v = v[:scheme+3+at+1] + "h"
		case colon >= 0 && len(rest)-colon-1 > maxUsableID:
			// A password longer than any id: none can hold it.
			return nil
		default:
			// A user past the cut: the password, after it, is unseen.
			a.held = maxConfigBytes + 1
			return nil
		}
	}
	a.hold(v)
	return nil
}

// hold keeps v in a's config, as the bounds allow.
func (a *mintAnswer) hold(v string) {
	if len(v) < minSecretBytes || a.held > maxConfigBytes {
		return
	}
	a.held += len(v) + stringOverhead
	if a.held <= maxConfigBytes {
		a.config = append(a.config, secret.New(v))
	}
}

// jsonScanner reads JSON tokens one byte at a time; key holds the key
// being read, up to maxKeyBytes.
type jsonScanner struct {
	r   *bufio.Reader
	key [maxKeyBytes]byte
	// buf is str's and prefix's, kept from one string to the next.
	buf []byte
}

// atEnd reports whether nothing but white space is left: encoding/json
// fails an answer with more after its value.
func (s *jsonScanner) atEnd() bool {
	_, err := s.next()
	return err == io.EOF
}

// next returns the next byte that is not white space.
func (s *jsonScanner) next() (byte, error) {
	for {
		c, err := s.r.ReadByte()
		if err != nil || (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			return c, err
		}
	}
}

// Top-level keys mintedID looks for, as topKey names them.
const (
	keyOther = iota
	keyID
	keyConfig
)

// topKey reads a key whose opening quote was read and says whether it is
// "credential_id" or "config", case aside, as encoding/json matches them.
// A key without escapes, the common case, is compared where it is read,
// with no allocation.
func (s *jsonScanner) topKey() (int, error) {
	n, escaped, plain := 0, false, true
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return keyOther, err
		}
		switch {
		case escaped:
			escaped = false
		case c == '\\':
			escaped, plain = true, false
		case c == '"':
			raw := s.key[:min(n, len(s.key))]
			if !plain {
				v, err := unquote(raw, n > len(s.key), s.key[:0])
				if err != nil {
					return keyOther, err
				}
				raw, n = v, len(v)
			}
			switch {
			case n == len(idKeyName) && bytes.EqualFold(raw, idKeyName):
				return keyID, nil
			case n == len(configKeyName) && bytes.EqualFold(raw, configKeyName):
				return keyConfig, nil
			}
			return keyOther, nil
		}
		if n < len(s.key) {
			s.key[n] = c
		}
		n++
	}
}

// The keys' names.
var (
	idKeyName     = []byte("credential_id")
	configKeyName = []byte("config")
)

// unquote decodes the JSON string body raw into dst, which may be raw
// itself (decoding never lengthens it), without allocating; a body cut at
// the buffer's end (cut) is none mintedID looks for, and nor is one with a
// letter past ASCII: the keys it looks for are ASCII, and no other letter
// folds to one of theirs (encoding/json folds K and ſ to k and s, which
// neither holds). An escape JSON does not allow is errScan, as it is for
// encoding/json.
func unquote(raw []byte, cut bool, dst []byte) ([]byte, error) {
	if cut {
		return nil, nil
	}
	ascii := true
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c < 0x20:
			return nil, errScan
		case c >= 0x80:
			ascii = false
		case c == '\\':
			if i+1 >= len(raw) {
				return nil, errScan
			}
			i++
			switch raw[i] {
			case '"', '\\', '/':
				c = raw[i]
			case 'b', 'f', 'n', 'r', 't':
				c = 0 // no letter of the keys
			case 'u':
				if i+4 >= len(raw) {
					return nil, errScan
				}
				r := 0
				for _, h := range raw[i+1 : i+5] {
					switch {
					case h >= '0' && h <= '9':
						r = r<<4 | int(h-'0')
					case h|0x20 >= 'a' && h|0x20 <= 'f':
						r = r<<4 | int(h|0x20-'a'+10)
					default:
						return nil, errScan
					}
				}
				i += 4
				if r >= 0x80 {
					ascii = false
				}
				c = byte(r)
			default:
				return nil, errScan
			}
		}
		dst = append(dst, c)
	}
	if !ascii {
		return nil, nil
	}
	return dst, nil
}

// str reads a string whose opening quote was read, up to its closing
// quote, and returns it decoded when it holds at most limit bytes as
// written (fits false otherwise, and "" for it).
func (s *jsonScanner) str(limit int) (v string, fits bool, err error) {
	raw := append(s.buf[:0], '"') // the quotes and limit bytes between
	defer func() { s.buf = raw[:0] }()
	over, escaped := false, false
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return "", false, err
		}
		if len(raw) < limit+2 {
			raw = append(raw, c)
		} else {
			over = true
		}
		switch {
		case escaped:
			escaped = false
		case c == '\\':
			escaped = true
		case c == '"' && over:
			return "", false, nil
		case c == '"':
			if body := raw[1 : len(raw)-1]; bytes.IndexByte(body, '\\') < 0 && utf8.Valid(body) && !hasControl(body) {
				return string(body), true, nil
			}
			var d string // only here: its address makes it escape
			if json.Unmarshal(raw, &d) != nil {
				return "", false, errScan
			}
			return d, true, nil
		}
	}
}

// prefix reads a string whose opening quote was read, up to its closing
// quote, and returns it decoded, cut to about limit bytes as written (cut
// says so): an escape the cut splits is left out. A string that does not
// decode is returned as written, so that the reading goes on past it, as
// skipStr's does.
func (s *jsonScanner) prefix(limit int) (v string, cut bool, err error) {
	raw := append(s.buf[:0], '"')
	defer func() { s.buf = raw[:0] }()
	escaped := false
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return "", false, err
		}
		switch {
		case escaped:
			escaped = false
		case c == '\\':
			escaped = true
		case c == '"':
			return decodePrefix(raw, cut), cut, nil
		}
		if len(raw) < limit+1 {
			raw = append(raw, c)
		} else {
			cut = true
		}
	}
}

// decodePrefix decodes raw, a JSON string's opening quote and its bytes as
// written, or its first bytes when cut: then the bytes of an escape cut
// short at its end (at most twelve, a surrogate pair's) are dropped. What
// does not decode is returned as written.
func decodePrefix(raw []byte, cut bool) string {
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) && !hasControl(raw) {
		return string(raw[1:])
	}
	var v string
	for n := len(raw); n > 1 && (n == len(raw) || (cut && n >= len(raw)-12)); n-- {
		if json.Unmarshal(append(raw[:n:n], '"'), &v) == nil {
			return v
		}
	}
	return string(raw[1:])
}

// hasControl reports whether raw holds a byte JSON does not allow
// unescaped in a string.
func hasControl(raw []byte) bool {
	for _, c := range raw {
		if c < 0x20 {
			return true
		}
	}
	return false
}

// skipStr reads past a string whose opening quote was read, keeping none
// of it.
func (s *jsonScanner) skipStr() error {
	escaped := false
	for {
		c, err := s.r.ReadByte()
		switch {
		case err != nil:
			return err
		case escaped:
			escaped = false
		case c == '\\':
			escaped = true
		case c == '"':
			return nil
		}
	}
}

// skip reads past one value whose first byte, c, was read: a string, an
// object or an array (strings within them read as such), or a literal,
// up to the byte after it, which it leaves unread.
func (s *jsonScanner) skip(c byte) error { return s.walk(c, nil) }

// walk is skip, keeping the value's strings, keys too, in a when a is not
// nil.
func (s *jsonScanner) walk(c byte, a *mintAnswer) error {
	depth := 0
	for {
		switch {
		case c == '"':
			if err := s.readString(a); err != nil || depth == 0 {
				return err
			}
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
			if depth < 0 {
				return errScan
			}
			if depth == 0 {
				return nil // the end of the object or array
			}
		case depth == 0 && (c == ',' || c == ':'):
			return errScan
		case depth == 0:
			return s.literal(c, a)
		case a != nil && (c == '-' || c >= '0' && c <= '9'):
			// A number within the config: kept too.
			if err := s.literal(c, a); err != nil {
				return err
			}
		}
		var err error
		if c, err = s.r.ReadByte(); err != nil {
			return err
		}
	}
}

// literal reads past a literal whose first byte, c, was read, up to the
// byte after it, which it leaves unread. A number is kept in a, as it is
// written, when a is not nil: an issuer may give a secret as a number, and
// a config of numbers is one rekey cannot use, whose id is still checked.
func (s *jsonScanner) literal(c byte, a *mintAnswer) error {
	keep := a != nil && (c == '-' || c >= '0' && c <= '9') && a.held <= maxConfigBytes
	s.buf = append(s.buf[:0], c)
	for {
		b, err := s.r.ReadByte()
		if err != nil {
			return err
		}
		if b == ',' || b == '}' || b == ']' || b == ' ' || b == '\t' || b == '\n' || b == '\r' {
			if keep && len(s.buf) >= minSecretBytes && len(s.buf) <= maxConfigValue {
				a.hold(string(s.buf))
				// Its integer digits alone too, without a minus, a fraction
				// or an exponent: 40123456789012.0 is how some encoders
				// write that integer.
				n := bytes.TrimPrefix(s.buf, []byte{'-'})
				if i := bytes.IndexFunc(n, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
					a.hold(string(n[:i]))
				} else if len(n) < len(s.buf) {
					a.hold(string(n))
				}
			}
			return s.r.UnreadByte()
		}
		if keep && len(s.buf) <= maxConfigValue {
			s.buf = append(s.buf, b)
		}
	}
}

// readString reads a string whose opening quote was read: kept in a by
// keepString, or skipped when a is nil.
func (s *jsonScanner) readString(a *mintAnswer) error {
	if a == nil {
		return s.skipStr()
	}
	return s.keepString(a)
}
