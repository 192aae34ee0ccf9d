package main

import (
	"strings"
	"testing"
)

// An id that names nothing to act on (a typo, another deployment's, the
// id of another kind) is refused (exit 1) by saying which command lists
// the ids it takes, where the refusal said only that it was not found.
func TestARefusedIDSaysWhichCommandListsTheIDs(t *testing.T) {
	c := newCLI(t)
	c.register(t, 1) // inst-00000
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"revocations", "retry", "inst-00000/cred-0"}, []string{"not in the dead-letter set", "'rekey revocations dead' lists"}},
		{[]string{"holds", "release", "inst-00000/cred-0", "--confirm"}, []string{"is not held", "'rekey holds list' lists"}},
		{[]string{"batches", "cancel", "inst-00000"}, []string{"batch inst-00000 not found", "'rekey batches list' lists"}},
		{[]string{"batches", "show", "bat_typo"}, []string{"batch bat_typo not found", "'rekey batches list' lists"}},
	} {
		err := c.run(t, tt.args[0], tt.args[1:]...)
		if err == nil || isUsage(err) {
			t.Errorf("rekey %s = %v, want a refusal (exit 1)", strings.Join(tt.args, " "), err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("rekey %s: %v; want it to say %q", strings.Join(tt.args, " "), err, w)
			}
		}
	}
}
