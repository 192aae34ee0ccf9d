package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// testCommit is the commit the test binary is built with (-X main.commit),
// since a build from a git worktree carries no VCS information.
const testCommit = "0123456789abcdef0123456789abcdef01234567"

// binary is the real rekey binary, run as a subprocess with exactly vars
// as its environment, off a terminal.
type binary struct {
	path string
	vars map[string]string
}

// result is what one run of the binary printed, and its exit status.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// buildRekey builds cmd/rekey with go build into dir, as a Heroku build
// dyno does: without VCS information (no .git there), the commit set with
// -ldflags instead.
func buildRekey(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "rekey")
	out, err := exec.Command("go", "build", "-buildvcs=false", "-ldflags", "-X main.commit="+testCommit, "-o", path, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/rekey: %v\n%s", err, out)
	}
	return path
}

// run runs `rekey args...` with stdin piped from the string.
func (b binary) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.path, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range b.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("rekey %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// commandPaths lists every command of rekey's tree as the binary has it,
// cobra's help and completion commands included, hidden ones left out:
// a command added to the root is walked without touching this test.
func commandPaths(t *testing.T) [][]string {
	t.Helper()
	root := newRootCmd(&environ{lookup: func(string) (string, bool) { return "", false },
		stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard})
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		ours := len(path) == 0 || path[0] != "completion"
		if ours && (c.Short == "" || c.Long == "" || c.Example == "") {
			t.Errorf("rekey %s lacks a summary, a description or examples", strings.Join(path, " "))
		}
		paths = append(paths, path)
		for _, s := range c.Commands() {
			if !s.Hidden {
				walk(s, append(slices.Clone(path), s.Name()))
			}
		}
	}
	walk(root, nil)
	return paths
}

// TestBinary runs the real binary against a private Redis: help and usage
// errors of every command, --version, --json against the text, and the
// refusal of an unconfirmed fleet rotation.
func TestBinary(t *testing.T) {
	c := newCLI(t)
	path := buildRekey(t, t.TempDir())
	bin := binary{path: path, vars: c.vars()}
	t.Run("every command", func(t *testing.T) { testEveryCommand(t, bin) })
	t.Run("version", func(t *testing.T) {
		r := bin.run(t, "", "--version")
		want := "rekey (devel), commit " + testCommit[:12]
		if r.code != 0 || !strings.HasPrefix(r.stdout, want) {
			t.Fatalf("rekey --version: want %q\n%s", want, r)
		}
		t.Logf("rekey --version: %s", r.stdout)
		if v := bin.run(t, "", "version"); v.code != 0 || v.stdout != r.stdout {
			t.Errorf("rekey version differs from rekey --version:\n%s", v)
		}
	})
	t.Run("usage errors", func(t *testing.T) { testUsageErrors(t, bin) })
	t.Run("completion", func(t *testing.T) {
		for shell, want := range map[string]string{"bash": "__start_rekey", "zsh": "#compdef rekey", "fish": "complete -c rekey"} {
			if r := bin.run(t, "", "completion", shell); r.code != 0 || !strings.Contains(r.stdout, want) {
				t.Errorf("rekey completion %s: want exit 0 and %q in the script\n%s", shell, want, r.stderr)
			}
		}
		// What the shell asks when completing `rekey rot<TAB>`.
		if r := bin.run(t, "", "__complete", "rot"); r.code != 0 || !strings.HasPrefix(r.stdout, "rotate\t") {
			t.Errorf("completing rot: %s", r)
		}
	})
	t.Run("json", func(t *testing.T) { testJSONMatchesText(t, c, bin) })
	t.Run("confirm", func(t *testing.T) {
		c := newCLI(t) // a Redis of its own
		testConfirmOffTerminal(t, c, binary{path: path, vars: c.vars()})
	})
}

func testEveryCommand(t *testing.T, bin binary) {
	paths := commandPaths(t)
	t.Logf("walking %d commands", len(paths))
	for _, path := range paths {
		name := strings.Join(append([]string{"rekey"}, path...), " ")
		t.Run(name, func(t *testing.T) {
			t.Parallel() // each run is a process of its own, off Redis
			help := bin.run(t, "", append(slices.Clone(path), "--help")...)
			if help.code != 0 || !strings.Contains(help.stdout, "Usage:") || help.stderr != "" {
				t.Errorf("%s --help: want exit 0 and usage on stdout\n%s", name, help)
			}
			ours := len(path) == 0 || path[0] != "completion"
			if ours && !strings.Contains(help.stdout, "Examples:") {
				t.Errorf("%s --help shows no examples:\n%s", name, help.stdout)
			}
			if via := bin.run(t, "", append([]string{"help"}, path...)...); via.code != 0 || via.stdout != help.stdout {
				t.Errorf("rekey help %s differs from --help:\n%s", strings.Join(path, " "), via)
			}
			bad := bin.run(t, "", append(slices.Clone(path), "--no-such-flag")...)
			lines := strings.Split(strings.TrimSpace(bad.stderr), "\n")
			if bad.code != 2 || bad.stdout != "" || len(lines) > 2 || !strings.Contains(bad.stderr, "--no-such-flag") {
				t.Errorf("%s --no-such-flag: want exit 2 and a short hint on stderr\n%s", name, bad)
			}
		})
	}
}

// testUsageErrors: a missing argument or an unknown command is a usage
// error (exit 2, one line); a runtime failure exits 1; the single-dash
// spelling of Go's flag package still works.
func testUsageErrors(t *testing.T, bin binary) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"rotat"}, 2, `unknown command "rotat" for "rekey"; did you mean rotate?`},
		{[]string{"help", "nope"}, 2, `rekey help: no command "nope"`},
		{[]string{"batches", "lsit"}, 2, `unknown command "lsit" for "rekey batches"; did you mean list?`},
		{[]string{"scheduler", "stauts"}, 2, `unknown command "stauts" for "rekey scheduler"; did you mean status?`},
		{[]string{"batches", "show"}, 2, "rekey batches show: takes one BATCH_ID, got 0 arguments (see 'rekey batches show --help')"},
		{[]string{"instances", "import"}, 2, "takes one FILE"},
		{[]string{"worker", "extra"}, 2, `takes no arguments, got "extra"`},
		{[]string{"rotate"}, 2, "name instance ids, or --all, or --from FILE"},
		{[]string{"rotate", "--al", "--plan"}, 2, "unknown flag: --al; did you mean --all?"},
		{[]string{"batches", "show", "bat_1", "--wiat"}, 2, "unknown flag: --wiat; did you mean --wait?"},
		{[]string{"rotate", "--queue", "fast", "inst-00000"}, 2, `--queue "fast"`},
		{[]string{"rotate", "--grace", "3d", "inst-00000"}, 2, "use a Go duration such as 2h or 90m (Go durations have no days: 3d is 72h)"},
		{[]string{"scheduler", "--interval", "1ms"}, 2, "--interval must be at least 1s"},
		{[]string{"batches", "show", "bat_1", "--wait", "--interval", "2ms"}, 2, "--interval 2ms is under 100ms: each look reads the Redis the whole fleet uses (did you mean 2s?)"},
		{[]string{"rotate", "--wait", "--interval", "0s", "inst-00000"}, 2, "--interval 0s is under 100ms"},
		{[]string{"scheduler", "set", "inst-00000"}, 2, "name what to change: --opt-out, --opt-in or --window"},
		{[]string{"scheduler", "set", "inst-nope", "--window", "25-03"}, 2, "--window: "},
		{[]string{"holds", "release", "inst-00000"}, 2, `"inst-00000" is not INSTANCE_ID/CREDENTIAL_ID`},
		{[]string{"revocations", "retry", "3"}, 2, `"3" is not a dead revocation id: use INSTANCE_ID/CREDENTIAL_ID`},
		{[]string{"instances", "show", "bad id"}, 2, `"bad id" is not an instance id: show takes one, such as inst-123`},
		{[]string{"scheduler", "set", "inst-00000/cred-1", "--opt-out"}, 2,
			`"inst-00000/cred-1" is INSTANCE/CREDENTIAL, but set takes an instance id: rekey scheduler set inst-00000`},
		{[]string{"scheduler", "unquarantine", "inst-00000", "bad id"}, 2,
			`"bad id" is not an instance id: unquarantine takes one, such as inst-123`},
		{[]string{"batches", "show", "bat_nope"}, 1, "rekey: batch bat_nope not found"},
		// A batch id pasted with what followed it is no batch id, not a
		// batch that expired.
		{[]string{"batches", "show", "bat_1 "}, 2, `"bat_1 " is not a batch id: show takes one, such as bat_01J...`},
		{[]string{"batches", "failed", "bat_1\r"}, 2, `"bat_1\r" is not a batch id: failed takes one`},
		{[]string{"batches", "cancel", "bat_1\n"}, 2, `"bat_1\n" is not a batch id: cancel takes one`},
		{[]string{"batches", "list", "--before", " bat_1"}, 2, `--before " bat_1" is not a batch id`},
		{[]string{"instances", "show", "-json", "inst-nope"}, 1, "rekey: instance inst-nope is not registered"},
	}
	for _, tt := range tests {
		r := bin.run(t, "", tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("rekey %s: want exit %d and %q\n%s", strings.Join(tt.args, " "), tt.code, tt.want, r)
		}
		if tt.code == 2 && strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("rekey %s: the hint is more than one line:\n%s", strings.Join(tt.args, " "), r.stderr)
		}
	}
}

// figure is one number (or id) a reporting command shows, found in its
// text by a regular expression and in its --json output by a path.
type figure struct {
	args []string
	text string // regexp whose first group is the figure
	json string // dotted path into the JSON; "#" is an array's length
	want string
	// note says the text is said on stderr: a list's count, kept off the
	// rows on stdout that are piped on.
	note bool
}

func testJSONMatchesText(t *testing.T, c *cli, bin binary) {
	ctx := context.Background()
	c.register(t, 8)
	c.deadRevocation(t, "inst-dead")
	r := bin.run(t, "", "rotate", "inst-00000", "inst-00001")
	if r.code != 0 || !strings.Contains(r.stdout, "2 enqueued on default, 0 joined") {
		t.Fatalf("rotate: %s", r)
	}
	batch := batchID(t, r.stdout)
	r = bin.run(t, "", "rotate", "inst-00000", "inst-00002", "--json")
	var rotated rotateOutput
	if err := json.Unmarshal([]byte(r.stdout), &rotated); err != nil || r.code != 0 {
		t.Fatalf("rotate --json does not parse (%v): %s", err, r)
	}
	if b, err := c.st.Batch(ctx, rotated.BatchID); err != nil || rotated.Enqueued != 1 || rotated.Joined != 1 ||
		b.Enqueued != 1 || b.Joined != 1 {
		t.Errorf("rotate --json = %+v; its batch in Redis %+v (%v); want 1 enqueued, 1 joined", rotated, b, err)
	}
	in, err := c.st.Instance(ctx, "inst-00000")
	if err != nil {
		t.Fatal(err)
	}
	events, err := c.st.Events(ctx, "inst-00000", 20)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := c.st.SealedStatus(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	// 9 live instances, 3 of them rotating; inst-dead has a dead revocation.
	for _, f := range []figure{
		{args: []string{"rotate", "--plan", "--all"}, text: `rotate\s+(\d+), on queue bulk`, json: "rotate", want: "6"},
		{args: []string{"rotate", "--plan", "--all"}, text: `skip, in flight\s+(\d+)`, json: "skip_in_flight", want: "3"},
		// 6 updates, and a first read for the 5 never rotated (registered without current_config).
		{args: []string{"rotate", "--plan", "--all"}, text: `Heroku API calls\s+(\d+)`, json: "heroku_api_calls", want: "11"},
		{args: []string{"instances", "show", "inst-00000"}, text: `rotation in flight:\s+(\S+)`, json: "in_flight_rotation_id", want: in.InFlight},
		{args: []string{"instances", "show", "inst-00000"}, text: `recent events:\s+(\d+)`, json: "events.#", want: fmt.Sprint(len(events))},
		{args: []string{"scheduler", "status"}, text: `instances:\s+(\d+) live`, json: "instances_live", want: "9"},
		{args: []string{"scheduler", "status"}, text: `in flight:\s+(\d+)`, json: "in_flight", want: "0"},
		{args: []string{"batches", "show", batch}, text: `enqueued\s+(\d+)`, json: "enqueued", want: "2"},
		{args: []string{"batches", "show", batch}, text: `in flight\s+(\d+)`, json: "in_flight", want: "2"},
		{args: []string{"keys", "status"}, text: `(\d+) sealed values?`, json: "values", want: fmt.Sprint(sealed.Values)},
		{args: []string{"breaker", "status"}, text: `openings:\s+(\d+)`, json: "openings", want: "0"},
		{args: []string{"revocations", "dead"}, text: `(\d+) dead revocations?:`, json: "#", want: "1", note: true},
	} {
		name := strings.Join(f.args, " ")
		text := bin.run(t, "", f.args...)
		said := text.stdout
		if f.note {
			said = text.stderr
		}
		m := regexp.MustCompile(f.text).FindStringSubmatch(said)
		if text.code != 0 || m == nil || m[1] != f.want {
			t.Errorf("rekey %s: want %q matching %s\n%s", name, f.want, f.text, text)
		}
		js := bin.run(t, "", append(slices.Clone(f.args), "--json")...)
		var v any
		if err := json.Unmarshal([]byte(js.stdout), &v); err != nil || js.code != 0 {
			t.Errorf("rekey %s --json does not parse (%v):\n%s", name, err, js)
			continue
		}
		if got := jsonAt(v, f.json); got != f.want {
			t.Errorf("rekey %s --json: %s = %q, the text says %q", name, f.json, got, f.want)
		}
	}
}

// jsonAt follows a dotted path into v and prints what it finds.
func jsonAt(v any, path string) string {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			if k == "#" {
				return fmt.Sprint(len(x))
			}
			return "not a path"
		}
	}
	return fmt.Sprint(v)
}

// testConfirmOffTerminal: off a terminal, rotate --all and a --from list
// of more than 5 ids need --confirm; without it nothing changes in Redis,
// even with a "y" piped in, and the exit status is 2.
func testConfirmOffTerminal(t *testing.T, c *cli, bin binary) {
	ids := c.register(t, 7)
	list := filepath.Join(t.TempDir(), "ids.txt")
	if err := os.WriteFile(list, []byte(strings.Join(ids[:6], "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	before := c.snapshot(t)
	for _, args := range [][]string{{"rotate", "--all"}, {"rotate", "--all", "--json"}, {"rotate", "--from", list}} {
		r := bin.run(t, "y\n", args...)
		if r.code != 2 || !strings.Contains(r.stderr, "add --confirm to go ahead") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("rekey %s off a terminal: want exit 2 and one line asking for --confirm\n%s", strings.Join(args, " "), r)
		}
	}
	if after := c.snapshot(t); !maps.Equal(before, after) {
		t.Fatalf("an unconfirmed rotation changed Redis: %d keys before, %d after", len(before), len(after))
	}
	t.Logf("rotate --all without --confirm: Redis unchanged (%d keys, every DUMP identical)", len(before))
	r := bin.run(t, "", "rotate", "--all", "--confirm")
	if r.code != 0 || !strings.Contains(r.stdout, "7 enqueued on bulk") || c.pending(t, "bulk") != 7 {
		t.Fatalf("rotate --all --confirm: want 7 enqueued\n%s", r)
	}
}

// TestCompletionNeedsAShell: `rekey completion` with no shell, or one it
// does not know (`rekey completion tcsh > ~/.rekey-completion`), is a
// usage error (exit 2) with nothing on stdout, as every other group called
// wrongly is, so the redirect writes no help text into the file and the
// script sees the failure.
func TestCompletionNeedsAShell(t *testing.T) {
	for _, args := range [][]string{{"completion"}, {"completion", "tcsh"}} {
		c := newCLI(t)
		err := c.run(t, args[0], args[1:]...)
		if err == nil || !isUsage(err) || c.stdout.String() != "" {
			t.Errorf("rekey %s: err = %v, stdout %.60q; want a usage error (exit 2) and nothing on stdout", strings.Join(args, " "), err, c.stdout.String())
		}
	}
}
