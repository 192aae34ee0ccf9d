package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/store"
)

// confirmLimit is how many instances a request may name, as arguments or
// in a --from list, before rotating them needs a confirmation, as --all
// always does: each rotation restarts a customer's apps (README
// "Processes", its operator commands).
const confirmLimit = 5

// errDeclined is returned when the operator does not answer y.
var errDeclined = errors.New("not confirmed: nothing was enqueued")

// needsConfirm reports whether a request for ids distinct instances needs
// a confirmation; how the ids were given does not matter.
func needsConfirm(f rotateFlags, ids int) bool {
	return f.all || ids > confirmLimit
}

// confirmRotation asks on a terminal, after the plan's one-line summary,
// whether to go ahead; off a terminal it refuses without --confirm, as
// `heroku pg:credentials:rotate` does. The question goes to stderr so that
// --json output stays clean; Ctrl-C at it enqueues nothing and exits 130.
func confirmRotation(ctx context.Context, env *environ, a *app, f rotateFlags, ids []string) error {
	if !env.terminal {
		return usagef("rotating %s restarts customers' apps, so it needs --confirm when not run from a terminal; "+
			"nothing was enqueued (add --confirm to go ahead, or --plan to see what would happen)", instances(len(ids)))
	}
	running := readRunning(ctx, a.store)
	pl, err := plan(ctx, a, f, ids, running)
	if err != nil {
		return err
	}
	grace := graceText(f, a.cfg, running.graces())
	yes, err := ask(ctx, env, planSummary(pl)+"\n"+grace+"\nRotate them now? [y/N] ", "nothing was enqueued")
	if err != nil {
		return err
	}
	if !yes {
		return errDeclined
	}
	return nil
}

// instances is "1 instance" or "n instances".
func instances(n int) string { return count(n, "instance", "instances") }

// count is n followed by one or many, as n is 1 or not.
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// answeredYes reads one line and reports whether it says y or yes.
func answeredYes(r io.Reader) bool {
	answer, _ := bufio.NewReader(r).ReadString('\n')
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes"
}

// planSummary is a plan on one line.
func planSummary(pl fleet.Plan) string {
	skipped := pl.InFlight + pl.Deprovisioned + pl.Unknown + pl.PreviousWaiting + pl.AtCap
	return fmt.Sprintf("rotate %d of %d instances on queue %s (%d skipped): %d Heroku API calls, "+
		"at least %d apps released and restarted, at least %s at %d calls/hour",
		pl.Rotate, pl.Named, pl.Queue, skipped, pl.Calls(), pl.Rotate, roundDuration(pl.Duration), pl.PerHour)
}

// rotateOutput is `rekey rotate --json`: the figures of the text line,
// the lines --skip-invalid left out, and with --wait the batch once done.
type rotateOutput struct {
	BatchID  string       `json:"batch_id"`
	Queue    string       `json:"queue"`
	Enqueued int          `json:"enqueued"`
	Joined   int          `json:"joined"`
	Skipped  int          `json:"skipped"`
	Gone     int          `json:"gone"`
	Refused  int          `json:"refused"`
	Invalid  []invalidID  `json:"invalid,omitempty"`
	Batch    *store.Batch `json:"batch,omitempty"`
}

// invalidID is a line of an id list (or an id named on the command line)
// that --skip-invalid left out, as stderr reports it.
type invalidID struct {
	// Line is the line's number, or the argument's position for ids named
	// on the command line, counting from 1.
	Line int `json:"line"`
	// Kind is one of fleet's Problem kinds: malformed, unknown,
	// deprovisioned or duplicate.
	Kind   string `json:"kind"`
	Reason string `json:"reason"`
}

func newRotateOutput(res fleet.Result, queue string, problems []fleet.Problem, b *store.Batch) rotateOutput {
	return rotateOutput{BatchID: res.BatchID, Queue: queue, Enqueued: res.Enqueued, Joined: res.Joined,
		Skipped: res.Skipped, Gone: res.Gone, Refused: res.Refused, Invalid: invalidIDs(problems), Batch: b}
}

// invalidIDs are problems as --json lists them.
func invalidIDs(problems []fleet.Problem) []invalidID {
	var out []invalidID
	for _, p := range problems {
		out = append(out, invalidID{Line: p.Line, Kind: p.Kind, Reason: p.Msg})
	}
	return out
}

// planOutput is `rekey rotate --plan --json`: the figures of the text plan.
type planOutput struct {
	Instances        int     `json:"instances"`
	Rotate           int     `json:"rotate"`
	Queue            string  `json:"queue"`
	InFlight         int     `json:"skip_in_flight"`
	Deprovisioned    int     `json:"skip_deprovisioned"`
	Unknown          int     `json:"skip_unknown"`
	PreviousWaiting  int     `json:"skip_previous_waiting"`
	AtCap            int     `json:"refused_at_cap"`
	HerokuCalls      int     `json:"heroku_api_calls"`
	ReadBacks        int     `json:"v1_read_backs"`
	FirstReads       int     `json:"first_reads"`
	TokenRefreshes   int     `json:"oauth_token_refreshes"`
	AppsReleased     int     `json:"apps_released_at_least"`
	PerHour          int     `json:"budget_calls_per_hour"`
	EstimatedSeconds float64 `json:"estimated_seconds_at_least"`
	// GraceAskedSeconds is the grace --grace asks for the old
	// credentials; omitted without it: each instance's own, else
	// REKEY_GRACE. The running workers hold it to their REKEY_MIN_GRACE and
	// REKEY_MAX_GRACE, which the text plan's grace line applies.
	GraceAskedSeconds float64 `json:"grace_asked_seconds,omitempty"`
	// Invalid lists what --skip-invalid leaves out, as the request's own
	// --json does.
	Invalid []invalidID `json:"invalid,omitempty"`
}

func newPlanOutput(pl fleet.Plan, grace time.Duration, problems []fleet.Problem) planOutput {
	return planOutput{Instances: pl.Named, Rotate: pl.Rotate, Queue: pl.Queue, InFlight: pl.InFlight,
		Deprovisioned: pl.Deprovisioned, Unknown: pl.Unknown, PreviousWaiting: pl.PreviousWaiting, AtCap: pl.AtCap,
		HerokuCalls: pl.Calls(), ReadBacks: pl.ReadBacks, FirstReads: pl.FirstReads, TokenRefreshes: pl.TokenRefreshes, AppsReleased: pl.Rotate, PerHour: pl.PerHour,
		EstimatedSeconds: roundDuration(pl.Duration).Seconds(), GraceAskedSeconds: grace.Seconds(), Invalid: invalidIDs(problems)}
}
