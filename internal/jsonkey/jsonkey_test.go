package jsonkey_test

import (
	"testing"

	"github.com/rekeyhq/rekey/internal/jsonkey"
)

func TestOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw  string
		want bool
	}{
		{`{"A":"1","B":"2"}`, true},
		{`{"A":"1","A":"2"}`, false},
		{`{"A":{"B":1,"B":2},"C":[{"D":1}]}`, true}, // only the top object's keys
		{`{"A":"1","a":"2"}`, true},                 // keys differ in case: two names
		{`{"A":"1","B":{"x":1},"A":"3"}`, false},
		{`[1,2]`, true}, // no object: left to the decoder
		{`{"A":"1",`, true},
	} {
		if got := jsonkey.Once([]byte(tc.raw)); got != tc.want {
			t.Errorf("Once(%s) = %v, want %v", tc.raw, got, tc.want)
		}
	}
}
