package main

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

func TestRotatePlanAllOnTenThousandChangesNothing(t *testing.T) {
	c := newCLI(t)
	c.register(t, 10_000)
	before := c.snapshot(t)

	start := time.Now()
	if err := c.run(t, "rotate", "--plan", "--all"); err != nil {
		t.Fatalf("rotate --plan --all: %v\n%s", err, c.stderr)
	}
	t.Logf("plan of 10,000 instances took %s:\n%s", time.Since(start).Round(time.Millisecond), c.stdout)

	for _, want := range []string{
		"plan for 10000 instances",
		"rotate                 10000, on queue bulk",
		// Registered without current_config: each first rotation reads the
		// config Heroku holds before its update.
		"Heroku API calls       20000 (one config update per instance, 10000 first reads of the config Heroku holds), plus 10000 OAuth token refreshes",
		"apps released          at least 10000 (one per instance; attached apps release and restart too)",
		"budget                 4000 calls/hour",
		// (20,000 - 9 calls of burst) at 0.9 s each.
		"estimated duration     at least 5h",
	} {
		if !strings.Contains(c.stdout.String(), want) {
			t.Errorf("plan lacks %q", want)
		}
	}
	after := c.snapshot(t)
	if !maps.Equal(before, after) {
		t.Errorf("the plan changed Redis: %d keys before, %d after", len(before), len(after))
		for k := range after {
			if _, ok := before[k]; !ok {
				t.Errorf("new key %s", k)
			}
		}
	}
}

// TestRotatePlanCountsEveryHerokuCall checks that a plan counts the calls a
// rotation makes besides its update, which the budget grants like any
// other: a V1 update's read-back, and the first read of an instance
// registered without current_config.
func TestRotatePlanCountsEveryHerokuCall(t *testing.T) {
	ctx := context.Background()
	c := newCLI(t)
	for _, r := range []struct {
		id, version string
		fingerprint bool
	}{
		{"inst-v3-known", store.APIv3, true}, {"inst-v3-new", store.APIv3, false},
		{"inst-v1-known", store.APIv1, true}, {"inst-v1-new", store.APIv1, false},
	} {
		reg := store.Registration{ID: r.id, APIVersion: r.version, ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-0"}
		if r.version == store.APIv1 {
			reg.HerokuID = "app-" + r.id
		}
		if err := c.st.PutInstance(ctx, reg); err != nil {
			t.Fatal(err)
		}
		if r.fingerprint {
			config := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:provisioned@db/" + r.id)} // each its own
			if got, err := c.st.LearnCurrentFingerprint(ctx, r.id, "cred-0", config); err != nil || got != store.FingerprintLearned {
				t.Fatalf("LearnCurrentFingerprint(%s) = %q, %v", r.id, got, err)
			}
		}
	}
	if err := c.run(t, "rotate", "--plan", "--all"); err != nil {
		t.Fatalf("%v\n%s", err, c.stderr)
	}
	want := "Heroku API calls       8 (one config update per instance, 2 read-backs of V1 updates, 2 first reads of the config Heroku holds)"
	if !strings.Contains(c.stdout.String(), want) {
		t.Errorf("plan lacks %q:\n%s", want, c.stdout)
	}
	got := c.planJSON(t, "--all")
	if got.Rotate != 4 || got.Calls != 8 || got.ReadBacks != 2 || got.FirstReads != 2 {
		t.Errorf("rotate --plan --json = %+v; want 4 rotations, 8 calls: 2 read-backs, 2 first reads", got)
	}
}

func TestRotatePlanCounts(t *testing.T) {
	ctx := context.Background()
	c := newCLI(t)
	ids := c.register(t, 6)
	// inst-00000 is rotating; inst-00001 is deprovisioned; inst-00002 has a
	// previous credential waiting; inst-00003's token is fresh;
	// inst-00004's expires in a minute.
	if err := c.run(t, "rotate", ids[0]); err != nil {
		t.Fatal(err)
	}
	if err := c.st.Deprovision(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := c.run(t, "rotate", ids[2]); err != nil {
		t.Fatal(err)
	}
	c.complete(t, ids[2:3], nil)
	for id, exp := range map[string]time.Duration{ids[3]: 8 * time.Hour, ids[4]: time.Minute} {
		tok := heroku.Token{AccessToken: secret.New("access"), RefreshToken: secret.New("refresh"), ExpiresAt: time.Now().Add(exp)}
		if err := c.st.SaveToken(ctx, id, tok); err != nil {
			t.Fatal(err)
		}
	}
	before := c.snapshot(t)

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"named ids", []string{"--plan", "--skip-invalid", ids[0], ids[1], ids[2], ids[3], ids[4], ids[5]}, []string{
			// inst-00002 and inst-00005 have no access token, inst-00004's expires.
			"plan for 5 instances", "rotate                 4, on queue default", "skip, in flight        1",
			"plus 3 OAuth token refreshes", "at least 0s"}},
		{"skip if previous", []string{"--plan", "--skip-if-previous", ids[2], ids[3]}, []string{
			"plan for 2 instances", "rotate                 1", "skip, previous waits   1", "Heroku API calls       2 (one config update per instance, 1 first read of the config Heroku holds)\n"}},
		{"one", []string{"--plan", ids[3]}, []string{"plan for 1 instance (", "rotate                 1, on queue interactive"}},
		{"all", []string{"--plan", "--all"}, []string{
			"plan for 5 instances", "rotate                 4, on queue bulk", "skip, in flight        1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.run(t, "rotate", tt.args...); err != nil {
				t.Fatalf("%v\n%s", err, c.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(c.stdout.String(), w) {
					t.Errorf("plan lacks %q:\n%s", w, c.stdout)
				}
			}
		})
	}
	if !maps.Equal(before, c.snapshot(t)) {
		t.Error("a plan changed Redis")
	}
}

// badList has every kind of problem an id list can have.
const badList = `# rotation list
inst-00000
{"instance_id": "inst-00001"}

{"id": "inst-00002", "app": "ignored"}
not an id!
no-such-instance
inst-00003
inst-00000
{"instance_id": 7}
inst-00004
`

func TestRotateFromBadFile(t *testing.T) {
	wantProblems := []string{
		"rekey: line 6: \"not an id!\" is not a valid instance id\n",
		"rekey: line 7: unknown instance no-such-instance\n",
		"rekey: line 8: deprovisioned instance inst-00003\n",
		"rekey: line 9: duplicate of line 2\n",
		`rekey: line 10: not a JSON object with "instance_id" or "id"`,
	}
	tests := []struct {
		name         string
		args         []string
		stdin        bool
		wantErr      string
		wantEnqueued int
	}{
		{"refused whole", []string{"--from", "FILE"}, false, "5 lines cannot be rotated", 0},
		{"skip invalid", []string{"--from", "FILE", "--skip-invalid"}, false, "", 4},
		{"stdin refused whole", []string{"--from", "-"}, true, "5 lines cannot be rotated", 0},
		{"stdin skip invalid", []string{"--skip-invalid", "--from", "-"}, true, "", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCLI(t)
			c.register(t, 5)
			if err := c.st.Deprovision(context.Background(), instanceID(3)); err != nil {
				t.Fatal(err)
			}
			args := append([]string(nil), tt.args...)
			if tt.stdin {
				c.stdin = strings.NewReader(badList)
			} else {
				path := filepath.Join(t.TempDir(), "ids.txt")
				if err := os.WriteFile(path, []byte(badList), 0o600); err != nil {
					t.Fatal(err)
				}
				args[1] = path
			}
			err := c.run(t, "rotate", args...)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			for _, p := range wantProblems {
				if !strings.Contains(c.stderr.String(), p) {
					t.Errorf("stderr lacks %q:\n%s", p, c.stderr)
				}
			}
			// Four instances go on the default queue, as four named
			// on the command line do; more than five would go on bulk.
			if got := c.pending(t, "default"); got != tt.wantEnqueued {
				t.Errorf("%d tasks pending on default, want %d", got, tt.wantEnqueued)
			}
			if tt.wantEnqueued == 0 {
				if keys := c.batchKeys(t); len(keys) > 0 {
					t.Errorf("a batch was created: %v", keys)
				}
				return
			}
			b, err := c.st.Batch(context.Background(), batchID(t, c.stdout.String()))
			if err != nil {
				t.Fatal(err)
			}
			if b.Total != 4 || b.Enqueued != 4 {
				t.Errorf("batch total %d, enqueued %d; want 4 and 4 (the duplicate rotated once)", b.Total, b.Enqueued)
			}
		})
	}
}

// TestRotateSkipInvalidJSONListsLeftOut: with --skip-invalid, --json
// lists the lines it left out by number, kind and reason; a byte order
// mark at the start of the file is no problem.
func TestRotateSkipInvalidJSONListsLeftOut(t *testing.T) {
	c := newCLI(t)
	c.register(t, 2)
	path := filepath.Join(t.TempDir(), "ids.txt")
	list := "\ufeffinst-00000\r\nnot an id!\r\nno-such-instance\r\ninst-00001\r\ninst-00000\r\n"
	if err := os.WriteFile(path, []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.run(t, "rotate", "--from", path, "--skip-invalid", "--json", "--confirm"); err != nil {
		t.Fatalf("rotate: %v\n%s", err, c.stderr)
	}
	var out rotateOutput
	if err := json.Unmarshal(c.stdout.Bytes(), &out); err != nil {
		t.Fatalf("rotate --json does not parse (%v): %s", err, c.stdout)
	}
	want := []invalidID{
		{Line: 2, Kind: fleet.ProblemMalformed, Reason: `"not an id!" is not a valid instance id`},
		{Line: 3, Kind: fleet.ProblemUnknown, Reason: "unknown instance no-such-instance"},
		{Line: 5, Kind: fleet.ProblemDuplicate, Reason: "duplicate of line 1"},
	}
	if out.Enqueued != 2 || !reflect.DeepEqual(out.Invalid, want) {
		t.Errorf("rotate --json: enqueued %d, invalid %+v; want 2 and %+v", out.Enqueued, out.Invalid, want)
	}
	// The plan of the same request lists them alike.
	if err := c.run(t, "rotate", "--from", path, "--skip-invalid", "--json", "--plan"); err != nil {
		t.Fatalf("rotate --plan: %v\n%s", err, c.stderr)
	}
	var pl planOutput
	if err := json.Unmarshal(c.stdout.Bytes(), &pl); err != nil {
		t.Fatalf("rotate --plan --json does not parse (%v): %s", err, c.stdout)
	}
	if !reflect.DeepEqual(pl.Invalid, want) {
		t.Errorf("rotate --plan --json: invalid %+v, want %+v", pl.Invalid, want)
	}
}

// A plan exits as the request would: with nothing to rotate (every id
// left out by --skip-invalid, or an empty fleet's --all), 1 and no plan.
func TestRotatePlanOfNothingFailsAsTheRequestWould(t *testing.T) {
	c := newCLI(t)
	for _, args := range [][]string{{"--all"}, {"--skip-invalid", "no-such-instance"}} {
		for _, plan := range []bool{false, true} {
			a := append([]string(nil), args...)
			if plan {
				a = append(a, "--plan")
			}
			err := c.run(t, "rotate", a...)
			if err == nil || isUsage(err) || !strings.Contains(err.Error(), "no instance to rotate") {
				t.Errorf("rotate %v: %v, want \"no instance to rotate\"", a, err)
			}
			if strings.Contains(c.stdout.String(), "plan for") {
				t.Errorf("rotate %v printed a plan:\n%s", a, c.stdout)
			}
		}
	}
	// --json lists what --skip-invalid left out even then.
	for _, plan := range []bool{false, true} {
		a := []string{"--skip-invalid", "--json", "no-such-instance"}
		if plan {
			a = append(a, "--plan")
		}
		err := c.run(t, "rotate", a...)
		var out struct {
			Invalid []invalidID `json:"invalid"`
		}
		if jerr := json.Unmarshal(c.stdout.Bytes(), &out); err == nil || jerr != nil || len(out.Invalid) != 1 ||
			out.Invalid[0].Kind != fleet.ProblemUnknown {
			t.Errorf("rotate %v: %v, stdout %q; want an error and the unknown id listed", a, err, c.stdout)
		}
	}
}

// A line past the longest an id list or an import takes is named by its
// number, and what was done before it is said.
func TestAnOverlongLineIsNamed(t *testing.T) {
	c := newCLI(t)
	c.register(t, 1)
	long := strings.Repeat("x", 2<<20)
	c.stdin = strings.NewReader("inst-00000\n" + long + "\n")
	err := c.run(t, "rotate", "--from", "-")
	if err == nil || !strings.Contains(err.Error(), "line 2 is longer than 64 KiB") {
		t.Errorf("rotate --from with a 2 MiB line: %v, want it named", err)
	}
	err = c.importLines(t, `{"id":"inst-9","api_version":"v1","heroku_id":"app-9","config_vars":["MYADDON_URL"],"current_credential_id":"cred-0"}`+
		"\n"+long+"\n")
	if err == nil || !strings.Contains(err.Error(), "line 2 is longer than 1024 KiB") ||
		!strings.Contains(err.Error(), "1 instance registered and 0 lines refused before it") {
		t.Errorf("import with a 2 MiB line: %v, want it named and the registered one counted", err)
	}
}

func TestRotateNamedIDs(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantErr   string
		wantQueue map[string]int
	}{
		{"one id goes interactive", []string{"inst-00000", "--reason", "leak"}, "", map[string]int{"interactive": 1}},
		{"several ids go default", []string{"inst-00000", "inst-00001", "inst-00000"}, "", map[string]int{"default": 2}},
		{"one id named twice goes interactive", []string{"inst-00000", "inst-00000"}, "", map[string]int{"interactive": 1}},
		{"empty reason", []string{"inst-00000", "--reason", " "}, "", map[string]int{"interactive": 1}},
		{"reason of two lines", []string{"inst-00000", "--reason", "INC-1\n\x1b[31mfake"}, "--reason holds a line break", nil},
		{"reason too long", []string{"inst-00000", "--reason", strings.Repeat("x", tasks.MaxReasonLen+1)}, "--reason is longer", nil},
		{"reason the dashboard gives", []string{"inst-00000", "--reason", "customer request"}, "customer's dashboard", nil},
		{"reason the schedule gives", []string{"inst-00000", "inst-00001", "--reason", "Scheduled"}, "rotation schedule", nil},
		{"queue flag", []string{"--queue", "bulk", "inst-00000"}, "", map[string]int{"bulk": 1}},
		{"unknown refused whole", []string{"inst-00000", "nope"}, "1 argument cannot be rotated (above), so nothing is enqueued; " +
			"fix it, or pass --skip-invalid to rotate the 1 valid one", nil},
		{"malformed pair", []string{"inst-00000/cred_x"}, "1 argument cannot be rotated (above)", nil},
		{"malformed beside a valid one", []string{"inst-00000", ""}, "1 argument cannot be rotated (above)", nil},
		{"only unknown", []string{"nope", "nada"}, "2 arguments cannot be rotated (above) and no other is given, so nothing is enqueued", nil},
		{"unknown skipped", []string{"inst-00000", "nope", "--skip-invalid"}, "", map[string]int{"interactive": 1}},
		{"no source", nil, "one of them", nil},
		{"two sources", []string{"--all", "inst-00000"}, "one of them", nil},
		{"bad queue", []string{"--queue", "fast", "inst-00000"}, "--queue", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCLI(t)
			c.register(t, 2)
			err := c.run(t, "rotate", tt.args...)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q\n%s", err, tt.wantErr, c.stderr)
			}
			for _, q := range []string{"interactive", "default", "bulk"} {
				if got := c.pending(t, q); got != tt.wantQueue[q] {
					t.Errorf("%d tasks on %s, want %d", got, q, tt.wantQueue[q])
				}
			}
			if tt.wantErr != "" && len(c.batchKeys(t)) > 0 {
				t.Error("a refused request created a batch")
			}
			// Ids that are no instance id are a wrong call (exit 2); unknown ones are not.
			if malformed := strings.HasPrefix(tt.name, "malformed"); strings.Contains(tt.wantErr, "cannot be rotated") &&
				isUsage(err) != malformed {
				t.Errorf("usage error (exit 2): %v, want %v", isUsage(err), malformed)
			}
		})
	}
}

func TestRotateAllSkipsInFlight(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 3)
	if err := c.run(t, "rotate", ids[0]); err != nil {
		t.Fatal(err)
	}
	if err := c.run(t, "rotate", "--all", "--confirm", "--reason", "quarterly"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.stdout.String(), "2 enqueued on bulk, 1 joined a rotation in flight") {
		t.Errorf("stdout: %s", c.stdout)
	}
	b, err := c.st.Batch(context.Background(), batchID(t, c.stdout.String()))
	if err != nil {
		t.Fatal(err)
	}
	if b.Total != 3 || b.Enqueued != 2 || b.Joined != 1 || b.Reason != "quarterly" {
		t.Errorf("batch %+v", b)
	}
}

// TestRotatePlanOfARefusedRequestPrintsNoPlan: --plan of a request that
// would be refused whole (an unknown id) fails as the request would, and
// prints no plan of what would not happen, in text or JSON.
func TestRotatePlanOfARefusedRequestPrintsNoPlan(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 1)
	for _, args := range [][]string{{"--plan", ids[0], "nosuch-1"}, {"--plan", "--json", ids[0], "nosuch-1"}} {
		err := c.run(t, "rotate", args...)
		if err == nil || isUsage(err) {
			t.Errorf("rotate %s: %v, want the request's refusal", strings.Join(args, " "), err)
		}
		if c.stdout.String() != "" {
			t.Errorf("rotate %s printed a plan of a refused request:\n%s", strings.Join(args, " "), c.stdout)
		}
	}
}

// TestRotatePlanWithConfirmIsAUsageError: --plan changes nothing, so a
// --confirm beside it is a mistake (exit 2), as --wait is.
func TestRotatePlanWithConfirmIsAUsageError(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 1)
	if err := c.run(t, "rotate", ids[0], "--plan", "--confirm"); !isUsage(err) ||
		!strings.Contains(err.Error(), "nothing to --confirm") {
		t.Errorf("rotate --plan --confirm: %v, want a usage error naming --confirm", err)
	}
}

// TestHelpWorksAsASubcommandEverywhere: `rekey CMD help` prints CMD's help
// (exit 0), as `rekey help CMD` does, for groups of commands and for
// commands that take arguments, where help would be an instance id.
func TestHelpWorksAsASubcommandEverywhere(t *testing.T) {
	for _, args := range [][]string{{"batches", "help"}, {"scheduler", "help"}, {"rotate", "help"}, {"batches", "help", "show"},
		{"instances", "help"}} {
		env, stdout, stderr := devEnv()
		if err := runCommand(context.Background(), env, args[0], args[1:]...); err != nil {
			t.Errorf("rekey %s: %v, want its help\nstderr:\n%s", strings.Join(args, " "), err, stderr)
			continue
		}
		want := "rekey " + args[0]
		if len(args) > 2 {
			want += " " + args[2]
		}
		if !strings.Contains(stdout.String(), "Usage:\n  "+want) {
			t.Errorf("rekey %s printed no help of %q:\n%s", strings.Join(args, " "), want, stdout)
		}
	}
}

// TestAFlagTakenAsAValueIsRefused: `--reason --plan`, the reason's text
// forgotten, made the flag library take "--plan" as the reason, and the
// rotation went out at once where a plan was asked. It is a usage error
// (exit 2) now, and nothing is enqueued; a value that only begins with a
// dash, written with '=', still passes.
func TestAFlagTakenAsAValueIsRefused(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 1)
	err := c.run(t, "rotate", ids[0], "--reason", "--plan")
	if !isUsage(err) || !strings.Contains(err.Error(), `--reason took "--plan", another of its flags, as its value`) {
		t.Fatalf("rotate --reason --plan: %v; want a usage error naming --reason and --plan", err)
	}
	if in, err := c.st.Instance(context.Background(), ids[0]); err != nil || in.InFlight != "" {
		t.Fatalf("%s after the refused call: in flight %q (%v); want nothing requested", ids[0], in.InFlight, err)
	}
	if err := c.run(t, "rotate", ids[0], "--reason=-dash-first", "--plan"); err != nil {
		t.Errorf("rotate --reason=-dash-first --plan: %v, want the plan", err)
	}
}
