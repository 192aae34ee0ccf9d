package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rekeyhq/rekey/internal/breaker"
	"github.com/rekeyhq/rekey/internal/printable"
)

func newBreakerCmd(env *environ) *cobra.Command {
	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Open or closed and why, the bulk queue, the 401/403 window now",
		Long: `Prints the circuit breaker on Heroku 401/403 answers (and 2xx answers that are not Heroku's):
closed, or open since when and why; whether the bulk queue is paused; how many distinct instances were
denied so in the window now.`,
		Example: `  rekey breaker status
  rekey breaker status --json | jq .open`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return withBreaker(c.Context(), env, func(b *breaker.Breaker) error { return breakerStatus(c.Context(), env, b, asJSON) })
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	var confirm bool
	var by string
	resume := &cobra.Command{
		Use:   "resume",
		Short: "Close the breaker: bulk and scheduled work runs again",
		Long: `Closes the breaker once Heroku has recovered (client secret, partner account): the bulk queue
runs and the scheduler enqueues again. Asks on a terminal; needs --confirm off one.`,
		Example: `  rekey breaker resume
  rekey breaker resume --confirm --by alice`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			by, err := operatorName(by)
			if err != nil {
				return err
			}
			return withProducer(c.Context(), env, "breaker", func(a *app) error {
				b, err := a.breaker()
				if err != nil {
					return err
				}
				if err := resumeBreaker(c.Context(), env, b, confirm, by, a.store.SchedulePaused); err != nil {
					return err
				}
				warnIfNoProcess(c.Context(), env, a)
				return nil
			})
		},
	}
	resume.Flags().BoolVar(&confirm, "confirm", false, "resume without asking (required when not on a terminal)")
	resume.Flags().StringVar(&by, "by", "operator", "who resumes, for the status")
	return newGroupCmd(&cobra.Command{
		Use:   "breaker",
		Short: "The circuit breaker on Heroku 401/403 runs: status, resume",
		Long: `When many distinct instances answer 401 or 403 within a window (REKEY_BREAKER_*), or a 2xx
without the config sent (a HEROKU_API_URL naming another host), the breaker opens: the bulk queue
pauses and the scheduler enqueues nothing until an operator resumes it.`,
		Example: `  rekey breaker status
  rekey breaker resume --confirm`,
	}, status, resume)
}

// withBreaker runs fn on the breaker of the configured Redis.
func withBreaker(ctx context.Context, env *environ, fn func(*breaker.Breaker) error) error {
	return withProducer(ctx, env, "breaker", func(a *app) error {
		b, err := a.breaker()
		if err != nil {
			return err
		}
		return fn(b)
	})
}

func breakerStatus(ctx context.Context, env *environ, b *breaker.Breaker, asJSON bool) error {
	s, err := b.Status(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(env.stdout, s)
	}
	return writeBreakerStatus(env.stdout, s)
}

// denials names the answers the breaker counts as denials (breaker.answer):
// an operator reading a window full of them learns each kind it may be.
const denials = "401, 403 or not as Heroku answers (a 2xx without the config, a redirect, a 4xx without Heroku's error id)"

// writeBreakerStatus prints the status in one write, and returns its error:
// a status that could not be printed is no status read.
func writeBreakerStatus(w io.Writer, s breaker.Status) error {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-11s %s\n", label+":", printable.Text(fmt.Sprintf(format, args...)))
	}
	line("breaker", "%s", s.Line())
	if s.BulkPaused {
		line("bulk queue", "paused: fleet waves and scheduled rotations wait; interactive, default and revoke queues run")
	} else {
		line("bulk queue", "running")
	}
	if s.Policy.Threshold == 0 {
		line("policy", "off (REKEY_BREAKER_THRESHOLD=0): this process's configuration never opens it")
	} else {
		line("window now", "%d of %d distinct instances answered %s in the last %s", s.Window.Denied, s.Window.Answered,
			denials, durationText(s.Policy.Window))
		line("policy", "opens at %d distinct instances answering %s, at least %g of those answered, within %s",
			s.Policy.Threshold, denials, s.Policy.Fraction, durationText(s.Policy.Window))
	}
	openings := fmt.Sprintf("%d", s.Openings)
	if s.ResumedAt != nil {
		openings += fmt.Sprintf("; last resumed %s by %s", s.ResumedAt.UTC().Format(time.RFC3339), s.ResumedBy)
	}
	line("openings", "%s", openings)
	_, err := io.WriteString(w, b.String())
	return err
}

// errNotConfirmed refuses a resume the operator did not confirm at the
// terminal; off a terminal, a missing --confirm is a usage error.
var errNotConfirmed = errors.New("breaker not resumed: answer y, or pass --confirm")

// resumeBreaker closes the breaker; schedulePaused says whether an
// operator's pause still holds the scheduler, which the breaker's resume
// leaves as it is.
func resumeBreaker(ctx context.Context, env *environ, b *breaker.Breaker, confirm bool, by string,
	schedulePaused func(context.Context) (time.Time, string, error)) error {
	s, err := b.Status(ctx)
	if err != nil {
		return err
	}
	if !s.Open && !s.BulkPaused {
		fmt.Fprintln(env.stdout, "the breaker is closed and the bulk queue runs: nothing to resume")
		return nil
	}
	switch {
	case confirm:
	case !env.terminal:
		return usagef("breaker not resumed: pass --confirm when not on a terminal")
	default:
		yes, err := askResume(ctx, env, s)
		if err != nil {
			return err
		}
		if !yes {
			return errNotConfirmed
		}
	}
	if _, err := b.Resume(ctx, by); err != nil {
		return err
	}
	if at, who, err := schedulePaused(ctx); err == nil && !at.IsZero() {
		fmt.Fprintf(env.stdout, "breaker resumed: the bulk queue runs; the scheduler stays paused (by %s since %s): "+
			"'rekey scheduler resume'\n", printable.Text(who), at.UTC().Format(time.RFC3339))
		return nil
	}
	fmt.Fprintln(env.stdout, "breaker resumed: the bulk queue runs and the scheduler enqueues again")
	return nil
}

// askResume shows, on stderr, why the breaker opened and asks for a y.
func askResume(ctx context.Context, env *environ, s breaker.Status) (bool, error) {
	return ask(ctx, env, fmt.Sprintf("breaker: %s\nHas Heroku recovered (client secret, partner account)? "+
		"Resume bulk and scheduled work? [y/N] ", printable.Text(s.Line())), "nothing was done")
}

// durationText writes a duration --json gives as Go writes it ("5m0s") as
// printable.Duration does ("5m").
func durationText(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil {
		return s
	}
	return printable.Duration(d)
}
