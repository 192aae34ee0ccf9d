package issuer

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
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
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, answer string) {
		var r struct {
			CredentialID string `json:"credential_id"`
		}
		got := mintedID(strings.NewReader(answer))
		if json.Unmarshal([]byte(answer), &r) != nil || len(r.CredentialID) > 128 {
			return
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
// sends, its id last: what it allocates does not grow with the answer.
func BenchmarkMintedID(b *testing.B) {
	pad := func(unit string) string { return strings.Repeat(unit, (maxScanBytes-64)/len(unit)) }
	for _, c := range []struct{ name, answer string }{
		{"one long value", `{"config":{"MYADDON_URL":"` + pad("p") + `"},"credential_id":"cred_1"}`},
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
		if got := mintedID(strings.NewReader(tc.answer)); got != tc.want {
			t.Errorf("mintedID(%.60q) = %q, want %q", tc.answer, got, tc.want)
		}
	}
}
