package issuer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
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

// Bounds of what mintedID keeps of the answer's config: its string
// values, for the caller to check the id against (an id must not hold a
// secret of its config, store.SavePending). Heroku keeps at most 32 KB of
// config vars for an app, so a config past maxConfigBytes is no config an
// issuer means. Of a value longer than maxConfigValue only its first
// maxConfigValue bytes are kept: no secret an id could hold (128 bytes at
// most) hides past them, a URL's password included, which comes near its
// start.
const (
	maxConfigBytes = 64 << 10
	maxConfigValue = 8 << 10
)

// errScan stops mintedID's reading at malformed JSON.
var errScan = errors.New("not a JSON object")

// mintAnswer is what mintedID finds in a mint answer.
type mintAnswer struct {
	// id is the credential id it names, "" when none.
	id string
	// config holds the string values of its config objects, read up to
	// the point where the reading stopped.
	config []secret.String
	// unchecked says the config held more than maxConfigBytes of
	// strings: config is not all of them.
	unchecked bool
	// held is the bytes config holds.
	held int
}

// mintedID returns the credential id a mint answer names, with the string
// values of its config, reading r to its end or to the first malformed
// byte with a fixed buffer, however large the answer or its values:
// every value other than the id and the config's is read past and
// dropped, never held. The id is the one decodeCredential would take: the
// value of the last top-level key that matches "credential_id" ignoring
// case, as encoding/json matches a struct's field. It is "" when that
// value is no string or too long to be an id, when the answer names no id,
// or when it is not a JSON object. An answer cut short (r ends) gives the
// id named before the cut. The config is every top-level key matching
// "config" the same way, when it is an object: its string values at any
// depth, within the bounds above (unchecked says when they were passed).
func mintedID(r io.Reader) mintAnswer {
	s := &jsonScanner{r: bufio.NewReaderSize(r, 16<<10)}
	var a mintAnswer
	if c, err := s.next(); err != nil || c != '{' {
		return a
	}
	for {
		c, err := s.next()
		if err != nil || c != '"' {
			return a // '}', the end of the answer, or malformed
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
		case key == keyConfig && c == '{':
			err = s.keepConfig(c, &a)
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
			err, a.id = s.skip(c), ""
		}
		if err != nil {
			return a
		}
		if c, err := s.next(); err != nil || c != ',' {
			return a
		}
	}
}

// keepConfig reads past one value whose first byte, c, was read, as skip
// does, keeping its strings other than object keys in a's config, within
// the bounds.
func (s *jsonScanner) keepConfig(c byte, a *mintAnswer) error {
	depth := 0
	for {
		switch {
		case c == '"':
			// Past the bound the rest is read as skip reads it.
			var v string
			var err error
			if a.unchecked {
				err = s.skipStr()
			} else {
				v, err = s.prefix(maxConfigValue)
			}
			if err != nil {
				return err
			}
			// A string followed by ':' is a key.
			n, err := s.next()
			if err != nil {
				return err
			}
			if n != ':' && !a.unchecked {
				a.keep(v)
			}
			c = n
			continue
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
			if depth < 0 {
				return errScan
			}
			if depth == 0 {
				return nil
			}
		}
		var err error
		if c, err = s.r.ReadByte(); err != nil {
			return err
		}
	}
}

// keep adds a config string to a, or marks a unchecked when it is past
// maxConfigBytes.
func (a *mintAnswer) keep(v string) {
	if a.held+len(v) > maxConfigBytes {
		a.unchecked = true
		return
	}
	a.held += len(v)
	a.config = append(a.config, secret.New(v))
}

// jsonScanner reads JSON tokens one byte at a time; key holds the key
// being read, up to maxKeyBytes.
type jsonScanner struct {
	r   *bufio.Reader
	key [maxKeyBytes]byte
	// buf is prefix's, kept from one string to the next.
	buf []byte
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
				v, err := unquote(raw, n > len(s.key))
				if err != nil {
					return keyOther, err
				}
				raw, n = []byte(v), len(v)
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

// unquote decodes the JSON string body raw; a body cut at the buffer's end
// (cut) is none mintedID looks for.
func unquote(raw []byte, cut bool) (string, error) {
	if cut {
		return "", nil
	}
	var v string
	if json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &v) != nil {
		return "", errScan
	}
	return v, nil
}

// str reads a string whose opening quote was read, up to its closing
// quote, and returns it decoded when it holds at most limit bytes as
// written (fits false otherwise, and "" for it).
func (s *jsonScanner) str(limit int) (v string, fits bool, err error) {
	raw := make([]byte, 1, limit+2) // the quotes and limit bytes between
	raw[0] = '"'
	over, escaped := false, false
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return "", false, err
		}
		if len(raw) < cap(raw) {
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
			if json.Unmarshal(raw, &v) != nil {
				return "", false, errScan
			}
			return v, true, nil
		}
	}
}

// prefix reads a string whose opening quote was read, up to its closing
// quote, and returns it decoded, cut to about limit bytes as written: an
// escape the cut splits is left out.
func (s *jsonScanner) prefix(limit int) (string, error) {
	raw := append(s.buf[:0], '"')
	defer func() { s.buf = raw[:0] }()
	escaped := false
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return "", err
		}
		switch {
		case escaped:
			escaped = false
		case c == '\\':
			escaped = true
		case c == '"':
			return decodePrefix(raw)
		}
		if len(raw) < limit+1 {
			raw = append(raw, c)
		}
	}
}

// decodePrefix decodes raw, a JSON string's opening quote and its first
// bytes as written; the bytes of an escape cut short at its end (at most
// twelve, a surrogate pair's) are dropped.
func decodePrefix(raw []byte) (string, error) {
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) && !hasControl(raw) {
		return string(raw[1:]), nil
	}
	var v string
	for cut := 0; cut <= 12 && cut < len(raw); cut++ {
		if json.Unmarshal(append(raw[:len(raw)-cut:len(raw)-cut], '"'), &v) == nil {
			return v, nil
		}
	}
	return "", errScan
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
func (s *jsonScanner) skip(c byte) error {
	depth := 0
	for {
		switch {
		case c == '"':
			if err := s.skipStr(); err != nil {
				return err
			}
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
			if depth < 0 {
				return errScan
			}
		case depth == 0 && (c == ',' || c == ':'):
			return errScan
		}
		if depth == 0 && c != '{' && c != '[' {
			if c == '"' || c == '}' || c == ']' {
				return nil // a string, or the end of the object or array
			}
			// A literal: read on to the byte after it.
			for {
				b, err := s.r.ReadByte()
				if err != nil {
					return err
				}
				if b == ',' || b == '}' || b == ']' || b == ' ' || b == '\t' || b == '\n' || b == '\r' {
					return s.r.UnreadByte()
				}
			}
		}
		var err error
		if c, err = s.r.ReadByte(); err != nil {
			return err
		}
	}
}
