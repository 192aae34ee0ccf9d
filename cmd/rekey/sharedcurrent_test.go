package main

import (
	"context"
	"strings"
	"testing"
)

// An import (as a PUT) registering inst-2 with the config of inst-1's live
// credential, under another id, requests inst-2's rotation at once, so
// that its apps stop running on inst-1's secret within minutes; inst-1,
// registered first with its own config, is left alone. No output or log
// line quotes the shared value.
func TestARegistrationWithAnotherInstancesLiveConfigIsRotatedAtOnce(t *testing.T) {
	ctx := context.Background()
	c := newCLI(t)
	const value = "postgres://u:sh4red-s3cret-value@db/1"
	const file = `{"id":"inst-1","api_version":"v1","heroku_id":"app-1","config_vars":["MYADDON_URL"],"current_credential_id":"cred-a","current_config":{"MYADDON_URL":"` + value + `"}}
{"id":"inst-2","api_version":"v1","heroku_id":"app-2","config_vars":["MYADDON_URL"],"current_credential_id":"cred-b","current_config":{"MYADDON_URL":"` + value + `"}}
`
	if err := c.importLines(t, file); err != nil {
		t.Fatalf("import: %v\n%s", err, c.stderr)
	}
	one, err := c.st.Instance(ctx, "inst-1")
	if err != nil {
		t.Fatal(err)
	}
	if one.InFlight != "" {
		t.Errorf("inst-1, registered with its own config, has rotation %s in flight", one.InFlight)
	}
	two, err := c.st.Instance(ctx, "inst-2")
	if err != nil {
		t.Fatal(err)
	}
	if two.InFlight == "" {
		t.Fatal("inst-2, registered with inst-1's live config, has no rotation in flight")
	}
	rot, err := c.st.Rotation(ctx, two.InFlight)
	if err != nil {
		t.Fatal(err)
	}
	if rot.Reason != sharedReason {
		t.Errorf("inst-2's rotation reason %q, want %q", rot.Reason, sharedReason)
	}
	for _, out := range []string{c.stdout.String(), c.stderr.String()} {
		if strings.Contains(out, "sh4red-s3cret") {
			t.Errorf("output quotes the shared secret:\n%s", out)
		}
	}
}
