package jsonkey

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"
)

// Check refuses a JSON document whose meaning depends on how its reader
// treats keys: an object (at any depth) holding the same key twice, where
// encoding/json keeps the last and other readers may keep the first, or a
// key that names a field of t only when compared without case, which
// encoding/json accepts and most other readers ignore. {"all":false,
// "ALL":true} reads as false to a gateway's policy or an audit log and as
// true to encoding/json. raw must be valid JSON; the error is a sentence
// naming the key.
func Check(raw []byte, t reflect.Type) error {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	return walkKeys(dec, t, "")
}

// walkKeys reads one JSON value from dec, t being the Go type it decodes
// into (nil when it is not known, where only repeated keys are checked).
func walkKeys(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	t = keyedType(t)
	switch tok {
	case json.Delim('{'):
		return walkObject(dec, t, path)
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walkKeys(dec, elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ']'
		return err
	}
	return nil
}

// walkObject reads the members of an object whose '{' was read.
func walkObject(dec *json.Decoder, t reflect.Type, path string) error {
	var fields map[string]reflect.Type
	if t != nil && t.Kind() == reflect.Struct {
		fields = jsonFields(t)
	}
	// A map's keys are the sender's data, not field names: current_config's
	// are the app's config var names, or its values when a sender swaps
	// them. An answer never quotes them.
	isMap := t != nil && t.Kind() == reflect.Map
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		name := key
		switch {
		case isMap:
			name = path + "[…]"
		case path != "":
			name = path + "." + key
		}
		if seen[key] && isMap {
			return fmt.Errorf("a name appears more than once in %q: send each name once", clipped(path))
		}
		if seen[key] {
			return fmt.Errorf("field %q appears more than once in one object: send each field once", clipped(name))
		}
		seen[key] = true
		var child reflect.Type
		switch {
		case fields != nil:
			ft, ok := fields[key]
			if !ok {
				if exact := foldedField(fields, key); exact != "" {
					return fmt.Errorf("field %q is not known: field names are case-sensitive, send %q", clipped(name), exact)
				}
			}
			child = ft
		case isMap:
			child = t.Elem()
		}
		if err := walkKeys(dec, child, name); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	return err
}

// keyedType is t without pointers, or nil when its fields do not name the
// document's keys: unknown, or decoded by its own UnmarshalJSON or
// UnmarshalText (secrets, times).
func keyedType(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return nil
	}
	p := reflect.PointerTo(t)
	if p.Implements(reflect.TypeFor[json.Unmarshaler]()) || p.Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
		return nil
	}
	return t
}

// jsonFields maps the JSON names of a struct's fields, those of embedded
// structs included, to their types, as encoding/json names them.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := make(map[string]reflect.Type)
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			if et := keyedType(f.Type); et != nil && et.Kind() == reflect.Struct {
				for k, v := range jsonFields(et) {
					if _, ok := out[k]; !ok {
						out[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// foldedField returns the field name key matches only without case, or "".
func foldedField(fields map[string]reflect.Type, key string) string {
	for name := range fields {
		if strings.EqualFold(name, key) {
			return name
		}
	}
	return ""
}

// clipped is s cut to 64 bytes, on a rune boundary, for an error to quote.
func clipped(s string) string {
	n := 64
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
