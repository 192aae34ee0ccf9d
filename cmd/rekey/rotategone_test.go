package main

import (
	"context"
	"testing"

	"github.com/rekeyhq/rekey/internal/redistest"
)

// `rekey rotate ID` whose only instance a DELETE deprovisions between the
// request's check and its claim rotated nothing: it fails (exit 1), as
// POST /api/v1/rotations answers 422 and as the same command run a moment
// later does ("deprovisioned"), rather than exit 0 as if the rotation were
// requested, which a script would take for done.
func TestRotateOfAnInstanceDeprovisionedBeforeItsClaimFails(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	ids := c.register(t, 1)
	env := c.env()
	a, err := openProducer(ctx, env, "rotate")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.rdb.AddHook(&redistest.BeforeScriptNaming{ID: ids[0], Run: func() {
		if err := c.st.Deprovision(ctx, ids[0]); err != nil {
			t.Errorf("deprovision: %v", err)
		}
	}})
	err = rotate(ctx, env, a, rotateFlags{ids: ids}, ids, nil)
	if err == nil {
		t.Fatalf("rotate of %s, deprovisioned before its claim, succeeded; stdout %q", ids[0], c.stdout.String())
	}
	if keys := c.batchKeys(t); len(keys) != 0 {
		t.Errorf("a batch of nothing is kept: %q", keys)
	}
}
