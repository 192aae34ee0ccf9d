package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestShorterGraceJoiningAWaveSaysTheWaveKeepsItsOwn: during an incident,
// a second `rotate --all --grace 10m` while the first, asked with --grace
// 2h, is still in flight joins its rotations, which keep their 2h (a grace
// is never shortened). The command must not say only "grace: 10m": the
// operator would take the leaked credentials for revoked in 10 minutes.
func TestShorterGraceJoiningAWaveSaysTheWaveKeepsItsOwn(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 8)
	if err := c.run(t, "rotate", "--all", "--confirm", "--grace", "2h"); err != nil {
		t.Fatalf("first wave: %v\n%s", err, c.stderr)
	}
	if err := c.run(t, "rotate", "--all", "--confirm", "--grace", "10m"); err != nil {
		t.Fatalf("second wave: %v\n%s", err, c.stderr)
	}
	if !strings.Contains(c.stdout.String(), "0 enqueued on bulk, 8 joined a rotation in flight") {
		t.Fatalf("stdout: %s", c.stdout)
	}
	inst, err := c.st.Instance(context.Background(), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	rot, err := c.st.Rotation(context.Background(), inst.InFlight)
	if err != nil {
		t.Fatal(err)
	}
	if rot.Grace != 2*time.Hour {
		t.Fatalf("joined rotation's grace %s, want the first wave's 2h", rot.Grace)
	}
	out := c.stdout.String() + c.stderr.String()
	for _, want := range []string{"the 8 rotations in flight this request joined keep their own grace where it is longer than 10m",
		"rekey revocations expedite"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
