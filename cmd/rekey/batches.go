package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/store"
)

const batchesUsage = `usage: rekey batches show ID [--wait] [--json] [--interval 2s]
       rekey batches cancel ID

show prints a batch's counts; --wait follows it until nothing is left in
flight (a progress bar on a terminal, a line per change otherwise) and exits
non-zero when any rotation failed. cancel stops the batch's rotations that
have not started (rotations under way finish) and takes their tasks off the
queues.
`

func runBatches(ctx context.Context, env *environ, args []string) error {
	if len(args) == 0 || (args[0] != "show" && args[0] != "cancel") {
		fmt.Fprint(env.stderr, batchesUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("batches "+args[0], flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() { fmt.Fprint(env.stderr, batchesUsage) }
	wait := fs.Bool("wait", false, "follow the batch until it is done")
	asJSON := fs.Bool("json", false, "print the batch as JSON")
	interval := fs.Duration("interval", 2*time.Second, "with --wait, how often to look at the batch")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil || len(pos) != 1 || *interval <= 0 || (args[0] == "cancel" && (*wait || *asJSON)) {
		fmt.Fprint(env.stderr, batchesUsage)
		return errUsage
	}
	a, err := openProducer(ctx, env, "batches")
	if err != nil {
		return err
	}
	defer a.Close()
	id := pos[0]
	switch {
	case args[0] == "cancel":
		return cancelBatch(ctx, env, a, id)
	case *wait:
		return followBatch(ctx, env, a.store, id, *interval, *asJSON)
	}
	b, err := a.store.Batch(ctx, id)
	if err != nil {
		return batchError(id, err)
	}
	if *asJSON {
		return writeJSON(env.stdout, b)
	}
	writeBatch(env.stdout, b)
	return nil
}

func batchError(id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("batch %s not found (batches are kept 30 days)", id)
	}
	return err
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cancelBatch(ctx context.Context, env *environ, a *app, id string) error {
	removed, err := fleet.Cancel(ctx, a.store, asynq.NewInspectorFromRedisClient(a.rdb), id)
	if errors.Is(err, store.ErrNotFound) {
		return batchError(id, err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "batch %s cancelled: %d rotations not yet started were cancelled and their tasks removed; "+
		"any others not yet started are cancelled when their task runs, and rotations under way finish\n", id, removed)
	b, err := a.store.Batch(ctx, id)
	if err != nil {
		return batchError(id, err)
	}
	writeBatch(env.stdout, b)
	return nil
}

// writeBatch prints a batch's counts, one per line.
func writeBatch(w io.Writer, b store.Batch) {
	var s strings.Builder
	row := func(label, value string) { fmt.Fprintf(&s, "%-10s %s\n", label, value) }
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
	fmt.Fprint(w, s.String())
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

// followBatch looks at a batch every interval until it is done, showing
// progress on a terminal as a bar and otherwise as a line per change (and
// one every half minute without change), then prints the batch. It fails
// when any rotation of the batch failed.
func followBatch(ctx context.Context, env *environ, st *store.Store, id string, interval time.Duration, asJSON bool) error {
	tty := !asJSON && isTerminal(env.stdout)
	var m meter
	var last store.Batch
	var printed time.Time
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		b, err := st.Batch(ctx, id)
		if err != nil {
			return batchError(id, err)
		}
		now := time.Now()
		m.add(now, finished(b))
		switch {
		case asJSON:
		case tty:
			m.draw(env.stdout, b)
		case progressChanged(last, b) || now.Sub(printed) >= 30*time.Second:
			fmt.Fprintln(env.stdout, m.line(now, b))
			printed = now
		}
		last = b
		if b.Done {
			return finishFollow(env, b, tty, asJSON)
		}
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(env.stdout)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func finishFollow(env *environ, b store.Batch, tty, asJSON bool) error {
	if asJSON {
		if err := writeJSON(env.stdout, b); err != nil {
			return err
		}
	} else {
		if tty {
			fmt.Fprintln(env.stdout)
		}
		writeBatch(env.stdout, b)
	}
	if b.Failed > 0 {
		return fmt.Errorf("batch %s: %d rotations failed", b.ID, b.Failed)
	}
	return nil
}

// finished counts a batch's rotations that have ended.
func finished(b store.Batch) int64 { return b.Succeeded + b.Failed + b.Cancelled }

func progressChanged(a, b store.Batch) bool {
	return a.Enqueued != b.Enqueued || finished(a) != finished(b) || a.Revoked != b.Revoked || a.Done != b.Done
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
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
	return fmt.Sprintf("%s batch %s: %d/%d finished (%d succeeded, %d failed, %d cancelled), %d in flight, %s",
		now.UTC().Format("15:04:05"), b.ID, finished(b), b.Enqueued, b.Succeeded, b.Failed, b.Cancelled,
		b.InFlight, m.pace(b))
}

// barWidth is how many cells the progress bar has.
const barWidth = 30

// draw redraws the progress bar in place.
func (m *meter) draw(w io.Writer, b store.Batch) {
	frac := 1.0
	if b.Enqueued > 0 {
		frac = float64(finished(b)) / float64(b.Enqueued)
	}
	cells := int(frac * barWidth)
	bar := strings.Repeat("#", cells) + strings.Repeat(".", barWidth-cells)
	text := fmt.Sprintf("[%s] %3.0f%% %d/%d, %d failed, %s", bar, frac*100, finished(b), b.Enqueued, b.Failed, m.pace(b))
	pad := max(0, m.width-len(text))
	m.width = len(text)
	fmt.Fprintf(w, "\r%s%s", text, strings.Repeat(" ", pad))
}
