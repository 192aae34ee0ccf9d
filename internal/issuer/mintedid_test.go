package issuer

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
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
		`{"config":{"A":["x",{"B":"y\u00e9"}],"C":1,"D":"postgres:\/\/u:p@h"},"credential_id":"c"}`,
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
		if json.Unmarshal([]byte(answer), &r) != nil || len(r.CredentialID) > 128 {
			return
		}
		// Every string of the config encoding/json reads, short enough to
		// be kept whole, is among those mintedID kept.
		if _, isObject := r.Config.(map[string]any); isObject && !a.unchecked {
			kept := map[string]bool{}
			for _, v := range a.config {
				kept[v.Reveal()] = true
			}
			for _, v := range configStrings(mustJSON(t, r.Config)) {
				if len(v.Reveal()) <= 1024 && !kept[v.Reveal()] {
					t.Fatalf("mintedID(%q) did not keep the config string %q", answer, v.Reveal())
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
// past the config strings it keeps (64 KiB of them at most, about 0.6 MB
// with their headers when they are thousands of short ones).
func BenchmarkMintedID(b *testing.B) {
	pad := func(unit string) string { return strings.Repeat(unit, (maxScanBytes-64)/len(unit)) }
	for _, c := range []struct{ name, answer string }{
		{"one long value", `{"config":{"MYADDON_URL":"` + pad("p") + `"},"credential_id":"cred_1"}`},
		{"many config values", `{"config":{` + strings.TrimSuffix(pad(`"a":"v1234567",`), ",") + `},"credential_id":"cred_1"}`},
		{"many small fields", `{"x":{` + strings.TrimSuffix(pad(`"a":0,`), ",") + `},"credential_id":"cred_1"}`},
		{"many top-level keys", `{` + pad(`"a":0,`) + `"credential_id":"cred_1"}`},
		{"many escaped top-level keys", `{` + pad(`"a":0,`) + `"credential_id":"cred_1"}`},
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

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// mintedID keeps the config's strings, at any depth, keys aside, so that
// the id can be checked against them; of a long one only its start, where
// a URL's password is; past 64 KiB of them it says they are not all kept.
func TestMintedIDKeepsTheConfigStrings(t *testing.T) {
	t.Parallel()
	long := "postgres:\\/\\/u:pw123456@db.example.com\\/d?" + strings.Repeat("q", 20<<10)
	var many []string // nine values of 10 KiB, kept as 8 KiB each: the ninth is past 64 KiB
	for i := range 9 {
		many = append(many, fmt.Sprintf(`"A%d":"%s"`, i, strings.Repeat("v", 10<<10)))
	}
	for _, tc := range []struct {
		name, answer string
		want         []string
		unchecked    bool
	}{
		{"nested", `{"credential_id":"c","config":{"A":"x1","B":{"n":["y2",3,true]},"C":null},"other":"z"}`, []string{"x1", "y2"}, false},
		{"after the id, any case", `{"credential_id":"c","Config":{"A":"x1"}}`, []string{"x1"}, false},
		{"escaped", `{"config":{"A":"postgres:\/\/u:p\u0040ss@h"}}`, []string{"postgres://u:p@ss@h"}, false},
		{"not an object", `{"config":"x1","credential_id":"c"}`, nil, false},
		{"two configs", `{"config":{"A":"x1"},"config":{"A":"x2"}}`, []string{"x1", "x2"}, false},
		{"long", `{"config":{"A":"` + long + `"}}`, nil, false},
		{"too many", `{"config":{` + strings.Join(many, ",") + `}}`, slices.Repeat([]string{strings.Repeat("v", 8<<10)}, 8), true},
	} {
		a := mintedID(strings.NewReader(tc.answer))
		var got []string
		for _, v := range a.config {
			got = append(got, v.Reveal())
		}
		if tc.name == "long" {
			if len(got) != 1 || len(got[0]) > maxConfigValue || !strings.HasPrefix(got[0], "postgres://u:pw123456@db.example.com/d?") ||
				!secret.Holds("cred-pw123456", a.config...) || a.unchecked {
				t.Errorf("%s: kept %d strings (%d bytes), unchecked %v; want the URL's start, its password seen", tc.name, len(got),
					len(strings.Join(got, "")), a.unchecked)
			}
			continue
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || a.unchecked != tc.unchecked {
			t.Errorf("%s: kept %.40q, unchecked %v; want %.40q, %v", tc.name, got, a.unchecked, tc.want, tc.unchecked)
		}
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
	} {
		if got := mintedID(strings.NewReader(tc.answer)).id; got != tc.want {
			t.Errorf("mintedID(%.60q) = %q, want %q", tc.answer, got, tc.want)
		}
	}
}
