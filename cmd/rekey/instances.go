package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/health"
	"github.com/rekeyhq/rekey/internal/jsonkey"
	"github.com/rekeyhq/rekey/internal/printable"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/store"
)

func newInstancesCmd(env *environ) *cobra.Command {
	return newGroupCmd(&cobra.Command{
		Use:   "instances",
		Short: "Import, list or show instances",
		Long: `Registers instances in bulk from JSON lines (as the API's PUT body, plus "id"), lists the live
instances a page at a time, or shows one instance: its state, credentials waiting for revocation
and recent audit events (never a secret).`,
		Example: `  rekey instances import instances.jsonl
  rekey instances list
  rekey instances show inst-123 --json`,
	}, newInstancesImportCmd(env), newInstancesListCmd(env), newInstancesShowCmd(env))
}

func newInstancesListCmd(env *environ) *cobra.Command {
	var asJSON, quiet bool
	var limit int
	var after string
	c := &cobra.Command{
		Use:   "list",
		Short: "List the live instances, in registration order",
		Long: `Lists the live instances in the order they were registered, one a line: id, API version, when
it was registered and last rotated, its next scheduled rotation (in its maintenance window) and
where it stands (rotating, quarantined, opted out, scheduled, or unscheduled when scheduled
rotation is off). --after ID pages on from the last line; stderr says how many there are and how to
list the next page. Deprovisioned instances are not listed; 'rekey instances show ID' still shows them.
-q (--quiet) prints the ids alone, one a line, as 'rekey rotate --from -' reads them.`,
		Example: `  rekey instances list
  rekey instances list -q --limit 10000 | rekey rotate --from - --plan
  rekey instances list --limit 1000 --after inst-123
  rekey instances list --json --limit 10000 | jq -r '.[] | select(.quarantined_at) | .id'`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if limit < 1 || limit > maxInstancesListed {
				return usagef("--limit must be between 1 and %d", maxInstancesListed)
			}
			if quiet && asJSON {
				return usagef("--quiet prints ids alone and --json an array: give one of them")
			}
			if after != "" {
				if err := checkInstanceArg("rekey instances list --after", after); err != nil {
					return err
				}
			}
			return withProducer(c.Context(), env, "instances", func(a *app) error {
				return listInstances(c.Context(), env, a, after, limit, asJSON, quiet)
			})
		},
	}
	c.Flags().IntVar(&limit, "limit", 100, "list at most this many instances")
	c.Flags().StringVar(&after, "after", "", "list the instances after this one (the last line of a page); empty lists the first page, as a paging loop starting with none passes it")
	c.Flags().BoolVar(&asJSON, "json", false, "print the instances as a JSON array")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print the instance ids only, one a line")
	return c
}

// maxInstancesListed bounds --limit: a page is read and printed at once.
const maxInstancesListed = 10000

// listInstances prints a page of the live instances as a table, as a
// JSON array or (quiet) as their ids alone, on stdout; how many there are,
// and how to list the next page, on stderr.
func listInstances(ctx context.Context, env *environ, a *app, after string, limit int, asJSON, quiet bool) error {
	page, err := a.store.InstancesAfter(ctx, after, int64(limit))
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("--after %s: no live instance has that id (deprovisioned since, or never registered)", printable.Text(after))
	}
	if err != nil {
		return err
	}
	global, _ := fleetWindow(ctx, a) // a bad value is the scheduler's to refuse
	for i := range page.Instances {
		page.Instances[i].NextRotationAt = page.Instances[i].NextRotation(global)
	}
	if asJSON {
		list := page.Instances
		if list == nil {
			list = []store.Instance{}
		}
		if err := writeJSON(env.stdout, list); err != nil {
			return err
		}
	} else if quiet {
		var ids strings.Builder
		for _, in := range page.Instances {
			ids.WriteString(in.ID + "\n")
		}
		if _, err := io.WriteString(env.stdout, ids.String()); err != nil {
			return err
		}
	} else if len(page.Instances) > 0 {
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "INSTANCE\tAPI\tREGISTERED\tLAST ROTATED\tNEXT ROTATION\tSTATE")
		for _, in := range page.Instances {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", in.ID, in.APIVersion, timeOrNone(in.RegisteredAt),
				timeOrNone(in.LastRotatedAt), timeOrNone(in.NextRotationAt), instanceState(in))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	switch {
	case page.Total == 0:
		fmt.Fprintln(env.stderr, "no live instance is registered")
	case len(page.Instances) == 0:
		fmt.Fprintf(env.stderr, "no live instance after %s (%s in all)\n", after, instances(int(page.Total)))
	case page.More:
		fmt.Fprintf(env.stderr, "%d of %s listed, there are more: --after %s lists the next ones\n",
			len(page.Instances), instances(int(page.Total)), page.Instances[len(page.Instances)-1].ID)
	default:
		fmt.Fprintf(env.stderr, "%d of %s listed\n", len(page.Instances), instances(int(page.Total)))
	}
	return nil
}

// instanceState is where a live instance stands, as instances list
// prints it.
func instanceState(in store.Instance) string {
	switch {
	case in.InFlight != "":
		return "rotating"
	case !in.QuarantinedAt.IsZero():
		return "quarantined"
	case in.ScheduleOptOut:
		return "opted out"
	case in.NextRotationAt.IsZero():
		return "unscheduled"
	}
	return "scheduled"
}

func newInstancesImportCmd(env *environ) *cobra.Command {
	var includeDeprovisioned, asJSON bool
	c := &cobra.Command{
		Use:   "import FILE",
		Short: "Register instances from JSON lines (- for stdin)",
		Long: `Registers one instance per JSON line of FILE (- for stdin), each like the API's PUT body plus "id".
Blank lines, lines starting with # and a byte order mark at the start of FILE are skipped. Each bad
line is reported by number; the command exits 1 when any line was refused (the others are
registered). A line naming an instance an earlier line registered, with other values or with its id
in another case, is refused, naming that line; one repeating it exactly registers again.

An instance rekey knows as deprovisioned is skipped, and counted: a file imported again must not
bring back add-ons their partner deleted since, with the credentials rekey rotated away since made
current again. --include-deprovisioned registers them again, as a PUT would.

A line naming, for a live instance, another current_credential_id than the one rekey holds (and
never held for it) is registered, its current credential left as it is, as a registration leaves
it: stderr says so, naming the one kept, which the instance's first rotation revokes after the grace.

--json prints the counts, each refused line (its number, the instance id when it has one, and why)
and each line whose current credential was kept ("current_kept") as one JSON object; the lines are
reported on stderr as well.`,
		Example: `  rekey instances import instances.jsonl
  echo '{"id":"inst-1","api_version":"v1","heroku_id":"app123@heroku.com","config_vars":["MYADDON_URL"]}' | rekey instances import -
  rekey instances import --include-deprovisioned reprovisioned.jsonl
  rekey instances import instances.jsonl --json | jq '.refused[].line'`,
		Args: exactArgs(1, "one FILE (- for stdin)"),
		RunE: func(c *cobra.Command, args []string) error {
			return withProducer(c.Context(), env, "instances", func(a *app) error {
				return importInstances(c.Context(), env, a, args[0], includeDeprovisioned, asJSON)
			})
		},
	}
	c.Flags().BoolVar(&includeDeprovisioned, "include-deprovisioned", false,
		"register instances rekey knows as deprovisioned again instead of skipping them")
	c.Flags().BoolVar(&asJSON, "json", false, "print the counts and the refused lines as JSON")
	return c
}

func newInstancesShowCmd(env *environ) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "show ID",
		Short: "Show an instance, its credentials waiting for revocation and recent events",
		Long: `Shows an instance's state, the credentials waiting for revocation and its 20 most recent audit
events, newest first. Never a secret.`,
		Example: `  rekey instances show inst-123
  rekey instances show inst-123 --json | jq .previous`,
		Args: exactArgs(1, "one instance ID"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkShowID(args[0]); err != nil {
				return err
			}
			return withProducer(c.Context(), env, "instances", func(a *app) error { return showInstance(c.Context(), env, a, args[0], asJSON) })
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the instance as JSON")
	return c
}

// checkShowID refuses what is no instance id as a wrong call (exit 2), as
// rotate does: an INSTANCE/CREDENTIAL pair, as holds, revocations and
// events print them, gets the command that shows the instance.
func checkShowID(id string) error { return checkInstanceArg("rekey instances show", id) }

// checkInstanceArg refuses, as a wrong call (exit 2), an argument of the
// command cmd ("rekey instances show") that is no instance id, naming the
// instance when it is an INSTANCE/CREDENTIAL pair.
func checkInstanceArg(cmd, id string) error {
	verb := cmd[strings.LastIndexByte(cmd, ' ')+1:]
	inst, _, ok := strings.Cut(id, "/")
	switch {
	case !ok && store.ValidID(id):
		return nil
	case ok && store.ValidID(inst):
		return usagef("%q is INSTANCE/CREDENTIAL, but %s takes an instance id: %s %s", id, verb, cmd, inst)
	}
	return usagef("%q is not an instance id: %s takes one, such as inst-123", id, verb)
}

// maxImportLine is the longest line instances import reads: an instance's
// JSON, its tokens and current config included, is a few KiB.
const maxImportLine = 1 << 20

// importInstances registers one instance per JSON line, reporting each bad
// line by number; it fails when any line failed. Instances rekey knows as
// deprovisioned are skipped and counted unless includeDeprovisioned.
// importOutput is what instances import --json prints.
type importOutput struct {
	Registered           int           `json:"registered"`
	SkippedDeprovisioned int           `json:"skipped_deprovisioned"`
	Refused              []refusedLine `json:"refused"`
	// CurrentKept are the registered lines naming, for a live instance,
	// another current credential than the one rekey keeps.
	CurrentKept []keptLine `json:"current_kept"`
}

// keptLine is a line instances import registered without the current
// credential it named: the instance is live, and a registration leaves its
// current credential (current) alone whatever it names. The id the line
// named is not repeated: it may be a secret pasted in the wrong column.
type keptLine struct {
	Line       int    `json:"line"`
	InstanceID string `json:"instance_id"`
	Current    string `json:"current"`
}

// refusedLine is one line instances import refused.
type refusedLine struct {
	Line       int    `json:"line"`
	InstanceID string `json:"instance_id,omitempty"`
	Reason     string `json:"reason"`
}

func importInstances(ctx context.Context, env *environ, a *app, path string, includeDeprovisioned, asJSON bool) error {
	r, err := openInput(ctx, env, path)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := checkProcessesKeys(ctx, a, "nothing was imported"); err != nil {
		return err
	}
	hc, err := a.heroku(nil, nil)
	if err != nil {
		return err
	}
	reg := a.registry(hc)
	sc := bufio.NewScanner(fleet.SkipBOM(r)) // a file saved by a Windows editor starts with one
	sc.Buffer(make([]byte, 64<<10), maxImportLine)
	ok, bad, skipped := 0, 0, 0
	imported := importedLines{}
	out := importOutput{Refused: []refusedLine{}, CurrentKept: []keptLine{}}
	refuse := func(n int, id, reason string) {
		// The file's text (an id, a field name a JSON error quotes) is
		// escaped on stderr, and kept exact in --json.
		if id == "" {
			fmt.Fprintf(env.stderr, "rekey: line %d: %s\n", n, printable.Text(reason))
		} else {
			fmt.Fprintf(env.stderr, "rekey: line %d (%s): %s\n", n, printable.Text(id), printable.Text(reason))
		}
		out.Refused = append(out.Refused, refusedLine{Line: n, InstanceID: id, Reason: reason})
		bad++
	}
	// stop ends an import the context stopped at line n, after printing
	// what was done (with --json, as its summary on stdout); line says
	// what became of line n itself.
	stop := func(n int, line string, err error) error {
		out.Registered, out.SkippedDeprovisioned = ok, skipped
		if asJSON {
			_ = writeJSON(env.stdout, out)
		}
		return &stoppedError{done: fmt.Sprintf("%s registered and %s refused before line %d; %s, "+
			"and those after it were not read", instances(ok), count(bad, "line", "lines"), n, line), err: err}
	}
	// unreachable ends an import whose storage failed at line n: each line
	// after it would fail the same way, after go-redis's retries and dial
	// timeouts, and be called refused for it.
	unreachable := func(n int, line string, err error) error {
		out.Registered, out.SkippedDeprovisioned = ok, skipped
		if asJSON {
			_ = writeJSON(env.stdout, out)
		}
		return fmt.Errorf("line %d: rekey's storage (Redis) could not be reached (%w); %s registered and %s refused before "+
			"line %d; %s, and those after it were not read (importing the file again once Redis answers is safe)",
			n, err, instances(ok), count(bad, "line", "lines"), n, line)
	}
	n := 1
	for ; sc.Scan(); n++ {
		if err := ctx.Err(); err != nil {
			return stop(n, fmt.Sprintf("line %d was not registered", n), err)
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var in registry.Input
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			refuse(n, "", fmt.Sprintf("not a JSON instance: %v", err))
			continue
		}
		if rest := strings.TrimSpace(line[dec.InputOffset():]); rest != "" {
			refuse(n, in.ID, "more than the JSON instance on the line: one instance per line")
			continue
		}
		// As the API refuses them: a repeated key, or one that names a
		// field only without case, means one thing to encoding/json (the
		// last, the field) and another to the tool that wrote the file.
		if err := jsonkey.Check([]byte(line), reflect.TypeOf(in)); err != nil {
			refuse(n, "", err.Error()) // which id the line names is what is in doubt
			continue
		}
		if why := imported.conflict(n, in); why != "" {
			refuse(n, in.ID, why)
			continue
		}
		if !includeDeprovisioned {
			gone, err := deprovisioned(ctx, a, in.ID)
			if err != nil && ctx.Err() != nil {
				return stop(n, fmt.Sprintf("line %d was not registered", n), err)
			}
			if health.RedisUnreachable(err) {
				return unreachable(n, fmt.Sprintf("line %d was not registered", n), err)
			}
			if err != nil {
				refuse(n, in.ID, err.Error())
				continue
			}
			if gone {
				skipped++
				continue
			}
		}
		kept := keptCurrent(ctx, a, in)
		if err := reg.Put(ctx, in); err != nil && ctx.Err() != nil {
			// The registration may have been stored before the context
			// ended, so its error (a read the context cut short) is no
			// reason to call the line refused.
			return stop(n, fmt.Sprintf("line %d may or may not have been registered (importing the file again is safe: "+
				"registering an instance again changes nothing it already has)", n), err)
		} else if _, exchange := errors.AsType[*registry.ExchangeError](err); health.RedisUnreachable(err) && !exchange {
			// Heroku's OAuth endpoint out of reach is the line's grant
			// refused; Redis out of reach is every line's.
			return unreachable(n, fmt.Sprintf("line %d may or may not have been registered", n), err)
		} else if err != nil {
			refuse(n, in.ID, err.Error())
			continue
		}
		imported.add(n, in)
		ok++
		if kept != "" {
			fmt.Fprintf(env.stderr, "rekey: line %d (%s): its current_credential_id was not taken: the instance is registered "+
				"already, with current credential %s, which a registration leaves alone (a rotation replaces it, and revokes it "+
				"after the grace); if its apps do not hold %s, make sure nothing else does before it rotates\n",
				n, in.ID, kept, kept)
			out.CurrentKept = append(out.CurrentKept, keptLine{Line: n, InstanceID: in.ID, Current: kept})
		}
	}
	out.Registered, out.SkippedDeprovisioned = ok, skipped
	if err := sc.Err(); err != nil && ctx.Err() != nil {
		return stop(n, fmt.Sprintf("line %d was not read", n), err)
	} else if err != nil {
		if asJSON {
			_ = writeJSON(env.stdout, out)
		}
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line %d is longer than %d KiB, which no instance's line is", n, maxImportLine>>10)
		}
		return fmt.Errorf("read %s: %w; %s registered and %s refused before it, and it and the lines after it were "+
			"not read (importing the file again is safe)", path, err, instances(ok), count(bad, "line", "lines"))
	}
	if asJSON {
		if err := writeJSON(env.stdout, out); err != nil {
			return err
		}
	} else if err := writeImported(env.stdout, out); err != nil {
		return err
	}
	if bad > 0 {
		return fmt.Errorf("%s refused", count(bad, "line", "lines"))
	}
	return nil
}

// writeImported prints instances import's counts as text, in one write
// whose error it returns.
func writeImported(w io.Writer, out importOutput) error {
	text := fmt.Sprintf("%s registered, %s refused\n", instances(out.Registered), count(len(out.Refused), "line", "lines"))
	if len(out.CurrentKept) > 0 {
		text += fmt.Sprintf("%s another current credential than the one rekey holds, which was kept (said above)\n",
			count(len(out.CurrentKept), "line named", "lines named"))
	}
	if out.SkippedDeprovisioned > 0 {
		text += fmt.Sprintf("%s skipped (--include-deprovisioned registers them again)\n",
			count(out.SkippedDeprovisioned, "deprovisioned instance", "deprovisioned instances"))
	}
	_, err := io.WriteString(w, text)
	return err
}

// keptCurrent returns the current credential rekey keeps for in's live
// instance when in names another that rekey has never known for it (a
// corrected file: one it knew is one rotated away since, and the file a
// stale one); "" otherwise, also when it cannot tell. The registration
// leaves a live instance's current credential alone.
func keptCurrent(ctx context.Context, a *app, in registry.Input) string {
	if in.CurrentCredentialID == "" || !store.ValidID(in.ID) || !store.ValidID(in.CurrentCredentialID) {
		return ""
	}
	inst, err := a.store.Instance(ctx, in.ID)
	if err != nil || inst.Deprovisioned() || inst.CurrentCredential == "" || inst.CurrentCredential == in.CurrentCredentialID {
		return ""
	}
	if _, err := a.store.Credential(ctx, in.ID, in.CurrentCredentialID); !errors.Is(err, store.ErrNotFound) {
		return ""
	}
	return inst.CurrentCredential
}

// deprovisioned reports whether rekey knows id as deprovisioned; an id it
// does not know is not.
func deprovisioned(ctx context.Context, a *app, id string) (bool, error) {
	if !store.ValidID(id) {
		return false, nil // the registration refuses it, with the reason
	}
	in, err := a.store.Instance(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil && in.Deprovisioned(), err
}

// stdinUntil reads r until ctx ends, then fails with ctx's cause: reading
// a terminal (`rekey rotate --from -` typed without a pipe) or a pipe does
// not end on a signal, so Ctrl-C would wait for Enter or ^D, or for the
// producer to close the pipe, which one that outlives the signal (another
// process group's, or a process sent `kill -INT` alone) never did. It reads
// r only when asked, as r itself would be read, so a line is taken when
// the command reaches it, not ahead of it; what a read left waiting on r
// would have returned is dropped, and that read ends with the process.
func stdinUntil(ctx context.Context, r io.Reader) io.Reader {
	return &ctxReader{ctx: ctx, r: r}
}

// ctxReader is stdinUntil's reader. It is not safe for concurrent use.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	// pending is the result of a read of r still under way, nil when none.
	pending chan readResult
}

type readResult struct {
	b   []byte
	err error
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if c.ctx.Err() != nil {
		return 0, context.Cause(c.ctx)
	}
	if c.pending == nil {
		c.pending = make(chan readResult, 1)
		buf := make([]byte, len(p))
		go func(done chan<- readResult) {
			n, err := c.r.Read(buf)
			done <- readResult{b: buf[:n], err: err}
		}(c.pending)
	}
	select {
	case res := <-c.pending:
		c.pending = nil
		return copy(p, res.b), res.err
	case <-c.ctx.Done():
		return 0, context.Cause(c.ctx)
	}
}

func openInput(ctx context.Context, env *environ, path string) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(stdinUntil(ctx, env.stdin)), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	// A directory opens, and its first read fails with an error naming
	// it, which the caller's own "read PATH" named a second time.
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		_ = f.Close()
		return nil, &fs.PathError{Op: "read", Path: path, Err: syscall.EISDIR}
	}
	return f, nil
}

// instanceView is what `rekey instances show` prints: the instance, its
// credentials waiting for revocation and its recent audit events.
type instanceView struct {
	store.Instance
	Previous []store.Revocation `json:"previous"`
	// Unconfirmed are credentials kept valid because a push of each had no
	// clear answer (store.Unconfirmed).
	Unconfirmed []store.UnconfirmedCredential `json:"unconfirmed"`
	Events      []store.Event                 `json:"events"`
	// Holds are the previous credentials whose revocation waits because
	// they are still in use (rekey holds list).
	Holds []store.Hold `json:"holds"`
}

func showInstance(ctx context.Context, env *environ, a *app, id string, asJSON bool) error {
	in, err := a.store.Instance(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("instance %s is not registered", id)
	}
	if err != nil {
		return err
	}
	global, _ := fleetWindow(ctx, a) // a bad value is the scheduler's to refuse
	in.NextRotationAt = in.NextRotation(global)
	v := instanceView{Instance: in}
	if v.Previous, err = a.store.Previous(ctx, id); err != nil {
		return err
	}
	if v.Unconfirmed, err = a.store.Unconfirmed(ctx, id); err != nil {
		return err
	}
	if v.Events, err = a.store.Events(ctx, id, 20); err != nil {
		return err
	}
	if v.Holds, err = a.store.InstanceHolds(ctx, id); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(env.stdout, v)
	}
	return writeInstance(env.stdout, v, global)
}

// writeInstance prints an instance for people: one field a line, then its
// previous credentials and its events. Stored text (an error, a reason, an
// event's detail) is outside text and passes printable.Text.
// global is REKEY_MAINTENANCE_WINDOW's window, which an instance without
// one of its own rotates in. It prints in one write, and returns its error.
func writeInstance(out io.Writer, v instanceView, global *store.Window) error {
	w := &strings.Builder{}
	row := func(label, format string, a ...any) {
		fmt.Fprintf(w, "%-21s %s\n", label+":", printable.Text(fmt.Sprintf(format, a...)))
	}
	row("instance", "%s (%s)", v.ID, v.APIVersion)
	if v.HerokuID != "" {
		row("heroku id", "%s", v.HerokuID)
	}
	row("config vars", "%s", strings.Join(v.ConfigVars, ", "))
	row("private space", "%s", yesNo(v.PrivateSpace))
	row("registered", "%s", timeOrNone(v.RegisteredAt))
	if !v.DeprovisionedAt.IsZero() {
		row("deprovisioned", "%s", timeOrNone(v.DeprovisionedAt))
	}
	row("current credential", "%s since %s", orNone(v.CurrentCredential), timeOrNone(v.CurrentSince))
	row("rotation in flight", "%s", orNone(v.InFlight))
	row("last rotated", "%s", timeOrNone(v.LastRotatedAt))
	if v.LastError != "" {
		row("last error", "%s at %s: %s", v.LastErrorCode, timeOrNone(v.LastErrorAt), v.LastError)
	}
	row("schedule", "%s, window %s, next rotation %s", map[bool]string{true: "opted out", false: "scheduled"}[v.ScheduleOptOut],
		instanceWindowText(v.Window, global), timeOrNone(v.NextRotationAt))
	if !v.QuarantinedAt.IsZero() {
		row("quarantined", "since %s: %s", timeOrNone(v.QuarantinedAt), v.QuarantineReason)
	}
	row("waiting revocation", "%d", len(v.Previous))
	// None of these is revoked yet (a revoked credential leaves the list):
	// each shows when its revocation is due, which may have passed for one
	// held or dead-lettered.
	for _, p := range v.Previous {
		fmt.Fprintf(w, "  %s revoke due at %s\n", printable.Text(p.CredentialID), timeOrNone(p.RevokeAt))
	}
	if len(v.Unconfirmed) > 0 {
		// Heroku may hold these (a push of each went unanswered): never
		// revoked until a later rotation has replaced them (I1).
		row("kept unconfirmed", "%d (Heroku may hold them: revoked after the grace once a later rotation replaces them)", len(v.Unconfirmed))
		for _, u := range v.Unconfirmed {
			fmt.Fprintf(w, "  %s since %s, rotation %s\n", printable.Text(u.CredentialID), timeOrNone(u.Since), printable.Text(orNone(u.RotationID)))
		}
	}
	row("recent events", "%d", len(v.Events))
	for _, e := range v.Events {
		fmt.Fprintln(w, printable.Text(eventLine(e)))
	}
	_, err := io.WriteString(out, w.String())
	return err
}

// eventLine is one line of an instance's recent events: its time, its type
// in a column, then its rotation and its detail, each only when it has one,
// so that an event of no rotation (revoke_expedited) starts its detail where
// the others start their rotation id.
func eventLine(e store.Event) string {
	var rest []string
	for _, f := range []string{e.RotationID, eventDetail(e)} {
		if f != "" {
			rest = append(rest, f)
		}
	}
	line := fmt.Sprintf("  %s  %-22s %s", timeOrNone(e.At), e.Type, strings.Join(rest, " "))
	return strings.TrimRight(line, " ")
}

// eventDetail is an event's detail as the text shows it: revoke_scheduled's
// revoke time, which the store keeps in Unix milliseconds, as a time
// (--json keeps the number).
func eventDetail(e store.Event) string {
	if e.Type == store.EventRevokeScheduled {
		if ms, err := strconv.ParseInt(e.Detail, 10, 64); err == nil && ms > 0 {
			return "revoke at " + timeOrNone(time.UnixMilli(ms))
		}
	}
	return e.Detail
}

func yesNo(b bool) string { return map[bool]string{true: "yes", false: "no"}[b] }

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// checkProcessesKeys refuses, saying that nothing was done, when REKEY_ENCRYPTION_KEYS
// opens no fingerprint key, or, before there is one, is not what running
// processes hold or what stored values were sealed with: this command's
// keys are not the fleet's, and what it sealed (OAuth tokens) no worker
// could read.
func checkProcessesKeys(ctx context.Context, a *app, nothing string) error {
	err := a.store.CheckSealedByTheFleet(ctx)
	why := ""
	switch {
	case errors.Is(err, store.ErrFingerprintKey):
		why = "none of its keys opens the fingerprint key they sealed"
	case errors.Is(err, store.ErrNotTheFleetsKeys):
		why = strings.TrimPrefix(err.Error(), store.ErrNotTheFleetsKeys.Error()+": ")
	default:
		return err
	}
	return fmt.Errorf("REKEY_ENCRYPTION_KEYS is not the value rekey's processes use: %s, so no worker could "+
		"read what this command stores; %s. Run it with the processes' value (heroku config:get REKEY_ENCRYPTION_KEYS)",
		why, nothing)
}
