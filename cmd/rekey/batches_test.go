package main

import (
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/store"
)

// startBatch registers n instances and rotates them all, returning the
// batch id and the instance ids.
func startBatch(t *testing.T, c *cli, n int) (string, []string) {
	t.Helper()
	ids := c.register(t, n)
	if err := c.run(t, "rotate", "--all", "--confirm", "--reason", "test"); err != nil {
		t.Fatalf("rotate: %v\n%s", err, c.stderr)
	}
	return batchID(t, c.stdout.String()), ids
}

func TestBatchesShow(t *testing.T) {
	c := newCLI(t)
	id, ids := startBatch(t, c, 4)
	c.complete(t, ids[:3], map[string]bool{ids[1]: true, ids[2]: true})

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"text", []string{"show", id}, []string{
			"batch      " + id, "reason     test", "total      4", "enqueued   4", "succeeded  1",
			"failed     2  (push:not_found 2)", "in flight  1", "done       no"}},
		{"json", []string{"show", "--json", id}, []string{`"batch_id": "` + id + `"`, `"in_flight": 1`,
			`"failures": {`, `"push:not_found": 2`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.run(t, "batches", tt.args...); err != nil {
				t.Fatalf("%v\n%s", err, c.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(c.stdout.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, c.stdout)
				}
			}
		})
	}
	t.Run("json decodes", func(t *testing.T) {
		if err := c.run(t, "batches", "show", id, "--json"); err != nil {
			t.Fatal(err)
		}
		var b store.Batch
		if err := json.Unmarshal(c.stdout.Bytes(), &b); err != nil {
			t.Fatal(err)
		}
		if b.ID != id || b.Total != 4 || b.Succeeded != 1 || b.Failed != 2 || b.InFlight != 1 || b.Done {
			t.Errorf("batch %+v", b)
		}
	})
	t.Run("unknown batch", func(t *testing.T) {
		err := c.run(t, "batches", "show", "bat_nope")
		if err == nil || !strings.Contains(err.Error(), "batch bat_nope not found") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("usage", func(t *testing.T) {
		if err := c.run(t, "batches", "frobnicate"); err == nil {
			t.Error("no error for an unknown subcommand")
		}
	})
}

func TestBatchesShowWait(t *testing.T) {
	tests := []struct {
		name string
		args []string
		fail bool
		// first is printed on stderr before any rotation finishes ("" for
		// none).
		first   string
		wantErr string
		want    []string // on stdout
		// progress is on stderr at the end; stdout never holds it.
		progress string
	}{
		{"plain lines", []string{"--wait"}, false, "0/3 finished", "", []string{"done       yes"},
			"3/3 finished (3 succeeded, 0 failed, 0 cancelled), 0 in flight"},
		{"failures exit non-zero", []string{"--wait"}, true, "0/3 finished", "1 rotation failed", []string{
			"failed     1  (push:not_found 1)", "done       yes"}, "3/3 finished (2 succeeded, 1 failed"},
		{"json", []string{"--wait", "--json"}, false, "", "", []string{`"done": true`, `"succeeded": 3`}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCLI(t)
			id, ids := startBatch(t, c, 3)
			c.stdout.Reset()
			c.stderr.Reset()
			errc := make(chan error, 1)
			env := c.env()
			go func() {
				errc <- runCommand(context.Background(), env, "batches", append([]string{"show", id, "--interval", "100ms"}, tt.args...)...)
			}()
			c.waitFor(t, "the first progress line", func() bool { return strings.Contains(c.stderr.String(), tt.first) })
			fail := map[string]bool{}
			if tt.fail {
				fail[ids[0]] = true
			}
			c.complete(t, ids, fail)
			var err error
			select {
			case err = <-errc:
			case <-time.After(10 * time.Second):
				t.Fatal("batches show --wait did not return once the batch was done")
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			for _, w := range tt.want {
				if !strings.Contains(c.stdout.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, c.stdout)
				}
			}
			if !strings.Contains(c.stderr.String(), tt.progress) || strings.Contains(c.stdout.String(), "finished (") {
				t.Errorf("want the progress (%q) on stderr only:\nstdout: %s\nstderr: %s", tt.progress, c.stdout, c.stderr)
			}
			// Done is not "the old credentials are dead": the text says
			// they stay valid until their grace ends.
			const note = "the old credentials this batch replaced stay valid until each one's grace ends, then they are revoked (0 so far)"
			if strings.Contains(c.stderr.String(), note) == slices.Contains(tt.args, "--json") {
				t.Errorf("stderr says of the old credentials (want it unless --json %v):\n%s", tt.args, c.stderr)
			}
		})
	}
}

func TestBatchesCancel(t *testing.T) {
	c := newCLI(t)
	id, ids := startBatch(t, c, 5)
	// One rotation finished before the cancel: it stays succeeded.
	c.complete(t, ids[:1], nil)

	if err := c.run(t, "batches", "cancel", id); err != nil {
		t.Fatalf("cancel: %v\n%s", err, c.stderr)
	}
	for _, w := range []string{"4 rotations not yet started cancelled and their tasks removed",
		"succeeded  1", "cancelled  4", "in flight  0", "done       yes"} {
		if !strings.Contains(c.stdout.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, c.stdout)
		}
	}
	// The finished rotation's task stays queued (a worker would find it done).
	if got := c.pending(t, "bulk"); got != 1 {
		t.Errorf("%d tasks pending on bulk, want 1", got)
	}
	for _, id := range ids[1:] {
		in, err := c.st.Instance(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if in.InFlight != "" {
			t.Errorf("%s still has rotation %s in flight", id, in.InFlight)
		}
	}
	t.Run("twice", func(t *testing.T) {
		// The cancel left nothing in flight: the batch is done.
		err := c.run(t, "batches", "cancel", id)
		if err == nil || isUsage(err) || !strings.Contains(err.Error(), "is done (created at ") ||
			!strings.Contains(err.Error(), ", cancelled at ") {
			t.Errorf("err = %v, want a refusal saying the batch is done and when it was cancelled", err)
		}
	})
	t.Run("unknown batch", func(t *testing.T) {
		if err := c.run(t, "batches", "cancel", "bat_nope"); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("err = %v", err)
		}
	})
}

// TestBatchesCancelRefusesADoneBatch: cancelling a batch that is done
// (yesterday's, say) exits 1, says so and that another batch's rotation is
// in flight, and does not mark the done batch cancelled.
func TestBatchesCancelRefusesADoneBatch(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 3)
	if err := c.run(t, "rotate", ids[0], ids[1]); err != nil {
		t.Fatalf("rotate: %v\n%s", err, c.stderr)
	}
	done := batchID(t, c.stdout.String())
	c.complete(t, ids[:2], nil)
	if err := c.run(t, "rotate", ids[2]); err != nil {
		t.Fatalf("rotate: %v\n%s", err, c.stderr)
	}
	running := batchID(t, c.stdout.String())

	err := c.run(t, "batches", "cancel", done)
	if err == nil || isUsage(err) {
		t.Fatalf("cancel of a done batch: err = %v, want a refusal (exit 1)", err)
	}
	for _, w := range []string{"batch " + done + " is done (created at ", "2 succeeded, 0 failed, 0 cancelled",
		"nothing to cancel", "1 rotation is in flight fleet-wide", "'rekey batches list --running'"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	if strings.Contains(c.stdout.String(), "cancelled:") {
		t.Errorf("stdout claims a cancel: %s", c.stdout)
	}
	for _, id := range []string{done, running} {
		if cancelled, err := c.st.BatchCancelled(context.Background(), id); err != nil || cancelled {
			t.Errorf("batch %s cancelled = %v (%v), want false", id, cancelled, err)
		}
	}
}

// TestBatchesList: the newest batches first, with their state; --running
// only those not done; --before pages on from the batch a page ended with;
// --json is an array; a stored reason's terminal escapes are not printed.
func TestBatchesList(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 3)
	if err := c.run(t, "rotate", ids[0], ids[1], "--reason", "first wave"); err != nil {
		t.Fatalf("rotate: %v\n%s", err, c.stderr)
	}
	first := batchID(t, c.stdout.String())
	// rotate refuses such a reason, as the API does; a task of another
	// app's, or an earlier version, may have stored one.
	if err := c.r.Client.HSet(context.Background(), "rekey:batch:"+first, "reason", "first \x1b[2Jwave").Err(); err != nil {
		t.Fatal(err)
	}
	c.complete(t, ids[:2], map[string]bool{ids[1]: true})
	if err := c.run(t, "rotate", ids[2], "--reason", "second"); err != nil {
		t.Fatalf("rotate: %v\n%s", err, c.stderr)
	}
	second := batchID(t, c.stdout.String())

	lines := func(t *testing.T, args ...string) []string {
		t.Helper()
		if err := c.run(t, "batches", append([]string{"list"}, args...)...); err != nil {
			t.Fatalf("batches list %v: %v\n%s", args, err, c.stderr)
		}
		return strings.Split(strings.TrimSpace(c.stdout.String()), "\n")
	}
	t.Run("all", func(t *testing.T) {
		out := lines(t)
		if len(out) != 3 || !strings.HasPrefix(out[0], "BATCH") {
			t.Fatalf("want a header and two batches:\n%s", c.stdout)
		}
		for i, w := range [][]string{{second, "running", " 1 ", "second"}, {first, "done", " 2 ", `first \x1b[2Jwave`}} {
			for _, part := range w {
				if !strings.Contains(out[i+1], part) {
					t.Errorf("line %d lacks %q:\n%s", i+1, part, c.stdout)
				}
			}
		}
		if strings.Contains(c.stdout.String(), "\x1b") {
			t.Errorf("a reason's escape reached the terminal: %q", c.stdout)
		}
	})
	t.Run("running", func(t *testing.T) {
		if out := lines(t, "--running"); len(out) != 2 || !strings.HasPrefix(out[1], second+" ") {
			t.Errorf("want only %s:\n%s", second, c.stdout)
		}
	})
	t.Run("pages", func(t *testing.T) {
		// The rows alone on stdout, piped on; how to list older ones on
		// stderr.
		out := lines(t, "--limit", "1")
		if len(out) != 2 || !strings.HasPrefix(out[1], second+" ") || !strings.Contains(c.stderr.String(), "--before "+second) {
			t.Fatalf("want %s on stdout and how to list older ones on stderr:\n%s\nstderr: %s", second, c.stdout, c.stderr)
		}
		if out := lines(t, "--limit", "1", "--before", second); len(out) < 2 || !strings.HasPrefix(out[1], first+" ") {
			t.Errorf("want %s:\n%s", first, c.stdout)
		}
		// A page that ends the list says nothing of more.
		if out := lines(t, "--limit", "2"); len(out) != 3 || strings.Contains(c.stderr.String(), "--before") {
			t.Errorf("two batches listed with --limit 2: want both and no hint of more:\n%s\nstderr: %s", c.stdout, c.stderr)
		}
		if lines(t, "--before", first); c.stdout.String() != "" || !strings.Contains(c.stderr.String(), "no batches after "+first) {
			t.Errorf("want nothing on stdout and no batches after the oldest on stderr:\n%s\nstderr: %s", c.stdout, c.stderr)
		}
	})
	t.Run("json", func(t *testing.T) {
		if err := c.run(t, "batches", "list", "--json"); err != nil {
			t.Fatal(err)
		}
		var bs []store.Batch
		if err := json.Unmarshal(c.stdout.Bytes(), &bs); err != nil {
			t.Fatal(err)
		}
		if len(bs) != 2 || bs[0].ID != second || bs[1].ID != first || bs[1].Failed != 1 || !bs[1].Done {
			t.Errorf("batches %+v", bs)
		}
		if c.stderr.String() != "" {
			t.Errorf("the whole list under --json, yet stderr says %q", c.stderr)
		}
		// A page under --json says on stderr that there are more, as the
		// table does: a script filtering it would miss the older ones.
		if err := c.run(t, "batches", "list", "--json", "--limit", "1"); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(c.stdout.Bytes(), &bs); err != nil || len(bs) != 1 || !strings.Contains(c.stderr.String(), "--before "+second) {
			t.Errorf("--json --limit 1 of 2: %d listed (%v), stderr %q; want 1 and how to list older ones", len(bs), err, c.stderr)
		}
	})
	t.Run("refusals", func(t *testing.T) {
		if err := c.run(t, "batches", "list", "--limit", "0"); !isUsage(err) {
			t.Errorf("--limit 0: err = %v, want a usage error", err)
		}
		err := c.run(t, "batches", "list", "--before", "bat_nope")
		if err == nil || isUsage(err) || !strings.Contains(err.Error(), "no such batch") {
			t.Errorf("--before an unknown batch: err = %v, want exit 1 saying there is no such batch", err)
		}
	})
}

func TestProgressBar(t *testing.T) {
	var m meter
	var out strings.Builder
	start := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	b := store.Batch{ID: "bat_1", Enqueued: 100, InFlight: 100}
	m.add(start, 0)
	m.draw(&out, b)
	if !strings.Contains(out.String(), "[..............................]   0% 0/100, 0 failed, rate unknown yet") {
		t.Errorf("first bar: %q", out.String())
	}
	out.Reset()
	b.Succeeded, b.Failed, b.InFlight = 48, 2, 50
	m.add(start.Add(10*time.Second), 50)
	m.draw(&out, b)
	// The trailing space blanks the end of the longer bar drawn before.
	want := "\r[###############...............]  50% 50/100, 2 failed, 5.0/s, ETA 10s "
	if out.String() != want {
		t.Errorf("bar = %q, want %q", out.String(), want)
	}
}

// A script waits on `rotate --wait` to know the credentials were replaced.
// A batch cancelled meanwhile (another operator's `batches cancel`) leaves
// every instance on its credential: the wait ends in failure (exit 1)
// naming the cancelled rotations, as it does for failed ones.
func TestRotateWaitFailsWhenItsBatchIsCancelled(t *testing.T) {
	c := newCLI(t)
	c.register(t, 3)
	done := make(chan error, 1)
	c.stdout.Reset()
	c.stderr.Reset()
	go func() {
		done <- runCommand(context.Background(), c.env(), "rotate", instanceID(0), instanceID(1), instanceID(2),
			"--wait", "--interval", "100ms", "--reason", "INC-3 leak")
	}()
	var id string
	c.waitFor(t, "the batch id", func() bool {
		if out := c.stdout.String(); strings.Contains(out, "bat_") {
			id = batchID(t, out)
			return true
		}
		return false
	})
	other := c.env()
	other.stdout, other.stderr = &syncBuffer{}, &syncBuffer{}
	if err := runCommand(context.Background(), other, "batches", "cancel", id); err != nil {
		t.Fatalf("batches cancel: %v\n%s", err, other.stderr)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("rotate --wait did not end")
	}
	if err == nil || report(io.Discard, err) != 1 || !strings.Contains(err.Error(), "3 rotations cancelled") {
		t.Errorf("rotate --wait on a batch cancelled whole = %v, want exit status 1 naming the 3 cancelled", err)
	}
}

// TestBatchesCancelAgainSaysWhenItWasCancelled: a cancel run again on a
// batch that is still cancelling (an earlier cancel was interrupted after
// marking it, and a rotation under way keeps it not done) removes the
// tasks left, and says the batch was already cancelled, when, and how
// many more this run removed, not as if it were the first cancel.
func TestBatchesCancelAgainSaysWhenItWasCancelled(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	id, _ := startBatch(t, c, 4)
	// One rotation under way: the pacing feeder released it and a worker
	// took it.
	held, err := pacing.HeldIDs(ctx, c.r.Client)
	if err != nil || len(held) != 4 {
		t.Fatalf("held rotations: %d (%v), want 4", len(held), err)
	}
	if err := pacing.Unhold(ctx, c.r.Client, held[0]); err != nil {
		t.Fatal(err)
	}
	// An earlier cancel marked the batch and was interrupted before it
	// removed any task.
	if err := c.st.CancelBatch(ctx, id); err != nil {
		t.Fatal(err)
	}
	b, err := c.st.Batch(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	at := b.CancelledAt.UTC().Format(time.RFC3339)

	for _, tt := range []struct{ name, removed string }{
		{"tasks left", "this run removed the tasks of 3 rotations not yet started"},
		{"nothing left", "this run removed the tasks of 0 rotations not yet started"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c.stdout.Reset()
			if err := c.run(t, "batches", "cancel", id); err != nil {
				t.Fatalf("cancel again: %v\n%s", err, c.stderr)
			}
			out := c.stdout.String()
			for _, w := range []string{"batch " + id + " was already cancelled at " + at, tt.removed,
				"cancelled  3", "in flight  1", "done       no"} {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "batch "+id+" cancelled:") {
				t.Errorf("output speaks of a first cancel:\n%s", out)
			}
		})
	}
	if got := c.pending(t, "bulk"); got != 0 {
		t.Errorf("%d tasks pending on bulk, want 0", got)
	}
}
