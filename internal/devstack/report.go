package devstack

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// rotate rotates every sample, follows the batch and prints the summary;
// without Once it then serves until ctx ends.
func (r *run) rotate(ctx context.Context, samples []sandbox.Sample) error {
	ids := make([]string, len(samples))
	for i, s := range samples {
		ids[i] = s.ID
	}
	start := time.Now()
	res, err := r.st.Producer().Rotate(ctx, fleet.Request{InstanceIDs: ids,
		Reason: "rekey dev", Queue: tasks.QueueDefault})
	if err != nil {
		return err
	}
	fmt.Fprintf(r.o.Stderr, "rekey dev: batch %s: %s enqueued, grace %s", res.BatchID,
		count(res.Enqueued, "rotation"), r.o.Grace)
	if r.o.Once {
		fmt.Fprintf(r.o.Stderr, "; giving up after %s (--timeout)", r.o.Timeout)
	}
	fmt.Fprintln(r.o.Stderr)
	b, err := r.watch(ctx, res.BatchID, start)
	summary := r.summary(b, time.Since(start))
	fmt.Fprint(r.o.Stdout, summary.String())
	switch {
	case err != nil:
		return err
	case summary.violations > 0:
		return fmt.Errorf("%s", count(summary.violations, "invariant violation"))
	case b.Failed > 0:
		return fmt.Errorf("%s failed", count(int(b.Failed), "rotation"))
	case !r.o.Once && ctx.Err() == nil:
		fmt.Fprintln(r.o.Stderr, "rekey dev: all done; still serving, Ctrl-C to stop")
		<-ctx.Done()
	}
	return nil
}

// watch prints progress until every rotation finished and every old
// credential was revoked (or, without Once, until ctx ends).
func (r *run) watch(ctx context.Context, batchID string, start time.Time) (store.Batch, error) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	deadline := time.After(r.o.Timeout)
	last := ""
	for {
		b, err := r.st.Store().Batch(ctx, batchID)
		if err != nil {
			return b, err
		}
		line := fmt.Sprintf("rotated %d/%d, failed %d, old credentials revoked %d/%d", b.Succeeded, b.Total, b.Failed, b.Revoked, b.Succeeded)
		if line != last {
			fmt.Fprintf(r.o.Stderr, "  %5.1fs  %s\n", time.Since(start).Seconds(), line)
			last = line
		}
		if b.Done && b.Revoked >= b.Succeeded {
			return b, nil
		}
		select {
		case <-ctx.Done():
			if !r.o.Once {
				return b, nil // Ctrl-C is how a run without Once ends
			}
			return b, stoppedError{ctx}
		case <-deadline:
			if r.o.Once {
				return b, fmt.Errorf("not finished after %s (rotated %d/%d, old credentials revoked %d/%d): "+
					"give it longer with --timeout", r.o.Timeout, b.Succeeded, b.Total, b.Revoked, b.Succeeded)
			}
		case <-tick.C:
		}
	}
}

// report is what `rekey dev` prints at the end.
type report struct {
	b          store.Batch
	took       time.Duration
	calls      int
	oauth      int
	limited    int
	violations int
	details    []string
	// grace and pace say why the run took as long as it did.
	grace, pace string
	// held is the held instance's story: its hold events and the lines
	// its app's log stream received.
	held []string
}

func (r *run) summary(b store.Batch, took time.Duration) report {
	st := r.sb.Fake.Stats()
	rep := report{b: b, took: took, limited: st.RateLimited, details: r.sb.Checker.Violations(),
		grace: r.graceLine(), pace: r.paceLine()}
	for k, n := range st.Calls {
		switch k.Endpoint {
		case herokufake.PatchConfig, herokufake.V1Put, herokufake.V1Get:
			rep.calls += n
		case herokufake.OAuthToken:
			rep.oauth += n
		}
	}
	rep.violations = len(rep.details)
	if r.held != nil {
		story, err := r.sb.HoldStory(context.Background(), r.st.Store(), *r.held)
		if err != nil {
			story = []string{"could not read: " + err.Error()}
		}
		// A run stopped before the grace ended (Ctrl-C, --timeout) saw
		// neither a hold nor the revocation: it says what was to happen,
		// not that it did. (HoldStory's lines are "time type detail".)
		verb := "was to keep using"
		if slices.ContainsFunc(story, func(l string) bool {
			return strings.Contains(l, " "+store.EventRevocationHeld+" ") || strings.Contains(l, " "+store.EventRevoked+" ")
		}) {
			verb = "kept using"
		}
		rep.held = append([]string{fmt.Sprintf("instance %s: %s %s the old credential for %s past the grace",
			r.held.ID, sandbox.HoldDemoUser, verb, r.holdDemoUse())}, story...)
	}
	return rep
}

// graceLine says what the grace is for.
func (r *run) graceLine() string {
	return fmt.Sprintf("%s: each old credential stays valid this long after its successor reached Heroku, "+
		"so every dyno restarts onto the new one (%s here, %s in Private Spaces) before the old one is revoked",
		r.o.Grace, r.o.RestartDelay, 2*r.o.RestartDelay)
}

// paceLine says why the rotations go at the budget's rate, not the
// workers': every call to Heroku waits for the budget all processes share.
func (r *run) paceLine() string {
	p := ratelimit.Params{PerHour: r.cfg.HerokuRate}.WithDefaults()
	every := time.Hour / time.Duration(p.PerHour)
	return fmt.Sprintf("REKEY_HEROKU_RATE=%d Heroku calls an hour, shared by every worker: after a burst of %d, "+
		"one call every %s (a rotation's push; a V1 rotation's read-back of it too), however many workers run; "+
		"Heroku allows 4500 an hour per account",
		p.PerHour, p.Burst, every.Round(time.Millisecond))
}

func (rep report) String() string {
	var s strings.Builder
	perRotation := 0.0
	if rep.b.Succeeded > 0 {
		perRotation = float64(rep.calls) / float64(rep.b.Succeeded)
	}
	fmt.Fprintf(&s, "\nrekey dev summary (%s)\n", rep.took.Round(100*time.Millisecond))
	fmt.Fprintf(&s, "  rotated                  %d of %d\n", rep.b.Succeeded, rep.b.Total)
	fmt.Fprintf(&s, "  failed                   %d\n", rep.b.Failed)
	fmt.Fprintf(&s, "  old credentials revoked  %d\n", rep.b.Revoked)
	fmt.Fprintf(&s, "  Heroku config calls      %d (%.2f per rotation: a push each, and a read-back of each V1 push)\n", rep.calls, perRotation)
	fmt.Fprintf(&s, "  OAuth token calls        %d (grant exchanges at registration, refreshes)\n", rep.oauth)
	fmt.Fprintf(&s, "  429s from Heroku         %d\n", rep.limited)
	fmt.Fprintf(&s, "  invariant violations     %d\n", rep.violations)
	for _, d := range rep.details {
		fmt.Fprintf(&s, "    %s\n", d)
	}
	fmt.Fprintf(&s, "  grace                    %s\n", rep.grace)
	fmt.Fprintf(&s, "  pace                     %s\n", rep.pace)
	if len(rep.held) > 0 {
		fmt.Fprintf(&s, "  held revocation          %s\n", rep.held[0])
		for _, l := range rep.held[1:] {
			fmt.Fprintf(&s, "    %s\n", l)
		}
	}
	return s.String()
}
