package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/printable"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// hostile is outside text as a partner's tasks payload, an issuer's answer
// or Heroku's error may carry it: a screen clear and a window title, a
// carriage return and a line break that forge a line of rekey's own, a
// bidi override and a C1 control sequence introducer.
const hostile = "ok\x1b[2J\x1b]0;pwned\x07\r\nrekey: FORGED \u202eRTL\u2066 \u009b31m"

// seedHostile stores hostile text wherever the CLI shows outside text:
// a batch's and a rotation's reason, an event's type and detail, a
// rotation's failure (its code and cause), a quarantine's reason, a
// hold's hint of who used the credential, a dead revocation's reason, the
// scheduler's pause and the name of a process announcing its keys.
func (c *cli) seedHostile(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.st.CreateBatch(ctx, "bat_hostile", hostile, 1))
	must(c.st.PutInstance(ctx, store.Registration{ID: "inst-hostile", APIVersion: store.APIv3,
		ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-0"}))
	_, err := c.st.ClaimBrief(ctx, store.RotationRequest{InstanceID: "inst-hostile", RotationID: "rot-1",
		BatchID: "bat_hostile", Reason: hostile})
	must(err)
	_, err = c.st.Fail(ctx, "inst-hostile", "rot-1", "mint:"+hostile, hostile)
	must(err)
	_, err = c.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-hostile", RotationID: "rot-2", Reason: hostile})
	must(err)
	must(c.st.SavePending(ctx, "inst-hostile", "rot-2", "cred-1",
		map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:p@db/1")}))
	prev, err := c.st.Promote(ctx, "inst-hostile", "rot-2", "cred-1", time.Hour, hostile)
	must(err)
	now := time.Now()
	must(c.st.SaveHold(ctx, store.Hold{InstanceID: prev.InstanceID, CredentialID: prev.CredentialID,
		RevokeAt: now, HeldAt: now, CapAt: now.Add(time.Hour), LastUsedAt: now, LastUsedBy: hostile,
		CheckedAt: now, NextCheckAt: now.Add(time.Minute)}, store.EventRevocationHeld, hostile))
	must(c.st.AddEvent(ctx, store.Event{InstanceID: "inst-hostile", Type: hostile, Detail: hostile}))
	_, err = c.st.Quarantine(ctx, "inst-hostile", hostile)
	must(err)
	c.pendingRotation(t, "inst-dead")
	dead, err := c.st.Promote(ctx, "inst-dead", "rot-inst-dead", "cred-1", time.Millisecond, "")
	must(err)
	_, err = c.st.SetRevocationDead(ctx, *dead, hostile)
	must(err)
	must(c.st.PauseSchedule(ctx, hostile))
	must(c.st.AnnounceKeyring(ctx, hostile, time.Minute))
}

// Every command that reports (those that take --json, README
// "Processes") shows outside text escaped in its text output, on stdout and
// stderr alike: no control character but the line breaks it writes
// itself, no bidi control, no line another party wrote. Its --json output
// keeps the text exact. A reporting command added later fails this test
// until it is listed here.
func TestOutsideTextIsEscapedInTextOutput(t *testing.T) {
	c := newCLI(t)
	c.seedHostile(t)
	runs := map[string][]string{ // a command's path: its arguments
		"instances show":       {"inst-hostile"},
		"instances list":       nil,
		"instances import":     {"-"},
		"batches show":         {"bat_hostile"},
		"batches list":         nil,
		"batches failed":       {"bat_hostile"},
		"holds list":           nil,
		"revocations dead":     nil,
		"revocations expedite": {"inst-hostile", "--confirm"},
		"scheduler status":     nil,
		"breaker status":       nil,
		"keys status":          nil,
		"rotate":               {"--plan", "inst-hostile"},
	}
	// shows names the commands that show the hostile text itself.
	shows := []string{"instances show", "batches show", "batches list", "batches failed", "holds list", "revocations dead", "scheduler status", "keys status"}
	for _, path := range commandPaths(t) {
		name := strings.Join(path, " ")
		if cmd, _, err := newRootCmd(c.env()).Find(path); err == nil && cmd.Flags().Lookup("json") != nil {
			if _, ok := runs[name]; !ok {
				t.Errorf("rekey %s reports (--json) but is not run here: add it to runs", name)
			}
		}
	}
	for name, args := range runs {
		t.Run(name, func(t *testing.T) {
			argv := append(strings.Fields(name), args...)
			if err := c.run(t, argv[0], argv[1:]...); err != nil {
				report(c.stderr, err)
			}
			out := c.stdout.String() + c.stderr.String()
			checkTerminalSafe(t, out)
			if slices.Contains(shows, name) && !strings.Contains(out, `ok\x1b[2J\x1b]0;pwned\a\r\nrekey: FORGED \u202eRTL\u2066 \u009b31m`) {
				t.Errorf("rekey %s does not show the outside text escaped:\n%q", name, out)
			}
		})
	}
	// An error that quotes outside text is printed as safely.
	var stderr bytes.Buffer
	report(&stderr, fmt.Errorf("issuer said: %s", hostile))
	checkTerminalSafe(t, stderr.String())
	// --json keeps the text exact, and is as safe on a terminal: JSON's
	// \u escapes for what Go's encoder leaves raw (C1 controls, bidi
	// overrides), which a script decodes back to the same text.
	for _, argv := range [][]string{{"instances", "show", "inst-hostile", "--json"}, {"batches", "show", "bat_hostile", "--json"},
		{"batches", "list", "--json"}, {"holds", "list", "--json"}, {"revocations", "dead", "--json"}} {
		if err := c.run(t, argv[0], argv[1:]...); err != nil {
			t.Fatalf("rekey %s: %v", strings.Join(argv, " "), err)
		}
		checkTerminalSafe(t, c.stdout.String())
		var v any
		if err := json.Unmarshal(c.stdout.Bytes(), &v); err != nil {
			t.Fatalf("rekey %s: %v", strings.Join(argv, " "), err)
		}
		if !holdsString(v, hostile) {
			t.Errorf("rekey %s does not keep the outside text exact:\n%q", strings.Join(argv, " "), c.stdout)
		}
	}
}

// checkTerminalSafe fails when out holds what a terminal would act on
// (printable.Unsafe, a line break aside) or a line that starts with the
// hostile text's forged one.
func checkTerminalSafe(t *testing.T, out string) {
	t.Helper()
	if i := strings.IndexFunc(out, func(r rune) bool { return r != '\n' && printable.Unsafe(r) }); i >= 0 {
		t.Errorf("output holds %q at byte %d:\n%q", []rune(out[i:])[0], i, out)
	}
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "rekey: FORGED") {
			t.Errorf("output holds a forged line:\n%q", out)
		}
	}
	if !bytes.Equal([]byte(out), []byte(strings.ToValidUTF8(out, "?"))) {
		t.Errorf("output is not UTF-8:\n%q", out)
	}
}

// holdsString reports whether s is a string anywhere in the decoded JSON v.
func holdsString(v any, s string) bool {
	switch x := v.(type) {
	case string:
		return x == s
	case []any:
		return slices.ContainsFunc(x, func(e any) bool { return holdsString(e, s) })
	case map[string]any:
		for _, e := range x {
			if holdsString(e, s) {
				return true
			}
		}
	}
	return false
}

// invisible is outside text whose characters show as nothing: a zero-width
// space, non-joiner and joiner, a word joiner and an invisible operator, a
// byte order mark, a soft hyphen, a Hangul filler and, in tag characters,
// a copy of "rm" that no terminal draws.
const invisible = "inc\u200bident\u200c\u200d 4\u20602\u2062 \ufeff\u00ad\u3164\U000E0072\U000E006D"

// Outside text that shows as nothing on a terminal is as escaped as text a
// terminal acts on: two reasons (or issuer messages) that look the same on
// screen differed, and tag characters carried text no one saw. Accents and
// other scripts stay as they are; --json keeps the text exact.
func TestInvisibleOutsideTextIsEscaped(t *testing.T) {
	c := newCLI(t)
	reason := "caf\u00e9 鍵 " + invisible
	if err := c.st.CreateBatch(context.Background(), "bat_invisible", reason, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.run(t, "batches", "show", "bat_invisible"); err != nil {
		t.Fatal(err)
	}
	want := `caf` + "\u00e9" + ` 鍵 inc\u200bident\u200c\u200d 4\u20602\u2062 \ufeff\u00ad\u3164\U000e0072\U000e006d`
	if out := c.stdout.String(); !strings.Contains(out, want) {
		t.Errorf("rekey batches show does not show the invisible characters escaped, want %q in:\n%q", want, out)
	}
	if err := c.run(t, "batches", "show", "bat_invisible", "--json"); err != nil {
		t.Fatal(err)
	}
	out := c.stdout.String()
	if i := strings.IndexFunc(out, printable.Invisible); i >= 0 {
		t.Errorf("rekey batches show --json holds %q raw:\n%q", []rune(out[i:])[0], out)
	}
	var v any
	if err := json.Unmarshal(c.stdout.Bytes(), &v); err != nil || !holdsString(v, reason) {
		t.Errorf("rekey batches show --json does not keep the reason exact (%v):\n%q", err, out)
	}
}
