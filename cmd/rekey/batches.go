package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/spf13/cobra"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/printable"
	"github.com/rekeyhq/rekey/internal/store"
)

func newBatchesCmd(env *environ) *cobra.Command {
	return newGroupCmd(&cobra.Command{
		Use:   "batches",
		Short: "Show or cancel a batch of rotations",
		Long: `A batch is what one 'rekey rotate' (or one API request, or one click on the customer dashboard)
enqueued. 'list' prints the newest batches, 'show' one batch's counts and '--wait' follows it; 'failed'
lists the instances whose rotation failed, for 'rekey rotate --from -'; 'cancel' stops the rotations
that have not started. Batches are kept 30 days.`,
		Example: `  rekey batches list --running
  rekey batches show bat_01J... --wait
  rekey batches failed bat_01J... | rekey rotate --from - --confirm
  rekey batches cancel bat_01J...`,
	}, newBatchesListCmd(env), newBatchesShowCmd(env), newBatchesFailedCmd(env), newBatchesCancelCmd(env))
}

func newBatchesListCmd(env *environ) *cobra.Command {
	var running, asJSON bool
	var limit int
	var before string
	c := &cobra.Command{
		Use:   "list",
		Short: "List the newest batches, or those still running",
		Long: `Lists batches newest first, one a line: id, when it was created, its state (running, done,
cancelled, or cancelling while rotations under way finish), its counts and its reason. --running
lists only the batches not done, the ones 'rekey batches cancel' can stop. --before BATCH_ID pages
back: it lists the batches after that one, as the last line names it. Batches created by rekey versions before this list existed are
not listed; 'rekey batches show ID' still finds them.`,
		Example: `  rekey batches list
  rekey batches list --running
  rekey batches list --limit 100 --before bat_01J...
  rekey batches list --json | jq '.[] | select(.failed > 0) | .batch_id'`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if limit < 1 || limit > maxBatchesListed {
				return usagef("--limit must be between 1 and %d", maxBatchesListed)
			}
			if before != "" && !store.ValidID(before) {
				return usagef("--before %q is not a batch id: write it as 'rekey batches list' prints it, such as bat_01J...", before)
			}
			q := store.BatchQuery{Limit: limit, Running: running, Before: before}
			return withProducer(c.Context(), env, "batches", func(a *app) error {
				return listBatches(c.Context(), env.stdout, env.stderr, a.store, q, asJSON)
			})
		},
	}
	c.Flags().BoolVar(&running, "running", false, "list only the batches not done")
	c.Flags().IntVar(&limit, "limit", 20, "list at most this many batches")
	c.Flags().StringVar(&before, "before", "", "list the batches after this one (the last line of a page)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the batches as a JSON array")
	return c
}

// maxBatchesListed bounds --limit: the batches are read and printed at once.
const maxBatchesListed = 10000

// listBatches prints the batches q names as a table, or as a JSON array, on
// w, and what is said about the list on notes (as listDeadRevocations does).
func listBatches(ctx context.Context, w, notes io.Writer, st *store.Store, q store.BatchQuery, asJSON bool) error {
	// One more than asked says whether older batches are left to list.
	ask := q
	ask.Limit++
	batches, err := st.Batches(ctx, ask)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("--before %s: no such batch in the list (batches are kept 30 days)", printable.Text(q.Before))
	}
	if err != nil {
		return err
	}
	more := len(batches) > q.Limit
	batches = batches[:min(len(batches), q.Limit)]
	// Stderr says there are more under --json too, as for holds list: a
	// script filtering the list would miss the older batches unawares.
	moreNote := func() error {
		if !more {
			return nil
		}
		_, err := fmt.Fprintf(notes, "%s listed, there are more: --before %s lists older ones\n",
			count(len(batches), "batch", "batches"), batches[len(batches)-1].ID)
		return err
	}
	if asJSON {
		if batches == nil {
			batches = []store.Batch{}
		}
		if err := writeJSON(w, batches); err != nil {
			return err
		}
		return moreNote()
	}
	if len(batches) == 0 {
		what := "no batches"
		if q.Running {
			what = "no batch is running"
		}
		if q.Before != "" {
			what += " after " + q.Before
		}
		_, err := fmt.Fprintf(notes, "%s (batches are kept 30 days)\n", what)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BATCH\tCREATED\tSTATE\tTOTAL\tSUCCEEDED\tFAILED\tCANCELLED\tIN FLIGHT\tREASON")
	for _, b := range batches {
		// The reason is outside text (the API, the tasks package):
		// printable.Text keeps it from acting on the terminal or breaking
		// the table.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", b.ID, b.CreatedAt.UTC().Format(time.RFC3339),
			batchState(b), b.Total, b.Succeeded, b.Failed, b.Cancelled, b.InFlight, printable.Text(b.Reason))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return moreNote()
}

// batchState names where batch b stands, as 'rekey batches list' prints it.
func batchState(b store.Batch) string {
	switch {
	case !b.CancelledAt.IsZero() && !b.Done:
		return "cancelling"
	case !b.CancelledAt.IsZero():
		return "cancelled"
	case b.Done:
		return "done"
	}
	return "running"
}

func newBatchesShowCmd(env *environ) *cobra.Command {
	var wait, asJSON bool
	var interval time.Duration
	c := &cobra.Command{
		Use:   "show BATCH_ID",
		Short: "Print a batch's counts; --wait follows it until done",
		Long: `Prints a batch's counts. --wait follows it until nothing is left in flight (a progress bar with
rate and ETA on a terminal, a line per change otherwise) and exits 1 when any rotation failed.`,
		Example: `  rekey batches show bat_01J...
  rekey batches show bat_01J... --wait --interval 5s
  rekey batches show bat_01J... --json | jq .in_flight`,
		Args: exactArgs(1, "one BATCH_ID"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkBatchArg("show", args[0]); err != nil {
				return err
			}
			if c.Flags().Changed("interval") && !wait {
				return errIntervalWithoutWait()
			}
			if err := checkWaitInterval(interval); err != nil {
				return err
			}
			return withProducer(c.Context(), env, "batches", func(a *app) error {
				return showBatch(c.Context(), env, a, args[0], wait, asJSON, interval)
			})
		},
	}
	c.Flags().BoolVar(&wait, "wait", false, "follow the batch until it is done")
	c.Flags().BoolVar(&asJSON, "json", false, "print the batch as JSON")
	c.Flags().DurationVar(&interval, "interval", 2*time.Second, "with --wait, how often to look at the batch")
	return c
}

func newBatchesCancelCmd(env *environ) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel BATCH_ID",
		Short: "Cancel a batch's rotations that have not started",
		Long: `Stops the batch's rotations that have not started and takes their tasks off the queues; rotations
under way finish, and so do those a customer's or an operator's own request joined and moved ahead of
the batch (they are that request's rotations too). Prints the batch's counts afterwards. A batch
that is already done is refused (exit 1) and left as it is: there is nothing of it to stop. Run again on
a batch still cancelling, it removes the tasks an interrupted cancel left and says when the batch was
cancelled and how many more it removed.`,
		Example: `  rekey batches cancel bat_01J...`,
		Args:    exactArgs(1, "one BATCH_ID"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkBatchArg("cancel", args[0]); err != nil {
				return err
			}
			return withProducer(c.Context(), env, "batches", func(a *app) error { return cancelBatch(c.Context(), env, a, args[0]) })
		},
	}
}

// minWaitInterval is the shortest --interval a --wait takes: each look
// reads the Redis every rotation and revocation of the fleet depends on,
// and a unit typo (2ms for 2s) would read it hundreds of times a second
// from each terminal following a wave.
const minWaitInterval = 100 * time.Millisecond

// errIntervalWithoutWait refuses an --interval without --wait, which
// would be ignored: the command prints once and exits.
func errIntervalWithoutWait() error {
	return usagef("--interval says how often --wait looks at the batch: add --wait, or leave --interval out")
}

// checkWaitInterval refuses a --wait --interval below minWaitInterval,
// guessing the unit meant.
func checkWaitInterval(d time.Duration) error {
	if d >= minWaitInterval {
		return nil
	}
	guess := ""
	if d > 0 && d%time.Millisecond == 0 {
		guess = fmt.Sprintf(" (did you mean %s?)", d/time.Millisecond*time.Second)
	}
	return usagef("--interval %s is under %s: each look reads the Redis the whole fleet uses%s", d, minWaitInterval, guess)
}

func showBatch(ctx context.Context, env *environ, a *app, id string, wait, asJSON bool, interval time.Duration) error {
	if wait {
		return followBatch(ctx, env, a.store, id, interval, asJSON, newPauseWatch(a))
	}
	b, err := a.store.Batch(ctx, id)
	if err != nil {
		return batchError(id, err)
	}
	if asJSON {
		return writeJSON(env.stdout, b)
	}
	return writeBatch(env.stdout, b)
}

// checkBatchArg refuses, as a wrong call (exit 2), an argument of
// 'rekey batches VERB' that is no batch id: one pasted with a space, a
// line break or a carriage return would otherwise be looked up and
// reported as a batch not found, as if it had expired.
func checkBatchArg(verb, id string) error {
	if store.ValidID(id) {
		return nil
	}
	return usagef("%q is not a batch id: %s takes one, such as bat_01J...", id, verb)
}

func batchError(id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("batch %s not found (batches are kept 30 days; 'rekey batches list' lists them)", id)
	}
	return err
}

// writeJSON writes v as indented JSON, safe on a terminal
// (printable.JSON).
func writeJSON(w io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(printable.JSON(b.Bytes()))
	return err
}

// cancelBatch cancels a batch that is not done and prints its counts. A
// done batch is refused and left as it is: cancelling it would stop
// nothing, and an operator who named the wrong batch would believe the
// running wave stopped. A batch that finishes between the look and the
// cancel is marked cancelled with nothing left to cancel. A batch already
// cancelled but not done is cancelled again, removing the tasks an
// interrupted cancel left, and the output says when it was cancelled.
func cancelBatch(ctx context.Context, env *environ, a *app, id string) error {
	b, err := a.store.Batch(ctx, id)
	if err != nil {
		return batchError(id, err)
	}
	if b.Done {
		return doneBatchError(ctx, a.store, b)
	}
	removed, err := fleet.Cancel(ctx, a.store, asynq.NewInspectorFromRedisClient(a.rdb), id)
	if errors.Is(err, store.ErrNotFound) {
		return batchError(id, err)
	}
	if err != nil {
		if ctx.Err() != nil {
			// fleet.Cancel marks the batch cancelled first: its rotations
			// not yet started end when their tasks run, and running the
			// cancel again removes the tasks left.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			done := fmt.Sprintf("batch %s may not be cancelled: run 'rekey batches cancel %s' again", id, id)
			if b, berr := a.store.Batch(rctx, id); berr == nil && !b.CancelledAt.IsZero() {
				done = fmt.Sprintf("batch %s is marked cancelled, but not every task of it was removed: "+
					"run 'rekey batches cancel %s' again", id, id)
			}
			return &stoppedError{done: done, err: err}
		}
		return err
	}
	what := fmt.Sprintf("batch %s cancelled: %s not yet started cancelled and their tasks removed", id,
		count(int(removed), "rotation", "rotations"))
	if !b.CancelledAt.IsZero() {
		// Run again: the batch is still cancelling, and this run removes
		// what an earlier, interrupted cancel left.
		what = fmt.Sprintf("batch %s was already cancelled at %s: this run removed the tasks of %s not yet started", id,
			b.CancelledAt.UTC().Format(time.RFC3339), count(int(removed), "rotation", "rotations"))
	}
	if _, err := fmt.Fprintf(env.stdout, "%s; any others not yet started are cancelled when their task runs; "+
		"rotations under way finish, and so do those another request or batch joined\n", what); err != nil {
		return err
	}
	if b, err = a.store.Batch(ctx, id); err != nil {
		return batchError(id, err)
	}
	return writeBatch(env.stdout, b)
}

// doneBatchError refuses to cancel done batch b, and says how many
// rotations are in flight fleet-wide and how to list the running batches.
func doneBatchError(ctx context.Context, st *store.Store, b store.Batch) error {
	state := "created at " + b.CreatedAt.UTC().Format(time.RFC3339)
	if !b.CancelledAt.IsZero() {
		state += ", cancelled at " + b.CancelledAt.UTC().Format(time.RFC3339)
	}
	msg := fmt.Sprintf("batch %s is done (%s; %d succeeded, %d failed, %d cancelled): nothing to cancel, and it is left as it is",
		b.ID, state, b.Succeeded, b.Failed, b.Cancelled)
	n, err := st.InFlightCount(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("%s\n%w", msg, err)
	case n == 0:
		return fmt.Errorf("%s\nno rotation is in flight fleet-wide, so no batch is running", msg)
	}
	return fmt.Errorf("%s\n%s in flight fleet-wide: 'rekey batches list --running' names the batches "+
		"still running", msg, count(int(n), "rotation is", "rotations are"))
}

// writeBatch prints a batch's counts, one per line, in one write whose
// error it returns. Its reason and its
// failure codes are outside text (the API, the tasks package, Heroku and
// the issuer) and pass printable.Text.
func writeBatch(w io.Writer, b store.Batch) error {
	var s strings.Builder
	row := func(label, value string) { fmt.Fprintf(&s, "%-10s %s\n", label, printable.Text(value)) }
	num := func(label string, n int64) { row(label, fmt.Sprint(n)) }
	row("batch", b.ID)
	if b.Reason != "" {
		row("reason", b.Reason)
	}
	row("created", b.CreatedAt.Format(time.RFC3339))
	if !b.CancelledAt.IsZero() {
		row("cancelled", "at "+b.CancelledAt.Format(time.RFC3339))
	}
	num("total", b.Total)
	num("enqueued", b.Enqueued)
	num("joined", b.Joined)
	num("skipped", b.Skipped)
	num("succeeded", b.Succeeded)
	row("failed", fmt.Sprint(b.Failed)+failureSummary(b.Failures))
	num("cancelled", b.Cancelled)
	num("in flight", b.InFlight)
	num("revoked", b.Revoked)
	row("done", map[bool]string{true: "yes", false: "no"}[b.Done])
	_, err := io.WriteString(w, s.String())
	return err
}

// failureSummary groups failures by code, most frequent first:
// "  (push:not_found 10, mint:issuer_422 2)".
func failureSummary(f map[string]int64) string {
	if len(f) == 0 {
		return ""
	}
	codes := make([]string, 0, len(f))
	for c := range f {
		codes = append(codes, c)
	}
	sort.Slice(codes, func(i, j int) bool {
		if f[codes[i]] != f[codes[j]] {
			return f[codes[i]] > f[codes[j]]
		}
		return codes[i] < codes[j]
	})
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%s %d", c, f[c])
	}
	return "  (" + strings.Join(parts, ", ") + ")"
}

// followBatch follows a batch until it is done (watchBatch), then prints
// it. It fails when any rotation of the batch failed.
func followBatch(ctx context.Context, env *environ, st *store.Store, id string, interval time.Duration, asJSON bool, pause *pauseWatch) error {
	b, err := watchBatch(ctx, env, st, id, interval, !asJSON, pause)
	if err != nil {
		return err
	}
	if asJSON {
		if err := writeJSON(env.stdout, b); err != nil {
			return err
		}
	} else {
		if err := writeBatch(env.stdout, b); err != nil {
			return err
		}
		noteOldCredentials(env.stderr, b)
	}
	return batchFailed(b)
}

// noteOldCredentials says, once a batch is done, that the credentials its
// rotations superseded still work until their grace ends: "done" is not
// "the leaked credential is dead", which an operator rotating after a leak
// must not read into it. The rotations a batch joined count their
// revocations in the batches that started them, so of theirs it says how
// many rotations, not how many revoked.
func noteOldCredentials(w io.Writer, b store.Batch) {
	if !b.Done {
		return
	}
	const expedite = "; 'rekey revocations expedite INSTANCE_ID' revokes an instance's now\n"
	own := b.Succeeded > b.Revoked
	switch {
	case own && b.Joined > 0:
		fmt.Fprintf(w, "the old credentials this batch replaced, and those the %d rotations it joined replaced, stay "+
			"valid until each one's grace ends, then they are revoked (%d of this batch's so far)"+expedite, b.Joined, b.Revoked)
	case own:
		fmt.Fprintf(w, "the old credentials this batch replaced stay valid until each one's grace ends, then they are "+
			"revoked (%d so far)"+expedite, b.Revoked)
	case b.Joined > 0:
		fmt.Fprintf(w, "the old credentials the %d rotations this batch joined replaced stay valid until each one's "+
			"grace ends, then they are revoked"+expedite, b.Joined)
	}
}

// watchBatch looks at a batch every interval until it is done and returns
// it. With progress it shows the progress on stderr, as git and curl do,
// so that stdout holds only what the command reports: on a terminal as a
// bar, otherwise as a line per change (and one every half minute without
// change). With pause, it says on stderr when the bulk queue is paused, and
// why, and when it runs again, and when the wave slows to a probe at a time
// and goes on, while rotations of the batch are in flight.
func watchBatch(ctx context.Context, env *environ, st *store.Store, id string, interval time.Duration, progress bool,
	pause *pauseWatch) (store.Batch, error) {
	tty := progress && isTerminal(env.stderr)
	var m meter
	var last store.Batch
	var printed time.Time
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		b, err := st.Batch(ctx, id)
		if err != nil && ctx.Err() != nil {
			// Stopped as it looked (Ctrl-C right after the batch was
			// printed): one more look, not bound to ctx, says how far the
			// batch got, so that the operator still learns how to follow it.
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lastLook)
			b, err = st.Batch(lctx, id)
			cancel()
			if err != nil {
				b = store.Batch{ID: id}
			}
			return b, stoppedWatching(b, ctx.Err())
		}
		if err != nil {
			return b, batchError(id, err)
		}
		now := time.Now()
		m.add(now, finished(b))
		switch {
		case !progress:
		case tty:
			m.draw(env.stderr, b)
		case progressChanged(last, b) || now.Sub(printed) >= 30*time.Second:
			fmt.Fprintln(env.stderr, m.line(now, b))
			printed = now
		}
		last = b
		if b.Done {
			if tty {
				fmt.Fprintln(env.stderr)
			}
			return b, nil
		}
		if b.InFlight > 0 {
			for _, line := range []string{pause.look(ctx), pause.slowedLine(ctx), pause.idle(now, finished(b))} {
				if line == "" {
					continue
				}
				if tty {
					fmt.Fprintln(env.stderr) // leave the bar's line
					m.width = 0
				}
				fmt.Fprintln(env.stderr, line)
			}
		}
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(env.stderr)
			}
			return b, stoppedWatching(b, ctx.Err())
		case <-tick.C:
		}
	}
}

// lastLook bounds the look at a batch after its watch was stopped.
const lastLook = 2 * time.Second

// stoppedWatching is the error of a watch that err (its context's end)
// stopped: the batch's rotations go on without it, and the error says how
// far they got and how to follow them again.
func stoppedWatching(b store.Batch, err error) error {
	return &stoppedError{done: fmt.Sprintf("batch %s was enqueued and keeps running without this command "+
		"(%d of %d rotations finished so far%s); follow it with 'rekey batches show %s --wait'",
		b.ID, finished(b), b.Enqueued, joinedInFlight(b), b.ID), err: err}
}

// joinedInFlight says, of a batch that joined rotations in flight (a second
// wave asked during the first), how many of its rotations are still in
// flight, those it joined included, which its own counts leave out: a batch
// that joined a whole wave started none, and "0 of 0 finished" alone read
// as nothing left to follow.
func joinedInFlight(b store.Batch) string {
	if b.Joined == 0 || b.InFlight == 0 {
		return ""
	}
	return fmt.Sprintf(", %d still in flight, the rotations in flight it joined included", b.InFlight)
}

// batchFailed is the error of a finished batch in which rotations failed
// or were cancelled: their instances keep the credential the batch was
// to replace, which a script that waited on it must not read as done.
func batchFailed(b store.Batch) error {
	var parts []string
	if b.Failed > 0 {
		parts = append(parts, count(int(b.Failed), "rotation", "rotations")+" failed")
	}
	if b.Cancelled > 0 {
		parts = append(parts, count(int(b.Cancelled), "rotation", "rotations")+" cancelled")
	}
	if len(parts) == 0 {
		return nil
	}
	return fmt.Errorf("batch %s: %s: those instances keep their current credential", b.ID, strings.Join(parts, ", "))
}

// finished counts a batch's rotations that have ended.
func finished(b store.Batch) int64 { return b.Succeeded + b.Failed + b.Cancelled }

func progressChanged(a, b store.Batch) bool {
	return a.Enqueued != b.Enqueued || finished(a) != finished(b) || a.Revoked != b.Revoked || a.Done != b.Done
}

// meter measures a batch's pace over the last minute.
type meter struct {
	samples []sample
	width   int // of the last bar drawn, to blank it when it shrinks
}

type sample struct {
	at   time.Time
	done int64
}

// rateWindow is how far back the pace is measured.
const rateWindow = time.Minute

func (m *meter) add(at time.Time, done int64) {
	m.samples = append(m.samples, sample{at, done})
	for len(m.samples) > 2 && at.Sub(m.samples[1].at) >= rateWindow {
		m.samples = m.samples[1:]
	}
}

// rate is rotations finished per second, zero until known.
func (m *meter) rate() float64 {
	if len(m.samples) < 2 {
		return 0
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	secs := last.at.Sub(first.at).Seconds()
	if secs <= 0 {
		return 0
	}
	return float64(last.done-first.done) / secs
}

// pace says the rate and the time left: "1.1/s, ETA 1h12m".
func (m *meter) pace(b store.Batch) string {
	r := m.rate()
	if r <= 0 {
		return "rate unknown yet"
	}
	eta := time.Duration(float64(b.InFlight) / r * float64(time.Second))
	return fmt.Sprintf("%.1f/s, ETA %s", r, roundDuration(eta))
}

// line is the plain progress line.
func (m *meter) line(now time.Time, b store.Batch) string {
	return printable.Text(fmt.Sprintf("%s batch %s: %d/%d finished (%d succeeded, %d failed, %d cancelled), %d in flight, %s",
		now.UTC().Format("15:04:05Z"), b.ID, finished(b), b.Enqueued, b.Succeeded, b.Failed, b.Cancelled,
		b.InFlight, m.pace(b)))
}

// barWidth is how many cells the progress bar has.
const barWidth = 30

// draw redraws the progress bar in place.
func (m *meter) draw(w io.Writer, b store.Batch) {
	frac := 1.0
	switch {
	case b.Enqueued > 0:
		frac = float64(finished(b)) / float64(b.Enqueued)
	case !b.Done:
		frac = 0 // it started none, and waits for the rotations it joined
	}
	cells := int(frac * barWidth)
	bar := strings.Repeat("#", cells) + strings.Repeat(".", barWidth-cells)
	text := fmt.Sprintf("[%s] %3.0f%% %d/%d, %d failed%s, %s", bar, frac*100, finished(b), b.Enqueued, b.Failed,
		joinedInFlight(b), m.pace(b))
	pad := max(0, m.width-len(text))
	m.width = len(text)
	fmt.Fprintf(w, "\r%s%s", text, strings.Repeat(" ", pad))
}
