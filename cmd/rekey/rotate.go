package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/printable"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// rotateFlags are `rekey rotate`'s flags.
type rotateFlags struct {
	all          bool
	from         string
	reason       string
	grace        time.Duration
	graceSet     bool // --grace was given, 0 included
	queue        string
	skipPrevious bool
	plan         bool
	skipInvalid  bool
	wait         bool
	interval     time.Duration
	intervalSet  bool // --interval given
	asJSON       bool
	confirm      bool
	ids          []string
}

func newRotateCmd(env *environ) *cobra.Command {
	var f rotateFlags
	c := &cobra.Command{
		Use:   "rotate ID... | --all | --from FILE",
		Short: "Rotate instances, as one batch, and print the batch id",
		Long: `Requests a rotation of each instance, as one batch, and prints the batch id.

An id list (--from FILE, - for stdin) has one instance id per line, or a JSON object with
"instance_id" or "id"; blank lines, lines starting with # and a byte order mark at the start of the
list are skipped. Any malformed, unknown, deprovisioned or repeated line is reported by number, and
nothing is enqueued unless --skip-invalid is given (--json then lists the lines left out).

Each rotation restarts the customer's app, so --all, and more than 5 instances however they are
named (arguments or --from), show the plan's summary and ask on a terminal, and need --confirm off
one (nothing is enqueued without it). Without --queue, one instance goes on the interactive queue,
up to 5 on the default queue, and more, or --all, on the bulk queue, which is paced and which the
circuit breaker pauses.
--plan prints what would happen and changes nothing.`,
		Example: `  rekey rotate inst-123 --reason "INC-4711 leaked key"
  rekey rotate --all --plan
  rekey rotate --all --confirm --reason quarterly --wait
  rekey rotate --from ids.txt --skip-invalid --json --confirm
  grep eu- ids.txt | rekey rotate --from - --confirm`,
		RunE: func(c *cobra.Command, ids []string) error {
			f.ids = ids
			f.graceSet = c.Flags().Changed("grace")
			f.intervalSet = c.Flags().Changed("interval")
			if err := f.check(); err != nil {
				return err
			}
			return runRotate(c.Context(), env, f)
		},
	}
	fl := c.Flags()
	fl.BoolVar(&f.all, "all", false, "rotate every live instance")
	fl.StringVar(&f.from, "from", "", "read instance ids from `FILE` (- for stdin)")
	fl.StringVar(&f.reason, "reason", defaultReason, "why, for the audit trail")
	fl.DurationVar(&f.grace, "grace", 0, "grace period before old credentials are revoked (default: each instance's own); "+
		"rekey revocations expedite revokes them sooner")
	fl.StringVar(&f.queue, "queue", "", "interactive, default or bulk (default: interactive for one instance, default for up to 5, bulk for more and for --all); "+
		"interactive takes at most 10 instances and never --all: it is for customers' own rotations")
	fl.BoolVar(&f.skipPrevious, "skip-if-previous", false, "skip instances whose previous credential still waits for revocation")
	fl.BoolVar(&f.plan, "plan", false, "print what would happen and change nothing")
	fl.BoolVar(&f.skipInvalid, "skip-invalid", false, "rotate the valid ids even when some are malformed, unknown, deprovisioned or repeated")
	fl.BoolVar(&f.wait, "wait", false, "follow the batch until it is done")
	fl.DurationVar(&f.interval, "interval", 2*time.Second, "with --wait, how often to look at the batch")
	fl.BoolVar(&f.asJSON, "json", false, "print the result (or the plan) as JSON")
	fl.BoolVar(&f.confirm, "confirm", false, "go ahead without asking (required off a terminal for --all and long --from lists)")
	return c
}

// defaultReason is a rotation's reason when --reason is left out or empty.
const defaultReason = "operator request"

// check refuses flag combinations that make no sense.
func (f *rotateFlags) check() error {
	sources := 0
	for _, set := range []bool{f.all, f.from != "", len(f.ids) > 0} {
		if set {
			sources++
		}
	}
	switch {
	case sources != 1:
		return usagef("name instance ids, or --all, or --from FILE (one of them)")
	case f.queue != "" && f.queue != tasks.QueueInteractive && f.queue != tasks.QueueDefault && f.queue != tasks.QueueBulk:
		return usagef("--queue %q: use interactive, default or bulk", f.queue)
	case f.grace < 0:
		return usagef("--grace must not be negative")
	case f.graceSet && f.grace == 0:
		return usagef("--grace 0 would not revoke the old credentials at once but leave each instance its own grace; " +
			"leave --grace out for that, or revoke them now, after the rotation, with 'rekey revocations expedite INSTANCE_ID'")
	case f.intervalSet && !f.wait:
		return errIntervalWithoutWait()
	case checkWaitInterval(f.interval) != nil:
		return checkWaitInterval(f.interval)
	case f.plan && f.wait:
		return usagef("--plan changes nothing, so there is nothing to --wait for")
	case f.plan && f.confirm:
		return usagef("--plan changes nothing, so there is nothing to --confirm")
	case f.all && f.queue == tasks.QueueInteractive:
		return errInteractiveFleet("--all")
	case len(f.reason) > tasks.MaxReasonLen:
		return usagef("--reason is longer than %d bytes", tasks.MaxReasonLen)
	case strings.ContainsFunc(f.reason, printable.Unsafe):
		// As the API refuses it: a reason is one line of text in the
		// audit trail, the batch list and the customer's dashboard.
		return usagef("--reason holds a line break, a control or a bidi character: give one line of text")
	}
	if err := fleet.CheckReason(f.reason); err != nil {
		return usagef("--%s", err)
	}
	if strings.TrimSpace(f.reason) == "" {
		f.reason = defaultReason // a script's unset $TICKET; the API, too, takes an empty reason for its default
	}
	return nil
}

// defaultQueue is the queue of a request without --queue, by how many
// distinct instances it names, however they were given (arguments, --from
// or --all): interactive for one, default for up to confirmLimit, bulk for
// more, as a fleet wave, which the pace feeder meters and the circuit
// breaker pauses.
func defaultQueue(f rotateFlags, ids int) string {
	switch {
	case f.all || ids > confirmLimit:
		return tasks.QueueBulk
	case ids == 1:
		return tasks.QueueInteractive
	}
	return tasks.QueueDefault
}

// interactiveLimit is how many instances one request may put on the
// interactive queue: its worker slots are kept for customers rotating
// their own instance (the dashboard's button), who wait for the answer.
const interactiveLimit = 10

// errInteractiveFleet refuses a fleet-sized request on the interactive
// queue, which would take the slots customers' own rotations wait for.
func errInteractiveFleet(what string) error {
	return usagef("--queue interactive is for customers' own rotations, not for %s: use --queue bulk "+
		"(the default for --all and for more than %d instances); at most %d instances may go on the interactive queue at once",
		what, confirmLimit, interactiveLimit)
}

func runRotate(ctx context.Context, env *environ, f rotateFlags) error {
	a, err := openProducer(ctx, env, "rotate")
	if err != nil {
		return err
	}
	defer a.Close()
	p := a.producer()
	if err := fleet.CheckGrace(f.grace, p.MinGrace(), p.MaxGrace()); err != nil {
		return graceRefused(err) // as the request itself would be refused, plan or not
	}
	ids, problems, err := rotationIDs(ctx, env, a, f)
	if err != nil {
		return err
	}
	if f.queue == "" {
		f.queue = defaultQueue(f, len(ids))
	}
	if f.queue == tasks.QueueInteractive && len(ids) > interactiveLimit {
		return errInteractiveFleet(instances(len(ids)))
	}
	refused := reportProblems(env.stderr, f, problems, len(ids))
	if refused != nil {
		return refused // refused whole: no plan, since nothing would happen
	}
	if len(ids) == 0 {
		if f.asJSON && len(problems) > 0 { // every id left out by --skip-invalid: --json still lists them
			out := any(newRotateOutput(fleet.Result{}, f.queue, problems, nil))
			if f.plan {
				out = newPlanOutput(fleet.Plan{Queue: f.queue}, f.grace, problems)
			}
			_ = writeJSON(env.stdout, out)
		}
		return errors.New("no instance to rotate") // the plan, too: nothing would happen
	}
	if f.plan {
		return printPlan(ctx, env, a, f, ids, problems)
	}
	if !f.confirm && needsConfirm(f, len(ids)) {
		if err := confirmRotation(ctx, env, a, f, ids); err != nil {
			return err
		}
	}
	return rotate(ctx, env, a, f, ids, problems)
}

// graceRefused is the refusal of a --grace outside the floor and the
// ceiling: a usage error (exit 2), as a negative --grace or --grace 0 is,
// since it is refused before anything is read or enqueued. Below the
// floor, it adds the way to revoke old credentials sooner than the floor
// allows.
func graceRefused(err error) error {
	var ge *fleet.GraceError
	if errors.As(err, &ge) && ge.Grace < ge.Floor {
		return usagef("--%s; to revoke old credentials sooner, rotate without --grace, then revoke them now with "+
			"'rekey revocations expedite INSTANCE_ID'", err)
	}
	return usagef("--%s", err)
}

// openProducer opens what a command that only reads and enqueues needs.
func openProducer(ctx context.Context, env *environ, service string) (*app, error) {
	cfg, err := loadConfig(env)
	if err != nil {
		return nil, err
	}
	if err := cfg.RequireProducer(); err != nil {
		return nil, err
	}
	return openApp(ctx, cfg, newLogger(env, cfg, service, true))
}

// withProducer opens what a command that only reads and enqueues needs,
// runs fn on it and closes it.
func withProducer(ctx context.Context, env *environ, service string, fn func(*app) error) error {
	a, err := openProducer(ctx, env, service)
	if err != nil {
		return err
	}
	defer a.Close()
	return fn(a)
}

// rotationIDs returns the ids to rotate, each once, and the problems of
// the ones that cannot be.
func rotationIDs(ctx context.Context, env *environ, a *app, f rotateFlags) ([]string, []fleet.Problem, error) {
	switch {
	case f.all:
		ids, err := allInstanceIDs(ctx, a.store)
		return ids, nil, err
	case f.from != "":
		return idsFromFile(ctx, env, a.store, f.from)
	}
	lines := make([]fleet.Line, 0, len(f.ids))
	var malformed []fleet.Problem
	for i, id := range f.ids {
		if !store.ValidID(id) {
			malformed = append(malformed, fleet.Problem{Line: i + 1, Kind: fleet.ProblemMalformed,
				Msg: fmt.Sprintf("%q is not a valid instance id", id)})
			continue
		}
		lines = append(lines, fleet.Line{N: i + 1, ID: id})
	}
	ids, problems, err := fleet.Screen(ctx, a.store, lines)
	problems = append(malformed, withoutDuplicates(problems)...) // naming an id twice on the command line is harmless
	fleet.SortProblems(problems)
	return ids, problems, err
}

func idsFromFile(ctx context.Context, env *environ, st *store.Store, path string) ([]string, []fleet.Problem, error) {
	r, err := openInput(ctx, env, path)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	var lines []fleet.Line
	var malformed []fleet.Problem
	in, err := refuseTable(path, r)
	if err == nil {
		if lines, malformed, err = fleet.ReadIDs(in); err != nil {
			err = fmt.Errorf("%s: %w", path, err)
		}
	}
	if err != nil && ctx.Err() != nil {
		return nil, nil, &interruptedError{msg: "interrupted: " + path + " was not read whole, and nothing was enqueued"}
	}
	if err != nil {
		return nil, nil, err
	}
	ids, problems, err := fleet.Screen(ctx, st, lines)
	problems = append(malformed, problems...)
	fleet.SortProblems(problems)
	return ids, problems, err
}

// refuseTable reads the first line of an id list and refuses the list
// (exit 2) when it is the header of the table 'rekey instances list' prints,
// which would otherwise be refused line by line, every row holding more than an
// id. It returns a reader of the whole list, that line included.
func refuseTable(path string, r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(fleet.SkipBOM(r), 4096)
	first, err := br.ReadSlice('\n')
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("%s: read id list: %w", path, err)
	}
	if f := strings.Fields(string(first)); len(f) > 1 && f[0] == "INSTANCE" && f[1] == "API" {
		return nil, usagef("--from %s: its first line is the header of the table 'rekey instances list' prints, "+
			"whose lines are not ids alone: 'rekey instances list -q' prints the ids alone, one a line, as --from reads them",
			printable.Text(path))
	}
	return io.MultiReader(bytes.NewReader(bytes.Clone(first)), br), nil
}

func withoutDuplicates(ps []fleet.Problem) []fleet.Problem {
	out := ps[:0]
	for _, p := range ps {
		if p.Kind != fleet.ProblemDuplicate {
			out = append(out, p)
		}
	}
	return out
}

// allInstanceIDs reads every live instance id, a page at a time.
func allInstanceIDs(ctx context.Context, st *store.Store) ([]string, error) {
	var ids []string
	err := st.InstanceIDs(ctx, 5000, func(page []string) error {
		ids = append(ids, page...)
		return nil
	})
	return ids, err
}

// reportProblems prints each problem and returns the refusal, unless
// --skip-invalid accepts leaving them out.
func reportProblems(w io.Writer, f rotateFlags, problems []fleet.Problem, valid int) error {
	where := "line"
	if len(f.ids) > 0 {
		where = "argument"
	}
	for _, p := range problems {
		fmt.Fprintf(w, "rekey: %s %d: %s\n", where, p.Line, p.Msg)
	}
	if len(problems) == 0 {
		return nil
	}
	n := count(len(problems), where, where+"s")
	if f.skipInvalid {
		fmt.Fprintf(w, "rekey: %s left out (--skip-invalid)\n", n)
		return nil
	}
	var err error
	if valid == 0 {
		err = fmt.Errorf("%s cannot be rotated (above) and no other is given, so nothing is enqueued", n)
	} else {
		them, ones := "them", "ones"
		if len(problems) == 1 {
			them = "it"
		}
		if valid == 1 {
			ones = "one"
		}
		err = fmt.Errorf("%s cannot be rotated (above), so nothing is enqueued; fix %s, or pass --skip-invalid to rotate the %d valid %s",
			n, them, valid, ones)
	}
	if where == "argument" && slices.ContainsFunc(problems, func(p fleet.Problem) bool { return p.Kind == fleet.ProblemMalformed }) {
		// An argument that is no instance id at all is a wrong call (exit
		// 2), as `instances show` takes one; an unknown id is not.
		return usagef("%v", err)
	}
	return err
}

// rotate requests the rotations and, with --wait, follows the batch;
// --json lists the problems --skip-invalid left out. A request that did
// all it was asked but left instances out at the REKEY_MAX_PREVIOUS cap
// ends in a *leftOutError: those instances keep the credential the
// operator meant to replace.
func rotate(ctx context.Context, env *environ, a *app, f rotateFlags, ids []string, problems []fleet.Problem) error {
	start := time.Now()
	res, err := a.producer().Rotate(ctx, fleet.Request{InstanceIDs: ids,
		Reason: f.reason, Grace: f.grace, Queue: f.queue, SkipIfPrevious: f.skipPrevious,
		SkipGone: skipsGone(f)})
	if res.BatchID == "" {
		return err
	}
	err = requestAndFollow(ctx, env, a, f, res, err, problems, start)
	if err == nil && res.Refused > 0 {
		return &leftOutError{n: res.Refused}
	}
	return err
}

// requestAndFollow prints what the request enqueued and, with --wait,
// follows its batch; err is the request's own failure, if any.
func requestAndFollow(ctx context.Context, env *environ, a *app, f rotateFlags, res fleet.Result, err error,
	problems []fleet.Problem, start time.Time) error {
	var printErr error
	if !f.asJSON {
		printErr = writeRotated(env.stdout, res, f.queue, graceText(f, a.cfg, readRunning(ctx, a.store).graces()), time.Since(start))
	}
	warnRefused(env.stderr, res)
	warnJoinedGrace(env.stderr, f, res)
	warnUnpaced(ctx, env.stderr, a, f.queue, res.Enqueued)
	var pause *pauseWatch
	switch {
	case f.queue != tasks.QueueBulk:
		if f.wait && err == nil {
			pause = newWorkerWatch(a) // says when no worker runs
		}
	case f.wait && err == nil:
		pause = newPauseWatch(a) // says what --wait waits for
	default:
		warnBulkPaused(ctx, env.stderr, a, res.Enqueued)
	}
	if err != nil {
		if f.asJSON {
			_ = writeJSON(env.stdout, newRotateOutput(res, f.queue, problems, nil))
		}
		if ctx.Err() != nil {
			return &stoppedError{done: fmt.Sprintf("batch %s is incomplete: the %d rotations enqueued before the interruption "+
				"keep running; requesting the same instances again is safe", res.BatchID, res.Enqueued), err: err}
		}
		return fmt.Errorf("batch %s is incomplete; requesting the same instances again is safe: %w", res.BatchID, err)
	}
	if printErr != nil {
		// The rotations are enqueued, and the line that names their
		// batch is lost: the error names it, on stderr.
		return fmt.Errorf("batch %s is enqueued, but its line could not be printed: %w", res.BatchID, printErr)
	}
	switch {
	case f.asJSON && f.wait:
		b, err := watchBatch(ctx, env, a.store, res.BatchID, f.interval, false, pause)
		if err != nil {
			return err
		}
		if err := writeJSON(env.stdout, newRotateOutput(res, f.queue, problems, &b)); err != nil {
			return err
		}
		return batchFailed(b)
	case f.asJSON:
		return writeJSON(env.stdout, newRotateOutput(res, f.queue, problems, nil))
	case f.wait:
		return followBatch(ctx, env, a.store, res.BatchID, f.interval, false, pause)
	}
	fmt.Fprintf(env.stderr, "follow it with: rekey batches show %s --wait\n", res.BatchID)
	return nil
}

// writeRotated prints the outcome of a rotation request on one line, and
// the grace on the next, in one write whose error it returns.
func writeRotated(w io.Writer, res fleet.Result, queue, grace string, took time.Duration) error {
	var b strings.Builder
	fmt.Fprintf(&b, "batch %s: %d enqueued on %s, %d joined a rotation in flight, %d skipped",
		res.BatchID, res.Enqueued, queue, res.Joined, res.Skipped)
	if res.Gone > 0 {
		fmt.Fprintf(&b, ", %d gone meanwhile", res.Gone)
	}
	if res.Refused > 0 {
		fmt.Fprintf(&b, ", %d refused", res.Refused)
	}
	fmt.Fprintf(&b, " (%s)\n%s\n", took.Round(time.Millisecond), grace)
	_, err := io.WriteString(w, b.String())
	return err
}

// graceText says, on one line, the grace the rotations' old credentials
// get before they are revoked: --grace, or each instance's own, else
// REKEY_GRACE (REKEY_PRIVATE_SPACE_GRACE in a Private Space), as the worker
// chooses it (handlers.Rotate), within the floor and the ceiling. The
// workers' own settings decide, not this command's environment: running
// says what the running processes announce, when they do.
func graceText(f rotateFlags, cfg *config.Config, running announcedGraces) string {
	if f.grace > 0 {
		// The request's own bounds were checked against this command's
		// environment; the workers hold it to theirs.
		switch {
		case running.ceiling > 0 && f.grace > running.ceiling:
			return fmt.Sprintf("grace: %s asked (--grace), but the running workers' REKEY_MAX_GRACE is %s: they revoke "+
				"the old credentials after %s", printable.Duration(f.grace), printable.Duration(running.ceiling),
				printable.Duration(running.ceiling))
		case f.grace < running.floor:
			// They do not raise it to their floor but set it aside for
			// the grace a rotation without --grace gets (handlers.Rotate).
			asked := f.grace
			f.grace = 0
			return fmt.Sprintf("grace: %s asked (--grace), but the running workers' REKEY_MIN_GRACE is %s: they set it "+
				"aside for %s", printable.Duration(asked), printable.Duration(running.floor),
				strings.TrimPrefix(graceText(f, cfg, running), "grace: "))
		}
		return fmt.Sprintf("grace: %s (--grace), then the old credentials are revoked", printable.Duration(f.grace))
	}
	floor, ceiling := cfg.GraceFloor(), cfg.GraceCeiling()
	clamp := func(d time.Duration) time.Duration { return min(max(d, floor), ceiling) }
	grace, private, whose := clamp(cfg.Grace), clamp(cfg.PrivateSpaceGrace), ""
	switch {
	case running.disagree:
		whose = "; the running processes disagree on it, see their settings_mismatch"
	case running.known && (running.grace != cfg.Grace || running.private != cfg.PrivateSpaceGrace):
		// The workers' own floor is never above their REKEY_GRACE nor
		// their ceiling below either grace; only a Private Space grace
		// below their floor would be raised to it.
		grace, private, whose = running.grace, running.private, ", as the running processes have them"
	}
	return fmt.Sprintf("grace: each instance's own, else %s (REKEY_GRACE; %s in a Private Space, REKEY_PRIVATE_SPACE_GRACE%s), "+
		"then the old credentials are revoked", printable.Duration(grace), printable.Duration(private), whose)
}

// announcedGraces are REKEY_GRACE and REKEY_PRIVATE_SPACE_GRACE as the
// running processes announce them (rekey:shared_settings).
type announcedGraces struct {
	grace, private time.Duration
	// floor and ceiling are REKEY_MIN_GRACE and REKEY_MAX_GRACE as the
	// workers apply them; zero when not announced.
	floor, ceiling time.Duration
	known          bool // every process that announces them gives the same
	disagree       bool // they give different ones
}

// runningSettings are the shared settings the running processes announce
// (rekey:shared_settings), read once for what a command says of them;
// none when they cannot be read.
type runningSettings []store.SettingsAnnouncement

func readRunning(ctx context.Context, st *store.Store) runningSettings {
	live, err := st.SharedSettings(ctx)
	if err != nil {
		return nil
	}
	return live
}

// value is setting name as every running process that announces it has
// it: found false when none does, disagree true when they differ (their
// settings_mismatch lines say so).
func (rs runningSettings) value(name string) (v string, found, disagree bool) {
	return store.AnnouncedValue(rs, name)
}

// graces are the graces the running processes announce. None announced
// leaves known and disagree false.
func (rs runningSettings) graces() announcedGraces {
	names := []string{"REKEY_GRACE", "REKEY_PRIVATE_SPACE_GRACE", "REKEY_MIN_GRACE", "REKEY_MAX_GRACE"}
	d := make([]time.Duration, len(names))
	var known bool
	for i, name := range names {
		v, found, disagree := rs.value(name)
		if disagree {
			return announcedGraces{disagree: true}
		}
		if dur, err := time.ParseDuration(v); found && err == nil {
			d[i], known = dur, known || i == 0
		}
	}
	return announcedGraces{grace: d[0], private: d[1], floor: d[2], ceiling: d[3], known: known}
}

// rate is REKEY_HEROKU_RATE as every running process that announces it has
// it; 0 when none does or they disagree.
func (rs runningSettings) rate() int {
	v, _, _ := rs.value("REKEY_HEROKU_RATE")
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return n
	}
	return 0
}

// exitLeftOut is the exit status of a fleet request that left instances
// out at the REKEY_MAX_PREVIOUS cap: neither success (0), since they keep
// their current credential, nor failure (1), since the rest was enqueued.
const exitLeftOut = 3

// leftOutError is a fleet request that enqueued what it could and left n
// instances out at the REKEY_MAX_PREVIOUS cap (warnRefused named them).
// main prints it and exits exitLeftOut.
type leftOutError struct{ n int }

func (e *leftOutError) Error() string {
	return fmt.Sprintf("%s not rotated (named above), each keeping its current credential; rotate again once "+
		"their waiting credentials are revoked, or revoke those now with rekey revocations expedite", instances(e.n))
}

// warnRefused names, on stderr, the instances a limit of the store's claim
// left out of a fleet request (--all, --skip-invalid): they keep their
// current credential, which an operator rotating after a leak must know.
func warnRefused(w io.Writer, res fleet.Result) {
	var ids []string
	for _, it := range res.Items {
		if it.Status == "refused" {
			ids = append(ids, it.InstanceID)
		}
	}
	if len(ids) == 0 {
		return
	}
	shown := strings.Join(ids[:min(len(ids), 10)], ", ")
	if len(ids) > 10 {
		shown += fmt.Sprintf(" and %d more", len(ids)-10)
	}
	fmt.Fprintf(w, "warning: %s not rotated and keeping their current credential: each already has as many superseded "+
		"credentials waiting for revocation as REKEY_MAX_PREVIOUS allows; rotate them once those are revoked "+
		"(rekey revocations expedite revokes them now): %s\n", instances(len(ids)), shown)
}

// warnJoinedGrace warns, on stderr, that the rotations in flight a request
// with --grace joined keep their own grace where it is longer: a join
// lengthens a grace, never shortens one (store.Claim), so a second wave
// asking a shorter --grace than the first does not bring the revocations
// of the first's rotations forward, whatever the grace line says.
func warnJoinedGrace(w io.Writer, f rotateFlags, res fleet.Result) {
	if f.grace <= 0 || res.Joined == 0 {
		return
	}
	fmt.Fprintf(w, "warning: the %s in flight this request joined keep their own grace where it is longer than %s "+
		"(a grace is never shortened); to revoke their old credentials sooner, run "+
		"'rekey revocations expedite INSTANCE_ID' once they are done\n",
		count(res.Joined, "rotation", "rotations"), printable.Duration(f.grace))
}

// printPlan prints what the request would do.
func printPlan(ctx context.Context, env *environ, a *app, f rotateFlags, ids []string, problems []fleet.Problem) error {
	start := time.Now()
	running := readRunning(ctx, a.store)
	pl, err := plan(ctx, a, f, ids, running)
	if err != nil {
		return err
	}
	if f.asJSON {
		err = writeJSON(env.stdout, newPlanOutput(pl, f.grace, problems))
	} else {
		err = writePlan(env.stdout, pl, rateNote(a, pl.PerHour), graceText(f, a.cfg, running.graces()), time.Since(start))
	}
	if err == nil && pl.AtCap > 0 && !skipsGone(f) {
		err = fmt.Errorf("%s already have as many superseded credentials waiting as REKEY_MAX_PREVIOUS allows, so "+
			"this request would be refused whole and nothing enqueued; --skip-invalid leaves them out", instances(pl.AtCap))
	}
	return err
}

// skipsGone reports whether the request leaves out the instances it cannot
// rotate rather than being refused whole (fleet.Request.SkipGone).
func skipsGone(f rotateFlags) bool { return f.all || f.skipInvalid }

func plan(ctx context.Context, a *app, f rotateFlags, ids []string, running runningSettings) (fleet.Plan, error) {
	return a.producer().Plan(ctx, fleet.Request{InstanceIDs: ids,
		Queue: f.queue, SkipIfPrevious: f.skipPrevious}, planRate(a, running))
}

// planRate is the budget a plan's duration is worked out at: REKEY_HEROKU_RATE
// as the running processes announce it, which is the rate the workers
// spend, else this command's own.
func planRate(a *app, running runningSettings) int {
	if r := running.rate(); r > 0 {
		return r
	}
	return a.cfg.HerokuRate
}

// rateNote says where a plan's rate comes from, for its budget line.
func rateNote(a *app, perHour int) string {
	if perHour != a.cfg.HerokuRate {
		return fmt.Sprintf("REKEY_HEROKU_RATE as the running processes have it; %d here", a.cfg.HerokuRate)
	}
	return "REKEY_HEROKU_RATE"
}

// writePlan prints the plan, with grace (graceText) on its own line: how
// long the old credentials stay valid matters as much as what is rotated.
// It prints in one write, and returns its error.
func writePlan(w io.Writer, pl fleet.Plan, rate, grace string, took time.Duration) error {
	var b strings.Builder
	row := func(label string, format string, v ...any) {
		fmt.Fprintf(&b, "  %-22s %s\n", label, fmt.Sprintf(format, v...))
	}
	fmt.Fprintf(&b, "plan for %s (worked out in %s; nothing was changed):\n", instances(pl.Named), took.Round(time.Millisecond))
	row("rotate", "%d, on queue %s", pl.Rotate, pl.Queue)
	row("skip, in flight", "%d (each joins the rotation under way)", pl.InFlight)
	row("skip, deprovisioned", "%d", pl.Deprovisioned)
	if pl.Unknown > 0 {
		row("skip, unknown", "%d", pl.Unknown)
	}
	if pl.PreviousWaiting > 0 {
		row("skip, previous waits", "%d (--skip-if-previous)", pl.PreviousWaiting)
	}
	if pl.AtCap > 0 {
		row("refused, at the cap", "%d (REKEY_MAX_PREVIOUS superseded credentials already wait for revocation)", pl.AtCap)
	}
	calls := fmt.Sprintf("%d (one config update per instance", pl.Calls())
	if pl.ReadBacks > 0 {
		calls += ", " + count(pl.ReadBacks, "read-back of a V1 update", "read-backs of V1 updates")
	}
	if pl.FirstReads > 0 {
		calls += ", " + count(pl.FirstReads, "first read", "first reads") + " of the config Heroku holds"
	}
	calls += ")"
	if pl.TokenRefreshes > 0 {
		calls += fmt.Sprintf(", plus %d OAuth token refreshes", pl.TokenRefreshes)
	}
	row("Heroku API calls", "%s", calls)
	row("apps released", "at least %d (one per instance; attached apps release and restart too)", pl.Rotate)
	row("budget", "%d calls/hour (%s)", pl.PerHour, rate)
	row("estimated duration", "at least %s, if nothing else spends the budget", printable.Duration(roundDuration(pl.Duration)))
	b.WriteString(grace + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// roundDuration rounds d for people: to the minute past an hour, to the
// second below.
func roundDuration(d time.Duration) time.Duration {
	if d >= time.Hour {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}
