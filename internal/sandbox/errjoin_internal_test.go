package sandbox

import (
	"errors"
	"testing"
)

// A refusal every sample instance meets reads once, with their count;
// distinct failures each read once, in order.
func TestErrJoinSaysEachFailureOnce(t *testing.T) {
	refused := errors.New("check REKEY_ENCRYPTION_KEYS: refused")
	for _, tc := range []struct {
		errs []error
		want string
	}{
		{[]error{nil, nil}, ""},
		{[]error{refused, nil, refused, refused}, "check REKEY_ENCRYPTION_KEYS: refused (3 instances)"},
		{[]error{errors.New("a"), refused, errors.New("a"), nil}, "a (2 instances); check REKEY_ENCRYPTION_KEYS: refused"},
	} {
		got := ""
		if err := errJoin(tc.errs); err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("errJoin(%v) = %q, want %q", tc.errs, got, tc.want)
		}
	}
}
