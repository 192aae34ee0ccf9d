package main

import (
	"bytes"
	"context"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

// interruptAtQuestion runs `rekey args...` on a terminal whose operator
// never answers, cancels the context (Ctrl-C) once the [y/N] question is
// on stderr, and returns the command's error and what it wrote. It fails
// the test when the question is not on stderr or when the command does
// not return at once.
func interruptAtQuestion(t *testing.T, vars map[string]string, args ...string) (err error, stdout, stderr string) {
	t.Helper()
	pr, pw := io.Pipe() // a terminal nobody types at
	t.Cleanup(func() { _ = pw.Close() })
	var out, errOut syncBuffer
	env := &environ{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		stdin: pr, stdout: &out, stderr: &errOut, terminal: true}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, env, args) }()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(errOut.String(), "[y/N]"); {
		if time.Now().After(deadline) {
			t.Fatalf("rekey %s: no [y/N] question on stderr\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), &out, &errOut)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("rekey %s: still waiting for an answer 5s after Ctrl-C", strings.Join(args, " "))
	}
	return err, out.String(), errOut.String()
}

// wantInterrupted checks that err exits 130 with the message, and that the
// question left stdout clean.
func wantInterrupted(t *testing.T, err error, stdout, msg string) {
	t.Helper()
	var printed bytes.Buffer
	if code := report(&printed, err); code != 130 || printed.String() != "rekey: "+msg+"\n" {
		t.Errorf("err = %v: exit %d, printed %q; want exit 130 and %q", err, code, printed.String(), "rekey: "+msg)
	}
	if stdout != "" {
		t.Errorf("the question went to stdout: %q", stdout)
	}
}

// TestCtrlCAtRotateQuestion: Ctrl-C at rotate --all's question ends the
// command at once, enqueues nothing and exits 130.
func TestCtrlCAtRotateQuestion(t *testing.T) {
	c := newCLI(t)
	c.register(t, 7)
	before := c.snapshot(t)
	err, stdout, _ := interruptAtQuestion(t, c.vars(), "rotate", "--all")
	wantInterrupted(t, err, stdout, "interrupted: nothing was enqueued")
	if !maps.Equal(before, c.snapshot(t)) {
		t.Error("an interrupted rotation changed Redis")
	}
}

// TestCtrlCAtHoldsReleaseQuestion: the question goes to stderr, and
// Ctrl-C at it releases nothing and exits 130.
func TestCtrlCAtHoldsReleaseQuestion(t *testing.T) {
	c := newCLI(t)
	held := c.heldCredential(t)
	before := c.snapshot(t)
	err, stdout, _ := interruptAtQuestion(t, c.vars(), "holds", "release", held)
	wantInterrupted(t, err, stdout, "interrupted: nothing was done")
	if !maps.Equal(before, c.snapshot(t)) {
		t.Error("an interrupted release changed Redis")
	}
}

// TestCtrlCAtBreakerResumeQuestion: the breaker's reason and the question
// go to stderr, and Ctrl-C at it leaves the breaker open and exits 130.
func TestCtrlCAtBreakerResumeQuestion(t *testing.T) {
	g := newSchedulerRig(t)
	g.openBreaker(t)
	err, stdout, stderr := interruptAtQuestion(t, g.vars, "breaker", "resume")
	wantInterrupted(t, err, stdout, "interrupted: nothing was done")
	if !strings.Contains(stderr, "breaker: OPEN since ") {
		t.Errorf("the question does not say why the breaker opened:\n%s", stderr)
	}
	if st, _ := g.st.BreakerState(context.Background()); !st.Open() {
		t.Error("an interrupted resume closed the breaker")
	}
}

// TestAnsweredQuestionsLeaveStdoutClean: answered on a terminal, holds
// release and breaker resume print their questions on stderr and only the
// outcome on stdout.
func TestAnsweredQuestionsLeaveStdoutClean(t *testing.T) {
	g := newSchedulerRig(t)
	g.openBreaker(t)
	for _, tt := range []struct {
		args  []string
		out   string
		asked bool
	}{
		{[]string{"breaker", "resume"}, "breaker resumed: the bulk queue runs and the scheduler enqueues again\n", true},
		// Not held: an error before any question, and nothing on stdout.
		{[]string{"holds", "release", "inst-00000/cred-0"}, "", false},
	} {
		var out, errOut syncBuffer
		env := &environ{lookup: func(k string) (string, bool) { v, ok := g.vars[k]; return v, ok },
			stdin: strings.NewReader("y\n"), stdout: &out, stderr: &errOut, terminal: true}
		err := run(context.Background(), env, tt.args)
		if out.String() != tt.out || strings.Contains(errOut.String(), "[y/N]") != tt.asked {
			t.Errorf("rekey %s (%v): stdout %q, want %q; asked %v; stderr:\n%s", strings.Join(tt.args, " "), err,
				out.String(), tt.out, tt.asked, errOut.String())
		}
		if !tt.asked && (err == nil || !strings.Contains(err.Error(), "is not held")) {
			t.Errorf("rekey %s: %v, want it to say the credential is not held", strings.Join(tt.args, " "), err)
		}
	}
}

// heldCredential registers an instance, rotates it and holds the
// revocation of its previous credential, and returns the hold's
// INSTANCE_ID/CREDENTIAL_ID.
func (c *cli) heldCredential(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	ids := c.register(t, 1)
	if _, err := c.st.Claim(ctx, store.RotationRequest{InstanceID: ids[0], RotationID: "rot-" + ids[0]}); err != nil {
		t.Fatal(err)
	}
	c.complete(t, ids, nil)
	prev, err := c.st.Previous(ctx, ids[0])
	if err != nil || len(prev) != 1 {
		t.Fatalf("previous credentials %v, %v", prev, err)
	}
	now := time.Now()
	if err := c.st.SaveHold(ctx, store.Hold{InstanceID: ids[0], CredentialID: prev[0].CredentialID,
		RevokeAt: now, HeldAt: now, CapAt: now.Add(time.Hour), LastUsedAt: now, LastUsedBy: "web.1",
		CheckedAt: now, NextCheckAt: now.Add(time.Minute)}, store.EventRevocationHeld, "in use"); err != nil {
		t.Fatal(err)
	}
	return ids[0] + "/" + prev[0].CredentialID
}

// TestHoldsReleaseOffTerminalSaysNotHeldFirst: off a terminal without
// --confirm, as on one, a credential that is not held is said so (exit 1)
// before --confirm is asked for, as the README says ("once it has found
// the hold"); a held one still needs --confirm (exit 2) and stays held.
func TestHoldsReleaseOffTerminalSaysNotHeldFirst(t *testing.T) {
	c := newCLI(t)
	held := c.heldCredential(t)
	inst, _, _ := strings.Cut(held, "/")
	err := c.run(t, "holds", "release", inst+"/cred-not-held")
	if err == nil || isUsage(err) || !strings.Contains(err.Error(), "is not held") {
		t.Errorf("holds release of a credential not held, off a terminal: %v, want exit 1 saying it is not held", err)
	}
	err = c.run(t, "holds", "release", held)
	if !isUsage(err) || !strings.Contains(err.Error(), "--confirm") {
		t.Errorf("holds release of a held credential off a terminal without --confirm: %v, want a usage error naming --confirm", err)
	}
	if _, still, err := c.st.HoldOf(context.Background(), inst, strings.TrimPrefix(held, inst+"/")); err != nil || !still {
		t.Errorf("hold after an unconfirmed release: held %v, %v", still, err)
	}
}
