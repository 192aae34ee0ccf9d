// Package jsonkey reads the keys of a JSON object as they were sent.
// encoding/json keeps the last of a repeated key silently, and other
// readers may keep the first: an answer that names a key twice holds two
// values for it, and which one its sender meant cannot be told.
package jsonkey

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Each calls ok with each key of the JSON object raw, in order, and
// reports false as soon as ok does. Text that is no object, or that stops
// being JSON, ends the walk with true: decoding it fails.
func Each(raw []byte, ok func(key string) bool) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return true
	}
	for dec.More() {
		t, err := dec.Token()
		key, isKey := t.(string)
		if err != nil || !isKey {
			return true
		}
		if !ok(key) {
			return false
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return true
		}
	}
	return true
}

// Once reports whether the JSON object raw names no key twice. Text that
// is no object passes: decoding it fails.
func Once(raw []byte) bool {
	seen := map[string]bool{}
	return Each(raw, func(key string) bool {
		again := seen[key]
		seen[key] = true
		return !again
	})
}

// Values returns the value of each key of the JSON object raw named name,
// matching without case as encoding/json matches a struct's fields, in
// the order sent: more than one when the object names it twice, for the
// reader to tell whether they say the same. Text that is no object, or
// that stops being JSON, gives what was read before: decoding it fails.
func Values(raw []byte, name string) []json.RawMessage {
	var out []json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	for dec.More() {
		t, err := dec.Token()
		key, isKey := t.(string)
		var value json.RawMessage
		if err != nil || !isKey || dec.Decode(&value) != nil {
			return out
		}
		if strings.EqualFold(key, name) {
			out = append(out, bytes.TrimSpace(value))
		}
	}
	return out
}

// OnceEach reports whether the JSON object raw names each of names at most
// once, matching keys without case as encoding/json matches a struct's
// fields: {"id":1,"ID":2} gave two ids, and encoding/json keeps the last
// silently. Text that is no object passes: decoding it fails.
func OnceEach(raw []byte, names ...string) bool {
	seen := make(map[string]bool, len(names))
	return Each(raw, func(key string) bool {
		for _, name := range names {
			if strings.EqualFold(key, name) {
				if seen[name] {
					return false
				}
				seen[name] = true
			}
		}
		return true
	})
}
