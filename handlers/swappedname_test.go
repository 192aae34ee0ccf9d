package handlers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// TestAnUpperCaseSecretGivenAsANameIsNotQuoted: an issuer that swapped
// names and values answers {"<secret>": "MYADDON_URL"}. An upper-case
// secret (a base32 or TOTP seed, an AWS key id, letters only) has a config
// var name's shape, yet the rotation's error, the instance's history and
// the task's error report it by its length only (I5); a name that reads as
// a config var name is still quoted.
func TestAnUpperCaseSecretGivenAsANameIsNotQuoted(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name   string
		quoted bool
	}{
		{"JBSWY3DPEHPK3PXPQK7WZ2M4", false},
		{"AKIAIOSFODNN7EXAMPLE", false},
		{"QWERTYUIOPASDFGHJKLZXCVBNM", false},
		{"MYADDON_POSTGRESQL_EXTRA_URL", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newRig(t)
			g.mintAnswers(t, fmt.Sprintf(`{"credential_id":"cred_swapped_1","config":{%q:%q}}`, tc.name, issuer.DefaultConfigVar), true)
			ctx := context.Background()
			rotID := fmt.Sprintf("rot-swap-%d", i)
			err := g.run(rotateTask(t, "inst-1", rotID))
			if err == nil {
				t.Fatal("a rotation whose config names no registered var succeeded")
			}
			rot, _ := g.st.Rotation(ctx, rotID)
			events, _ := g.st.Events(ctx, "inst-1", 50)
			texts := map[string]string{"task error": err.Error(), "rotation error": rot.Error}
			for _, e := range events {
				texts["history event "+e.Type] += e.Detail
			}
			for where, text := range texts {
				got := strings.Contains(text, tc.name)
				if !tc.quoted && got {
					t.Errorf("%s quotes the secret given as a name: %s", where, text)
				}
				if tc.quoted && !got && !strings.HasPrefix(where, "history") {
					t.Errorf("%s does not name the extra var: %s", where, text)
				}
			}
		})
	}
}
