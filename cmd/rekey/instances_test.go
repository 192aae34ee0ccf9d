package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// importLines runs `rekey instances import -` on lines, with args.
func (c *cli) importLines(t *testing.T, lines string, args ...string) error {
	t.Helper()
	c.stdin = strings.NewReader(lines)
	return c.run(t, "instances", append([]string{"import"}, append(args, "-")...)...)
}

// The same import run again after an instance rotated and was
// deprovisioned leaves the instance deprovisioned and its superseded
// credential waiting for revocation; --include-deprovisioned registers it
// again.
func TestImportAgainSkipsDeprovisionedInstances(t *testing.T) {
	ctx := context.Background()
	c := newCLI(t)
	const file = `{"id":"inst-1","api_version":"v1","heroku_id":"app-1","config_vars":["MYADDON_URL"],"current_credential_id":"cred-0"}
{"id":"inst-2","api_version":"v1","heroku_id":"app-2","config_vars":["MYADDON_URL"],"current_credential_id":"cred-0"}
`
	if err := c.importLines(t, file); err != nil {
		t.Fatalf("first import: %v\n%s", err, c.stderr)
	}
	// inst-1 rotates (cred-0 becomes previous, due for revocation), then
	// its partner deletes it.
	if _, err := c.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-1"}); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:n3w@db/1")}
	if err := c.st.SavePending(ctx, "inst-1", "rot-1", "cred-1", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := c.st.Promote(ctx, "inst-1", "rot-1", "cred-1", time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	if err := c.st.Deprovision(ctx, "inst-1"); err != nil {
		t.Fatal(err)
	}

	if err := c.importLines(t, file); err != nil {
		t.Fatalf("second import: %v\n%s", err, c.stderr)
	}
	for _, want := range []string{"1 instance registered, 0 lines refused", "1 deprovisioned instance skipped (--include-deprovisioned"} {
		if !strings.Contains(c.stdout.String(), want) {
			t.Errorf("second import's output lacks %q:\n%s", want, c.stdout)
		}
	}
	in, err := c.st.Instance(ctx, "inst-1")
	if err != nil || !in.Deprovisioned() {
		t.Fatalf("inst-1 after the second import: %+v, %v; want still deprovisioned", in, err)
	}
	if cr, _ := c.st.Credential(ctx, "inst-1", "cred-0"); cr.State != store.CredentialPrevious {
		t.Fatalf("cred-0 is %s after the second import, want previous", cr.State)
	}

	// Asked to include it, the import registers it again, as a PUT
	// would (Heroku's retried provisioning needs that).
	if err := c.importLines(t, strings.Split(file, "\n")[0]+"\n", "--include-deprovisioned"); err != nil {
		t.Fatalf("import --include-deprovisioned: %v\n%s", err, c.stderr)
	}
	if in, _ := c.st.Instance(ctx, "inst-1"); in.Deprovisioned() {
		t.Fatal("--include-deprovisioned left inst-1 deprovisioned")
	}
}

// The example in `rekey instances import --help` registers its instance.
func TestImportHelpExampleWorks(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	cmd := newInstancesImportCmd(c.env())
	var line string
	for l := range strings.Lines(cmd.Example) {
		if strings.Contains(l, "echo '") {
			line = l[strings.Index(l, "'")+1 : strings.LastIndex(l, "'")]
		}
	}
	if line == "" {
		t.Fatalf("no echo line in the example:\n%s", cmd.Example)
	}
	if err := c.importLines(t, line+"\n"); err != nil {
		t.Fatalf("the help's example: %v\n%s", err, c.stderr)
	}
	if in, err := c.st.Instance(context.Background(), "inst-1"); err != nil || in.ID != "inst-1" {
		t.Errorf("inst-1 after the example: %+v, %v", in, err)
	}
}

// TestEventDetailShowsRevokeTime: instances show prints revoke_scheduled's
// revoke time, which the store keeps in Unix milliseconds, as a time.
func TestEventDetailShowsRevokeTime(t *testing.T) {
	at := time.Date(2026, 12, 2, 6, 53, 23, 0, time.UTC)
	e := store.Event{Type: store.EventRevokeScheduled, Detail: strconv.FormatInt(at.UnixMilli(), 10)}
	if got, want := eventDetail(e), "revoke at 2026-12-02T06:53:23Z"; got != want {
		t.Errorf("revoke_scheduled shows %q, want %q", got, want)
	}
	if got := eventDetail(store.Event{Type: store.EventRevoked, Detail: "previous"}); got != "previous" {
		t.Errorf("revoked shows %q, want its detail as it is", got)
	}
}

// TestEventLinesAlignWithoutARotation: an event of no rotation
// (revoke_expedited) starts its detail in the column where the others start
// their rotation id.
func TestEventLinesAlignWithoutARotation(t *testing.T) {
	at := time.Date(2026, 12, 2, 6, 53, 23, 0, time.UTC)
	promoted := eventLine(store.Event{At: at, Type: store.EventPromoted, RotationID: "rot_1", Detail: "cred-1"})
	expedited := eventLine(store.Event{At: at, Type: store.EventRevokeExpedited, Detail: "cli"})
	if col, want := strings.Index(expedited, "cli"), strings.Index(promoted, "rot_1"); col != want {
		t.Errorf("the detail of an event of no rotation starts at column %d, want %d:\n%s\n%s", col, want, promoted, expedited)
	}
	if got := eventLine(store.Event{At: at, Type: store.EventPromoted}); strings.HasSuffix(got, " ") {
		t.Errorf("an event of neither rotation nor detail ends in spaces: %q", got)
	}
}

// TestShowPreviousSaysRevokeDue: instances show prints a previous
// credential that still waits for revocation as "revoke due at", never as
// "revoked at" a time that has not come.
func TestShowPreviousSaysRevokeDue(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 1)
	if err := c.run(t, "rotate", ids[0]); err != nil {
		t.Fatalf("rotate: %v\n%s", err, c.stderr)
	}
	c.complete(t, ids, nil) // cred-0 is revoked an hour from now
	prev, err := c.st.Previous(context.Background(), ids[0])
	if err != nil || len(prev) != 1 {
		t.Fatalf("previous = %v (%v), want cred-0 waiting", prev, err)
	}
	if err := c.run(t, "instances", "show", ids[0]); err != nil {
		t.Fatalf("instances show: %v\n%s", err, c.stderr)
	}
	want := "  cred-0 revoke due at " + timeOrNone(prev[0].RevokeAt) + "\n"
	if out := c.stdout.String(); !strings.Contains(out, want) || strings.Contains(out, "revoked at") {
		t.Errorf("stdout lacks %q or says revoked:\n%s", want, out)
	}
}

// TestShowListsUnconfirmedCredentials: a credential a failed rotation kept
// because its push went unanswered is valid and may be in the app's
// config; instances show lists it, in text and in --json, so that an
// operator can see every credential rekey leaves valid.
func TestShowListsUnconfirmedCredentials(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	ids := c.register(t, 1)
	if err := c.run(t, "rotate", ids[0]); err != nil {
		t.Fatalf("rotate: %v\n%s", err, c.stderr)
	}
	in, err := c.st.Instance(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	cred := "cred-" + in.InFlight
	cfg := map[string]secret.String{"MYADDON_URL": secret.New("postgres://new-" + cred)}
	if err := c.st.SavePending(ctx, ids[0], in.InFlight, cred, cfg); err != nil {
		t.Fatal(err)
	}
	if err := c.st.MarkPushAttempt(ctx, in.InFlight, in.Target()); err != nil {
		t.Fatal(err)
	}
	res, err := c.st.FailRotation(ctx, ids[0], in.InFlight, store.Failure{Code: "push:timeout", Cause: "push: no answer"})
	if err != nil || res.Unconfirmed != cred {
		t.Fatalf("FailRotation = %+v, %v; want %s kept unconfirmed", res, err, cred)
	}

	if err := c.run(t, "instances", "show", ids[0]); err != nil {
		t.Fatalf("instances show: %v\n%s", err, c.stderr)
	}
	out := c.stdout.String()
	for _, want := range []string{"kept unconfirmed:     1 ", "  " + cred + " since ", ", rotation " + in.InFlight + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("instances show lacks %q:\n%s", want, out)
		}
	}
	c.stdout.Reset()
	if err := c.run(t, "instances", "show", ids[0], "--json"); err != nil {
		t.Fatalf("instances show --json: %v\n%s", err, c.stderr)
	}
	var v struct {
		Unconfirmed []store.UnconfirmedCredential `json:"unconfirmed"`
	}
	if err := json.Unmarshal(c.stdout.Bytes(), &v); err != nil || len(v.Unconfirmed) != 1 ||
		v.Unconfirmed[0].CredentialID != cred || v.Unconfirmed[0].RotationID != in.InFlight {
		t.Errorf("--json unconfirmed = %+v (%v), want %s of %s:\n%s", v.Unconfirmed, err, cred, in.InFlight, c.stdout.String())
	}
}

// TestImportSkipsAByteOrderMark: a file a Windows editor saved as UTF-8
// starts with a byte order mark, which the import skips rather than
// refusing the first line as not JSON.
func TestImportSkipsAByteOrderMark(t *testing.T) {
	c := newCLI(t)
	line := `{"id":"inst-1","api_version":"v1","heroku_id":"app-1","config_vars":["MYADDON_URL"],"current_credential_id":"cred-0"}`
	if err := c.importLines(t, "\ufeff"+line+"\r\n"); err != nil {
		t.Fatalf("import: %v\n%s", err, c.stderr)
	}
	if in, err := c.st.Instance(context.Background(), "inst-1"); err != nil || in.ID != "inst-1" {
		t.Errorf("inst-1 after the import: %+v, %v", in, err)
	}
}

// TestShowRefusesInstanceSlashCredential: an INSTANCE/CREDENTIAL pair
// pasted from other output is a usage error that names the command to
// show the instance, not "not registered".
func TestShowRefusesInstanceSlashCredential(t *testing.T) {
	c := newCLI(t)
	c.register(t, 1)
	err := c.run(t, "instances", "show", "inst-00000/cred-0")
	want := `"inst-00000/cred-0" is INSTANCE/CREDENTIAL, but show takes an instance id: rekey instances show inst-00000`
	if !isUsage(err) || err.Error() != want {
		t.Errorf("err = %v, want a usage error %q", err, want)
	}
	if err := c.run(t, "instances", "show", "inst-00000"); err != nil {
		t.Errorf("instances show inst-00000: %v", err)
	}
}

// instances import --json reports what a provisioning script needs without
// reading stderr: how many were registered and skipped, and each refused
// line's number, instance id and reason. It still exits 1 when a line was
// refused, and registers the others.
func TestImportJSONListsRefusedLines(t *testing.T) {
	c := newCLI(t)
	good := `{"id":"inst-1","api_version":"v1","heroku_id":"app-1","config_vars":["MYADDON_URL"],"current_credential_id":"cred-0"}`
	lines := strings.Join([]string{
		"# fleet export",
		good,
		`{"id":"inst-2","api_version":"v1"`, // cut short
		`{"id":"inst-3","api_version":"v1","heroku_id":"app-3","config_vars":[],"current_credential_id":"cred-0"}`,
		// Two instances on one line: neither is registered, rather than
		// the first alone with the second silently dropped.
		`{"id":"inst-4","api_version":"v1","heroku_id":"app-4","config_vars":["MYADDON_URL"],"current_credential_id":"cred-0"}` +
			` {"id":"inst-5","api_version":"v1","heroku_id":"app-5","config_vars":["MYADDON_URL"],"current_credential_id":"cred-0"}`,
		`{"id":"inst-6","api_version":"v1","heroku_id":"app-6","config_vars":["MYADDON_URL"],"current_credential_id":"cred-0"}]` +
			`{"id":"inst-7","api_version":"v1","heroku_id":"app-7","config_vars":["MYADDON_URL"],"current_credential_id":"cred-0"}`,
	}, "\n")
	err := c.importLines(t, lines, "--json")
	if err == nil || !strings.Contains(err.Error(), "4 lines refused") {
		t.Fatalf("import = %v, want 4 lines refused", err)
	}
	var out importOutput
	if err := json.Unmarshal([]byte(c.stdout.String()), &out); err != nil {
		t.Fatalf("--json output does not parse (%v): %s", err, c.stdout)
	}
	lineNumbers := []int{}
	for _, r := range out.Refused {
		lineNumbers = append(lineNumbers, r.Line)
		if r.Reason == "" {
			t.Errorf("refused line %d without a reason", r.Line)
		}
	}
	if out.Registered != 1 || !reflect.DeepEqual(lineNumbers, []int{3, 4, 5, 6}) || out.Refused[1].InstanceID != "inst-3" ||
		!strings.Contains(out.Refused[2].Reason, "one instance per line") || !strings.Contains(out.Refused[3].Reason, "one instance per line") {
		t.Errorf("--json = %+v; want 1 registered, lines 3 to 6 refused, the second naming inst-3, the last two saying one instance per line", out)
	}
	for _, id := range []string{"inst-4", "inst-6"} {
		if _, err := c.st.Instance(context.Background(), id); err == nil {
			t.Errorf("%s was registered from a line holding two instances", id)
		}
	}
	if !strings.Contains(c.stderr.String(), "rekey: line 4 (inst-3): ") {
		t.Errorf("stderr does not report the refused lines:\n%s", c.stderr)
	}
	if _, err := c.st.Instance(context.Background(), "inst-1"); err != nil {
		t.Errorf("the good line was not registered: %v", err)
	}
}

// An import run with REKEY_ENCRYPTION_KEYS other than the processes'
// (whose fingerprint key it cannot open) is refused before any line is
// read, saying to use the processes' value: the OAuth tokens it would seal
// are tokens no worker could read.
func TestImportWithAnotherEncryptionKeyIsRefused(t *testing.T) {
	c := newCLI(t)
	fleetKey, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.New(c.r.Client, fleetKey).CheckFingerprintKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	err = c.importLines(t, `{"id":"inst-1","api_version":"v3","config_vars":["MYADDON_URL"],`+
		`"oauth":{"access_token":"at-1","refresh_token":"rt-1","expires_at":"2030-01-01T00:00:00Z"}}`+"\n")
	if err == nil || isUsage(err) || !strings.Contains(err.Error(), "heroku config:get REKEY_ENCRYPTION_KEYS") ||
		!strings.Contains(err.Error(), "nothing was imported") {
		t.Errorf("import under another key: %v, want a refusal naming the processes' REKEY_ENCRYPTION_KEYS", err)
	}
	if _, err := c.st.Instance(context.Background(), "inst-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("inst-1 after the refused import: %v, want not registered", err)
	}
}

// Before any worker has made the fingerprint key (a fleet's first
// migration), an import run with other REKEY_ENCRYPTION_KEYS than the
// fleet's is still refused: by the OAuth tokens already stored, which none
// of its keys opens, or by a running process that does not hold the key it
// would seal under. With nothing stored and nothing running its keys are
// the fleet's: it makes the fingerprint key, so that a worker started on
// other keys refuses to take tasks instead of failing on every token.
func TestImportBeforeTheFingerprintKeyChecksWhatTheFleetHolds(t *testing.T) {
	ctx := context.Background()
	line := func(id string) string {
		return `{"id":"` + id + `","api_version":"v3","config_vars":["MYADDON_URL"],` +
			`"oauth":{"access_token":"at-1","refresh_token":"rt-1","expires_at":"2030-01-01T00:00:00Z"}}` + "\n"
	}
	// importOn runs the import of inst-1 with REKEY_ENCRYPTION_KEYS other
	// than the fleet's (c.st's).
	importOn := func(c *cli) error {
		vars := c.vars()
		vars["REKEY_ENCRYPTION_KEYS"] = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, seal.KeySize))
		env := c.env()
		env.lookup = func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
		env.stdin = strings.NewReader(line("inst-1"))
		return runCommand(ctx, env, "instances", "import", "-")
	}
	for _, tc := range []struct {
		name  string
		fleet func(*testing.T, *cli)
		why   string
	}{
		{"tokens stored", func(t *testing.T, c *cli) {
			// Stored by a release that made no fingerprint key at
			// registration, or after an operator deleted it.
			if err := c.importLines(t, line("inst-0")); err != nil {
				t.Fatal(err)
			}
			c.r.Client.Del(ctx, "rekey:fingerprint_key")
		}, "no stored sealed value opens with its keys (1 tried)"},
		{"a process running", func(t *testing.T, c *cli) {
			if err := c.st.AnnounceKeyring(ctx, "worker.1", time.Minute); err != nil {
				t.Fatal(err)
			}
		}, "worker.1 does not hold key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCLI(t)
			tc.fleet(t, c)
			err := importOn(c)
			if err == nil || isUsage(err) || !strings.Contains(err.Error(), tc.why) ||
				!strings.Contains(err.Error(), "nothing was imported") {
				t.Errorf("import under another key: %v, want a refusal saying %q", err, tc.why)
			}
			if _, err := c.st.Instance(ctx, "inst-1"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("inst-1 after the refused import: %v, want not registered", err)
			}
			if n := c.r.Client.Exists(ctx, "rekey:fingerprint_key").Val(); n != 0 {
				t.Error("the refused import made the fingerprint key")
			}
		})
	}
	t.Run("nothing stored", func(t *testing.T) {
		c := newCLI(t)
		if err := importOn(c); err != nil {
			t.Fatalf("import into an empty Redis: %v", err)
		}
		if err := c.st.CheckFingerprintKey(ctx); !errors.Is(err, store.ErrFingerprintKey) {
			t.Errorf("a worker on other keys after the import: %v, want ErrFingerprintKey", err)
		}
	})
}

// TestImportInterruptedSaysWhatWasDone: Ctrl-C during an import ends it
// naming how many instances were registered before the line it stopped
// at, calls no line refused, and with --json still prints the summary of
// what was done.
func TestImportInterruptedSaysWhatWasDone(t *testing.T) {
	c := newCLI(t)
	var lines []string
	for i := range 6 {
		lines = append(lines, fmt.Sprintf(`{"id":"inst-%d","api_version":"v1","heroku_id":"app-%d","config_vars":["MYADDON_URL"],"current_credential_id":"cred-0"}`, i, i))
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	c.stdin = &interruptingReader{lines: lines, after: 3, interrupt: func() { cancel(&signalError{sig: os.Interrupt}) }}
	err := runCommand(ctx, c.env(), "instances", "import", "--json", "-")
	if _, ok := asInterrupted(err); !ok || !strings.Contains(err.Error(), "3 instances registered and 0 lines refused before line 4") {
		t.Errorf("import interrupted after 3 lines: err = %v, want an interruption naming the 3 registered", err)
	}
	var out importOutput
	if err := json.Unmarshal([]byte(c.stdout.String()), &out); err != nil {
		t.Fatalf("--json prints no summary when interrupted (%v): %q", err, c.stdout)
	}
	if out.Registered != 3 || len(out.Refused) != 0 {
		t.Errorf("--json = %+v, want 3 registered and none refused", out)
	}
	if strings.Contains(c.stderr.String(), "line 4") {
		t.Errorf("stderr reports line 4 as refused:\n%s", c.stderr)
	}
}

// interruptingReader serves lines one a Read, and calls interrupt when
// asked for the line after the first after, as Ctrl-C would arrive while
// the import reads on.
type interruptingReader struct {
	lines     []string
	after     int
	interrupt func()
	served    int
}

func (r *interruptingReader) Read(p []byte) (int, error) {
	if r.served == len(r.lines) {
		return 0, io.EOF
	}
	if r.served == r.after {
		r.interrupt()
	}
	r.served++
	return copy(p, r.lines[r.served-1]+"\n"), nil
}

// Ctrl-C while Heroku answers the exchange of a line's oauth_grant: the
// code is spent (Heroku takes one once), so the tokens it bought are
// stored all the same, and importing the file again, as the interruption
// advises, finds the instance registered rather than the code refused.
func TestImportInterruptedDuringAGrantExchangeKeepsItsTokens(t *testing.T) {
	c := newCLI(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var exchanges atomic.Int64
	heroku := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if exchanges.Add(1) > 1 {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"id":"invalid_grant","message":"grant code already used"}`)
			return
		}
		cancel(&signalError{sig: os.Interrupt})
		fmt.Fprint(w, `{"access_token":"4e1c3a1d-0000-4000-8000-000000000001","expires_in":28800,`+
			`"refresh_token":"4e1c3a1d-0000-4000-8000-000000000002","token_type":"Bearer","user_id":"u"}`)
	}))
	defer heroku.Close()
	vars := c.vars()
	maps.Copy(vars, map[string]string{"HEROKU_ID_URL": heroku.URL, "HEROKU_API_URL": heroku.URL,
		"HEROKU_OAUTH_CLIENT_SECRET": "oauth-client-secret-of-the-test"})
	env := c.env()
	env.lookup = func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	line := `{"id":"inst-g","api_version":"v3","config_vars":["MYADDON_URL"],"current_credential_id":"cred-0",` +
		`"oauth_grant":{"code":"01234567-89ab-4cde-8f01-23456789abcd"}}` + "\n"
	env.stdin = strings.NewReader(line)
	// The line's registration finishes; whether the run then says it
	// was interrupted or, with no line left, that it is done, it may not
	// fail otherwise.
	if err := runCommand(ctx, env, "instances", "import", "-"); err != nil {
		if _, ok := asInterrupted(err); !ok {
			t.Fatalf("import interrupted during the exchange: %v, want done or an interruption", err)
		}
	}
	if need, err := c.st.NeedsToken(context.Background(), "inst-g"); err != nil || need {
		t.Fatalf("inst-g after the interrupted import: needs tokens %v (%v), want the exchanged ones stored", need, err)
	}
	env.stdin = strings.NewReader(line)
	if err := runCommand(context.Background(), env, "instances", "import", "-"); err != nil {
		t.Errorf("importing the file again: %v, want the instance found registered", err)
	}
	if n := exchanges.Load(); n != 1 {
		t.Errorf("%d exchanges of the one code, want 1", n)
	}
}

// TestImportRefusesAmbiguousKeys: a line whose meaning depends on which of
// two keys its reader keeps, or on reading keys without case, is refused
// as the API refuses it, and changes nothing: encoding/json alone would
// have taken the last "id" and pointed that instance at the line's app.
func TestImportRefusesAmbiguousKeys(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	const first = `{"id":"inst-1","api_version":"v1","heroku_id":"app1@heroku.com","config_vars":["MYADDON_URL"],"current_credential_id":"cred-0"}`
	if err := c.importLines(t, first+"\n"); err != nil {
		t.Fatalf("import: %v\n%s", err, c.stderr)
	}
	lines := `{"id":"inst-77","api_version":"v1","heroku_id":"app77@heroku.com","config_vars":["MYADDON_URL"],"current_credential_id":"c","id":"inst-1"}` + "\n" +
		`{"ID":"inst-4","API_VERSION":"v1","Heroku_Id":"app4@heroku.com","config_vars":["MYADDON_URL"],"current_credential_id":"c"}` + "\n"
	err := c.importLines(t, lines, "--json")
	var out importOutput
	if jerr := json.Unmarshal(c.stdout.Bytes(), &out); jerr != nil || err == nil || out.Registered != 0 || len(out.Refused) != 2 {
		t.Fatalf("import = %v, %+v (%v); want both lines refused", err, out, jerr)
	}
	for i, want := range []string{`field "id" appears more than once`, `field "ID" is not known: field names are case-sensitive, send "id"`} {
		if !strings.Contains(out.Refused[i].Reason, want) {
			t.Errorf("line %d refused for %q, want %q", out.Refused[i].Line, out.Refused[i].Reason, want)
		}
	}
	if in, err := c.st.Instance(ctx, "inst-1"); err != nil || in.HerokuID != "app1@heroku.com" {
		t.Errorf("inst-1 after the refused lines: %+v (%v); want heroku id app1@heroku.com as registered", in.HerokuID, err)
	}
	for _, id := range []string{"inst-77", "inst-4"} {
		if _, err := c.st.Instance(ctx, id); err == nil {
			t.Errorf("%s registered by a refused line", id)
		}
	}
}

// TestImportRefusesASecondInstanceOfOneV1App: an import file whose line
// repeats another live V1 instance's heroku_id (copied and edited by hand)
// is refused at that line, naming the instance that holds it; the lines
// around it register.
func TestImportRefusesASecondInstanceOfOneV1App(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	line := func(id, app string) string {
		return `{"id":"` + id + `","api_version":"v1","heroku_id":"` + app + `","config_vars":["MYADDON_URL"],"current_credential_id":"cred-0"}` + "\n"
	}
	err := c.importLines(t, line("inst-1", "app1@heroku.com")+line("inst-2", "app1@heroku.com")+line("inst-3", "app3@heroku.com"), "--json")
	var out importOutput
	if jerr := json.Unmarshal(c.stdout.Bytes(), &out); jerr != nil || err == nil || out.Registered != 2 || len(out.Refused) != 1 {
		t.Fatalf("import = %v, %+v (%v); want line 2 refused, the others registered", err, out, jerr)
	}
	if r := out.Refused[0]; r.Line != 2 || !strings.Contains(r.Reason, `heroku_id "app1@heroku.com"`) || !strings.Contains(r.Reason, "inst-1") {
		t.Errorf("refused line %d for %q; want line 2, naming app1@heroku.com and inst-1", r.Line, r.Reason)
	}
	if _, err := c.st.Instance(ctx, "inst-2"); err == nil {
		t.Error("inst-2 registered under inst-1's heroku_id")
	}
}

// TestImportStopsWhenRedisGoesAway: Redis stopping part-way through an
// import ends it at the first line Redis failed, naming how many instances
// were registered before it and that importing the file again is safe,
// rather than calling that line and every one after it refused, one
// failed connection (retries, dial timeouts) after the other.
func TestImportStopsWhenRedisGoesAway(t *testing.T) {
	r := redistest.StartServerAt(t, redistest.FreePort(t))
	c := newCLI(t)
	c.r = r
	var lines []string
	for i := range 40 {
		lines = append(lines, fmt.Sprintf(`{"id":"inst-%d","api_version":"v1","heroku_id":"app-%d","config_vars":["MYADDON_URL"],"current_credential_id":"cred-0"}`, i, i))
	}
	c.stdin = &interruptingReader{lines: lines, after: 3, interrupt: func() {
		_ = r.Client.Do(context.Background(), "SHUTDOWN", "NOSAVE").Err()
	}}
	err := runCommand(context.Background(), c.env(), "instances", "import", "--json", "-")
	if err == nil || !strings.Contains(err.Error(), "3 instances registered and 0 lines refused before line 4") ||
		!strings.Contains(err.Error(), "Redis") {
		t.Errorf("import with Redis gone after 3 lines: err = %v, want it to stop at line 4 naming Redis and the 3 registered", err)
	}
	var out importOutput
	if err := json.Unmarshal([]byte(c.stdout.String()), &out); err != nil {
		t.Fatalf("--json prints no summary (%v): %q", err, c.stdout)
	}
	if out.Registered != 3 || len(out.Refused) != 0 {
		t.Errorf("--json = %+v, want 3 registered and none refused", out)
	}
	if strings.Contains(c.stderr.String(), "line 5") {
		t.Errorf("stderr reports the lines after Redis went as refused:\n%s", c.stderr)
	}
}

// TestReadingADirectoryNamesItOnce: `rekey instances import DIR` and
// `rekey rotate --from DIR` fail (exit 1) with "read DIR: is a directory",
// naming the directory once, as `cat DIR` does, and change nothing.
func TestReadingADirectoryNamesItOnce(t *testing.T) {
	c := newCLI(t)
	c.register(t, 1)
	dir := t.TempDir()
	before := c.snapshot(t)
	for _, args := range [][]string{
		{"instances", "import", dir},
		{"instances", "import", "--json", dir},
		{"rotate", "--from", dir},
		{"rotate", "--from", dir, "--plan"},
	} {
		err := c.run(t, args[0], args[1:]...)
		if err == nil || isUsage(err) || err.Error() != "read "+dir+": is a directory" {
			t.Errorf("rekey %v: %v, want \"read %s: is a directory\" (exit 1)", args, err, dir)
		}
		if c.stdout.String() != "" {
			t.Errorf("rekey %v printed %q", args, c.stdout)
		}
	}
	if after := c.snapshot(t); !maps.Equal(before, after) {
		t.Error("reading a directory changed Redis")
	}
}

// TestImportRefusesTheSameInstanceTwiceWithOtherValues: a file exported
// from a spreadsheet that names one instance on two lines with other
// values (a stale row with another current credential), or with its id in
// another case, has its later line refused, naming the line that was
// registered: the later line's current credential was left alone as a
// repeat registration leaves it, and its case variant registered a second
// instance for one add-on, each counted registered. A line repeating one
// exactly registers as before.
func TestImportRefusesTheSameInstanceTwiceWithOtherValues(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	line := func(id, cred string) string {
		return `{"id":"` + id + `","api_version":"v3","config_vars":["MYADDON_URL"],"current_credential_id":"` + cred +
			`","oauth":{"refresh_token":"rt-` + id + `","access_token":"at-` + id + `","expires_at":"2030-01-01T00:00:00Z"}}`
	}
	lines := strings.Join([]string{
		line("inst-1", "cred-a"),
		line("inst-1", "cred-a"),
		line("inst-1", "cred-b"),
		line("INST-1", "cred-a"),
		line("inst-2", "cred-a"),
	}, "\r\n")
	err := c.importLines(t, lines, "--json")
	var out importOutput
	if jerr := json.Unmarshal(c.stdout.Bytes(), &out); jerr != nil || err == nil || !strings.Contains(err.Error(), "2 lines refused") {
		t.Fatalf("import = %v, %s (%v); want 2 lines refused", err, c.stdout, jerr)
	}
	if out.Registered != 3 || len(out.Refused) != 2 || out.Refused[0].Line != 3 || out.Refused[1].Line != 4 {
		t.Fatalf("--json = %+v; want lines 1, 2 and 5 registered, lines 3 and 4 refused", out)
	}
	for _, r := range out.Refused {
		if !strings.Contains(r.Reason, "line 1") {
			t.Errorf("line %d refused for %q, which does not name line 1, where the instance was registered", r.Line, r.Reason)
		}
	}
	if in, err := c.st.Instance(ctx, "inst-1"); err != nil || in.CurrentCredential != "cred-a" {
		t.Errorf("inst-1 = %+v (%v); want cred-a current, as line 1 registered it", in, err)
	}
	if _, err := c.st.Instance(ctx, "INST-1"); err == nil {
		t.Error("INST-1 registered as a second instance beside inst-1")
	}
	if !strings.Contains(c.stderr.String(), "rekey: line 3 (inst-1): ") {
		t.Errorf("stderr does not report line 3:\n%s", c.stderr)
	}
}

// TestImportSaysWhenItKeepsAnotherCurrentCredential: a file imported again
// after its current_credential_id column was corrected (the first import
// took a password or a neighbour's credential id for it) said "1 instance
// registered" while rekey kept the first import's credential, which the
// instance's first rotation revokes after the grace; it now says so on
// stderr and in --json's "current_kept". A file imported again after a
// rotation, naming the credential rotated away, says nothing.
func TestImportSaysWhenItKeepsAnotherCurrentCredential(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	line := func(cred string) string {
		return `{"id":"inst-1","api_version":"v1","heroku_id":"app1@heroku.com","config_vars":["MYADDON_URL"],"current_credential_id":"` + cred + `"}` + "\n"
	}
	if err := c.importLines(t, line("cred-wrong")); err != nil {
		t.Fatalf("first import: %v\n%s", err, c.stderr)
	}
	if err := c.importLines(t, line("cred-right"), "--json"); err != nil {
		t.Fatalf("corrected import: %v\n%s", err, c.stderr)
	}
	var out struct {
		importOutput
		CurrentKept []map[string]any `json:"current_kept"`
	}
	if err := json.Unmarshal(c.stdout.Bytes(), &out); err != nil {
		t.Fatalf("--json does not parse (%v): %s", err, c.stdout)
	}
	if len(out.CurrentKept) != 1 || out.CurrentKept[0]["line"] != float64(1) || out.CurrentKept[0]["current"] != "cred-wrong" {
		t.Errorf("--json current_kept = %v; want line 1, cred-wrong kept", out.CurrentKept)
	}
	if s := c.stderr.String(); !strings.Contains(s, "line 1 (inst-1): its current_credential_id was not taken") || !strings.Contains(s, "cred-wrong") {
		t.Errorf("stderr does not say the named credential was not taken:\n%s", s)
	}
	// The id the line named may be a secret pasted in the wrong column:
	// it is not repeated.
	if strings.Contains(c.stderr.String()+c.stdout.String(), "cred-right") {
		t.Errorf("the output repeats the id the line named:\n%s\n%s", c.stderr, c.stdout)
	}
	if err := c.importLines(t, line("cred-right")); err != nil || !strings.Contains(c.stdout.String(), "1 line named another current credential than the one rekey holds, which was kept") {
		t.Errorf("text import = %v, stdout %q; want it to count the instance that kept its credential", err, c.stdout)
	}
	if in, _ := c.st.Instance(ctx, "inst-1"); in.CurrentCredential != "cred-wrong" {
		t.Fatalf("current credential = %s, want cred-wrong kept", in.CurrentCredential)
	}

	// Rotated since, the file naming the credential rotated away is a
	// stale file, imported again as it is safe to: nothing to say.
	if _, err := c.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-1"}); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:n3w@db/1")}
	if err := c.st.SavePending(ctx, "inst-1", "rot-1", "cred-1", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := c.st.Promote(ctx, "inst-1", "rot-1", "cred-1", time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	if err := c.importLines(t, line("cred-wrong")); err != nil {
		t.Fatalf("import after the rotation: %v\n%s", err, c.stderr)
	}
	if s := c.stderr.String(); s != "" {
		t.Errorf("import after the rotation, naming the credential rotated away, wrote on stderr:\n%s", s)
	}
}
