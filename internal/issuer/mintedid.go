package issuer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

// Bounds of what mintedID keeps of one JSON string while it reads a mint
// answer: a key longer than maxKeyBytes cannot be "credential_id", escaped
// or not, and an id longer than maxIDBytes is none rekey can use
// (store.ValidID allows 128 bytes).
const (
	maxKeyBytes = 128
	maxIDBytes  = 1024
)

// errScan stops mintedID's reading at malformed JSON.
var errScan = errors.New("not a JSON object")

// mintedID returns the credential id a mint answer names, reading r to its
// end or to the first malformed byte with a fixed buffer, however large
// the answer or its values: every value other than the id is read past and
// dropped, never held. The id is the one decodeCredential would take: the
// value of the last top-level key that matches "credential_id" ignoring
// case, as encoding/json matches a struct's field. It returns "" when that
// value is no string or too long to be an id, when the answer names no id,
// or when it is not a JSON object. An answer cut short (r ends) gives the
// id named before the cut.
func mintedID(r io.Reader) string {
	s := &jsonScanner{r: bufio.NewReaderSize(r, 16<<10)}
	if c, err := s.next(); err != nil || c != '{' {
		return ""
	}
	id := ""
	for {
		c, err := s.next()
		if err != nil || c != '"' {
			return id // '}', the end of the answer, or malformed
		}
		isID, err := s.idKey()
		if err != nil {
			return id
		}
		if c, err := s.next(); err != nil || c != ':' {
			return id
		}
		c, err = s.next()
		if err != nil {
			return id
		}
		switch {
		case !isID:
			err = s.skip(c)
		case c == '"':
			var v string
			var fits bool
			v, fits, err = s.str(maxIDBytes)
			id = ""
			if fits {
				id = v
			}
		case c == 'n':
			err = s.skip(c) // null leaves the id as it was, as it leaves a Go string
		default:
			// A number, an object...: decodeCredential cannot read the
			// answer either.
			err, id = s.skip(c), ""
		}
		if err != nil {
			return id
		}
		if c, err := s.next(); err != nil || c != ',' {
			return id
		}
	}
}

// jsonScanner reads JSON tokens one byte at a time; key holds the key
// being read, up to maxKeyBytes.
type jsonScanner struct {
	r   *bufio.Reader
	key [maxKeyBytes]byte
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

// idKey reads a key whose opening quote was read and reports whether it
// is "credential_id", case aside, as encoding/json matches it. A key
// without escapes, the common case, is compared where it is read, with no
// allocation.
func (s *jsonScanner) idKey() (bool, error) {
	n, escaped, plain := 0, false, true
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return false, err
		}
		switch {
		case escaped:
			escaped = false
		case c == '\\':
			escaped, plain = true, false
		case c == '"':
			if plain {
				return bytes.EqualFold(s.key[:min(n, len(s.key))], idKeyName) && n == len(idKeyName), nil
			}
			v, err := unquote(s.key[:min(n, len(s.key))], n > len(s.key))
			return err == nil && strings.EqualFold(v, string(idKeyName)), err
		}
		if n < len(s.key) {
			s.key[n] = c
		}
		n++
	}
}

// idKeyName is the key mintedID looks for.
var idKeyName = []byte("credential_id")

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
