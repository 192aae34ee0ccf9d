package issuer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/secret"
)

// mintedID finds the id encoding/json finds, for any answer that
// encoding/json reads as an object with a string id short enough to be one.
func FuzzMintedID(f *testing.F) {
	for _, seed := range []string{
		`{"credential_id":"cred_1","config":{"MYADDON_URL":"postgres://u:p@h/d"}}`,
		`{"config":{"credential_id":"nested"},"CREDENTIAL_ID":"upper"}`,
		`{"credential_id":"a","credential_id":"b"}`,
		`{"credential_id":"a","credential_id":null}`,
		`{"cred\u0065ntial_id":"escaped key","x":[1,{"y":"\"}"}],"z":true}`,
		`{"credential_id":"tab\tand \"quote\" and \u00e9"}`,
		`{"a":-1.5e3,"b":[[],{}],"credential_id":"after literals"}`,
		`[{"credential_id":"in an array"}]`,
		`{"credential_id":7}`,
		`{"CREDENTIA\u004C_ID":"escaped upper","\u212Aey":1,"c\u00f6nfig":{"A":"value-number-1"}}`,
		`{"cred\qential_id":"a bad escape"}`,
		`{"config":{"A":["x",{"B":"y\u00e9"}],"C":1,"D":"postgres:\/\/u:p@h"},"credential_id":"c"}`,
		`{"config":{"PIN":-40123456789012.5e-3,"N":[12345678901234567890]},"credential_id":"c-40123456789012"}`,
		`{"config":{"N":1e400,"M":12345678901234e400},"credential_id":"c"}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, answer string) {
		var r struct {
			CredentialID string `json:"credential_id"`
			Config       any    `json:"config"`
		}
		a := mintedID(strings.NewReader(answer))
		got := a.id
		// Unmarshal but with numbers as written (which mintedID keeps too),
		// any number, one past float64's range included.
		d := json.NewDecoder(strings.NewReader(answer))
		d.UseNumber()
		if d.Decode(&r) != nil || d.Decode(new(any)) != io.EOF || len(r.CredentialID) > 128 {
			return
		}
		// Every string and number of the config encoding/json reads (the
		// last "config"), of a length mintedID keeps whole, is among those it
		// kept; and it kept them all only if it read to the answer's end.
		if !a.unchecked {
			kept := map[string]bool{}
			for _, v := range a.config {
				kept[v.Reveal()] = true
			}
			for _, v := range stringsOf(r.Config) {
				if len(v) >= minSecretBytes && len(v) <= 1024 && !kept[v] {
					t.Fatalf("mintedID(%q) did not keep the config string %q", answer, v)
				}
			}
		}
		if strings.TrimSpace(answer)[0] != '{' {
			r.CredentialID = "" // a null answer decodes to nothing, an error for decodeCredential
		}
		if got != r.CredentialID {
			t.Fatalf("mintedID(%q) = %q, encoding/json reads %q", answer, got, r.CredentialID)
		}
	})
}

// BenchmarkMintedID reads a 1 MiB mint answer of the kinds a broken issuer
// sends, its id last: what it allocates does not grow with the answer
// beyond the config strings it keeps (64 KiB of them at most, counting 32
// bytes for each).
func BenchmarkMintedID(b *testing.B) {
	pad := func(unit string) string { return strings.Repeat(unit, (maxScanBytes-64)/len(unit)) }
	for _, c := range []struct{ name, answer string }{
		{"one long value", `{"config":{"MYADDON_URL":"` + pad("p") + `"},"credential_id":"cred_1"}`},
		{"many config values", `{"config":{` + strings.TrimSuffix(pad(`"a":"v1234567890123",`), ",") + `},"credential_id":"cred_1"}`},
		{"many config numbers", `{"config":[` + strings.TrimSuffix(pad(`1234567890123,`), ",") + `],"credential_id":"cred_1"}`},
		{"one long config number", `{"config":[` + pad("7") + `],"credential_id":"cred_1"}`},
		{"many empty config values", `{"config":[` + strings.TrimSuffix(pad(`"",`), ",") + `],"credential_id":"cred_1"}`},
		{"many repeated ids", `{` + pad(`"credential_id":"a",`) + `"credential_id":"cred_1"}`},
		{"many small fields", `{"x":{` + strings.TrimSuffix(pad(`"a":0,`), ",") + `},"credential_id":"cred_1"}`},
		{"many top-level keys", `{` + pad(`"a":0,`) + `"credential_id":"cred_1"}`},
		{"many escaped top-level keys", `{` + pad(`"\u0061":0,`) + `"credential_id":"cred_1"}`},
		{"deep nesting", `{"x":` + pad("[") + `}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.answer)))
			for b.Loop() {
				_ = mintedID(io.LimitReader(strings.NewReader(c.answer), maxScanBytes))
			}
		})
	}
}

// stringsOf is every string of v, as encoding/json decodes a value, keys
// too.
func stringsOf(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case json.Number:
		return []string{string(v)}
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, stringsOf(e)...)
		}
		return out
	case map[string]any:
		var out []string
		for k, e := range v {
			out = append(append(out, k), stringsOf(e)...)
		}
		return out
	}
	return nil
}

// mintedID keeps the config's strings, whatever the config's kind, at any
// depth, keys too, when they are long enough to be a secret an id could
// hold; of a long one only a URL's scheme and authority, where its
// password is. It says they are not all kept when they are more than
// 64 KiB, or when the reading stopped before the answer's end.
func TestMintedIDKeepsTheConfigStrings(t *testing.T) {
	t.Parallel()
	const v1, v2, v3 = "value-number-1", "value-number-2", "value-number-3"
	longURL := `postgres:\/\/u:pw123456@db.example.com\/d?` + strings.Repeat("q", 20<<10)
	escapedPath := `postgres://u:Zq8xk2Lm9Vb4@h/` + strings.Repeat("%41", 2800)
	var many []string // 1,000 strings of 40 bytes, 72 bytes each counted: past 64 KiB
	for i := range 1000 {
		many = append(many, fmt.Sprintf(`"%040d"`, i))
	}
	tiny := `{"config":[` + strings.Repeat(`"",`, 300<<10) + `""],"credential_id":"cred_1"}`
	for _, tc := range []struct {
		name, answer string
		want         []string
		unchecked    bool
	}{
		{"nested", `{"credential_id":"c","config":{"A":"` + v1 + `","B":{"n":["` + v2 + `",3,true]},"C":null,"D":"short"},"other":"` + v3 + `"}`,
			[]string{v1, v2}, false},
		{"after the id, any case", `{"credential_id":"c","Config":{"A":"` + v1 + `"}}`, []string{v1}, false},
		{"escaped", `{"config":{"A":"postgres:\/\/u:p\u0040ss@host"}}`, []string{"postgres://u:p@ss@host"}, false},
		{"a string", `{"config":"` + v1 + `","credential_id":"c"}`, []string{v1}, false},
		{"an array", `{"config":["` + v1 + `",{"k":"` + v2 + `"}]}`, []string{v1, v2}, false},
		{"a number", `{"config":12345678901234567,"credential_id":"c"}`, []string{"12345678901234567"}, false},
		{"numbers within", `{"config":{"PIN":-1234567890.12e3,"PORT":5432,"ON":true,"N":[null,98765432109876543]}}`,
			[]string{"-1234567890.12e3", "98765432109876543"}, false},
		{"an integer written with a fraction or a sign", `{"config":{"PIN":40123456789012.0,"N":-40123456789013,"E":4012345678901e3}}`,
			[]string{"40123456789012.0", "40123456789012", "-40123456789013", "40123456789013", "4012345678901e3", "4012345678901"}, false},
		{"a number past the bound", `{"config":{"N":` + strings.Repeat("7", 9<<10) + `}}`, nil, false},
		{"keys kept", `{"config":{"postgres://u:pw123456@h":"MYADDON_URL"}}`, []string{"postgres://u:pw123456@h"}, false},
		{"two configs", `{"config":{"A":"` + v1 + `"},"config":null,"config":{"A":"` + v2 + `"}}`, []string{v1, v2}, false},
		{"a long URL", `{"config":{"A":"` + longURL + `"}}`, []string{"postgres://u:pw123456@db.example.com"}, false},
		{"a long URL, escapes in its path", `{"config":{"A":"` + escapedPath + `"}}`, []string{"postgres://u:Zq8xk2Lm9Vb4@h"}, false},
		{"a long URL, authority past the bound", `{"config":{"A":"postgres://u:` + strings.Repeat("p", 9<<10) + `@h/"}}`, nil, false},
		{"a long URL, host past the bound", `{"config":{"A":"postgres://u:Zq8xk2Lm9Vb4@` + strings.Repeat("h", 9<<10) + `/d"}}`,
			[]string{"postgres://u:Zq8xk2Lm9Vb4@h"}, false},
		{"a long URL, user past the bound", `{"config":{"A":"postgres://` + strings.Repeat("u", 9<<10) + `:Zq8xk2Lm9Vb4@h/d"}}`, nil, true},
		{"a long value", `{"config":{"A":"` + strings.Repeat("v1", 5<<10) + `"}}`, nil, false},
		{"more after the object", `{"config":{"A":"` + v1 + `"}} {"config":{"A":"` + v2 + `"}}`, []string{v1}, true},
		{"too many", `{"config":[` + strings.Join(many, ",") + `]}`, nil, true},
		{"cut short", `{"credential_id":"c","config":{"A":"` + v1 + `"`, []string{v1}, true},
		{"malformed after", `{"credential_id":"c","config":{"A":"` + v1 + `"},"x": ],"config":{"A":"` + v2 + `"}}`, []string{v1}, true},
		{"a string that does not decode", `{"config":{"NOTE":"a\qbbbbbbbbbbbbbbbb","A":"` + v1 + `"},"credential_id":"cred_1"}`,
			[]string{`a\qbbbbbbbbbbbbbbbb`, v1}, false},
		{"an empty object", `{}`, nil, false},
	} {
		a := mintedID(strings.NewReader(tc.answer))
		var got []string
		for _, v := range a.config {
			got = append(got, v.Reveal())
		}
		if tc.name == "too many" {
			if want := maxConfigBytes / (40 + stringOverhead); len(got) != want {
				t.Errorf("%s: kept %d strings, want %d", tc.name, len(got), want)
			}
			got = nil
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || a.unchecked != tc.unchecked {
			t.Errorf("%s: kept %.80q, unchecked %v; want %.80q, %v", tc.name, got, a.unchecked, tc.want, tc.unchecked)
		}
	}
	if a := mintedID(strings.NewReader(`{"config":{"A":"` + escapedPath + `"}}`)); !secret.Holds("cred-Zq8xk2Lm9Vb4", a.config...) {
		t.Error("the password of a long URL with escapes in its path is not seen")
	}
	if a := mintedID(io.LimitReader(strings.NewReader(`{"credential_id":"cred_1","debug":"`+strings.Repeat("x", maxScanBytes)+
		`","config":{"A":"`+v1+`"}}`), maxScanBytes)); a.id != "cred_1" || !a.unchecked {
		t.Errorf("config past the scanned 1 MiB: id %q, unchecked %v; want cred_1, unchecked", a.id, a.unchecked)
	}
	if a := mintedID(strings.NewReader(tiny)); len(a.config) != 0 || a.unchecked || a.id != "cred_1" {
		t.Errorf("300 Ki empty strings: kept %d, unchecked %v, id %q; want none kept, cred_1", len(a.config), a.unchecked, a.id)
	}
}

func TestMintedIDReadsAsEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ answer, want string }{
		{`{"config":{"credential_id":"nested"},"CREDENTIAL_ID":"upper"}`, "upper"},
		{`{"credential_id":"a","pad":"x","credential_id":"b"}`, "b"},
		{`{"credential_id":"a","credential_id":null}`, "a"},
		{`{"credential_id":"a","credential_id":7}`, ""},
		{`{"cred\u0065ntial_id":"escaped key"}`, "escaped key"},
		{`{"credential_id":"` + strings.Repeat("c", 2000) + `"}`, ""},
		{`{"credential_id":"cut short`, ""},
		{`{"credential_id":"before the cut","config":{"A":"`, "before the cut"},
		{`{"x": }, "credential_id":"after malformed"}`, ""},
		{`["credential_id","not an object"]`, ""},
		{`{"credential_id":7,"credential_id":"after a number"}`, ""},
	} {
		if got := mintedID(strings.NewReader(tc.answer)).id; got != tc.want {
			t.Errorf("mintedID(%.60q) = %q, want %q", tc.answer, got, tc.want)
		}
	}
}

// A usable answer whose id holds a secret of another "config" than the
// last one, which encoding/json reads, is refused like an unusable one:
// the id is checked against every config the answer holds.
func TestDecodeCredentialChecksTheIDAgainstEveryConfig(t *testing.T) {
	t.Parallel()
	const id = "sk4eC39HqLyjWDarjtT1zd"
	body := `{"config":{"A":"` + id + `"},"config":{"B":"postgres://u:p@h/d"},"credential_id":"` + id + `"}`
	_, err := decodeCredential(201, []byte(body))
	var u *UnusableCredentialError
	if !errors.As(err, &u) || u.CredentialID != id || !secret.Holds(id, u.Config...) {
		t.Fatalf("decodeCredential = %v; want an UnusableCredentialError whose config holds the id's secret", err)
	}
	_, err = decodeCredential(201, []byte(`{"config":{"PIN":40123456789012},"credential_id":"cred-40123456789012"}`))
	if !errors.As(err, &u) || !secret.Holds(u.CredentialID, u.Config...) {
		t.Errorf("a number in the config and the id: %v; want an UnusableCredentialError whose config holds the id's number", err)
	}
	c, err := decodeCredential(201, []byte(`{"config":{"A":"postgres://u:Zq8xk2Lm9Vb4@h/d"},"credential_id":"cred_1"}`))
	if err != nil || c.ID != "cred_1" {
		t.Errorf("a plain answer: %+v, %v", c, err)
	}
}
