package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/spf13/cobra"

	"github.com/rekeyhq/rekey/internal/printable"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// releasedBy names the CLI in the "hold_released" audit event.
const releasedBy = "an operator (rekey holds release)"

// holdsListLen is how many holds list prints by default, and
// maxHoldsListed the most --limit allows: the holds are read one by one
// and printed at once.
const (
	holdsListLen   = 1000
	maxHoldsListed = 100000
)

func newHoldsCmd(env *environ) *cobra.Command {
	var asJSON bool
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List the revocations held because the old credential is still in use",
		Long: `Lists the revocations held because the issuer reports the old credential still in use: since
when, the last use and by whom, the next re-check and the cap (REKEY_HOLD_MAX past the grace).
Oldest first, the oldest 1000 unless --limit says otherwise; when there are more, stderr says so.
Never a secret.`,
		Example: `  rekey holds list
  rekey holds list --json --limit 100000 | jq length`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if limit < 1 || limit > maxHoldsListed {
				return usagef("--limit must be between 1 and %d", maxHoldsListed)
			}
			return withProducer(c.Context(), env, "holds", func(a *app) error {
				return listHolds(c.Context(), env.stdout, env.stderr, a.store, limit, asJSON)
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print the holds as JSON")
	list.Flags().IntVar(&limit, "limit", holdsListLen, "list at most this many holds, the oldest first")
	var confirm bool
	release := &cobra.Command{
		Use:   "release INSTANCE_ID/CREDENTIAL_ID",
		Short: "Revoke a held credential now, without asking the issuer again",
		Long: `Revokes a held credential at once, without asking the issuer again: whoever still uses it will
fail. Asks on a terminal; needs --confirm off one.`,
		Example: `  rekey holds release inst-123/cred-9
  rekey holds release inst-123/cred-9 --confirm`,
		Args: exactArgs(1, "one INSTANCE_ID/CREDENTIAL_ID"),
		RunE: func(c *cobra.Command, args []string) error {
			inst, cred, ok := strings.Cut(args[0], "/")
			if !ok || !store.ValidID(inst) || !store.ValidID(cred) {
				return usagef("%q is not INSTANCE_ID/CREDENTIAL_ID (as 'rekey holds list' shows them)", args[0])
			}
			return withProducer(c.Context(), env, "holds", func(a *app) error {
				// A mistyped id is said to be no hold before anyone is
				// asked to break whoever uses it, or asked for --confirm.
				if _, held, err := a.store.HoldOf(c.Context(), inst, cred); err != nil {
					return err
				} else if !held {
					return notHeld(args[0])
				}
				if !confirm && !env.terminal {
					return usagef("%s not released: pass --confirm when not on a terminal", args[0])
				}
				if !confirm {
					yes, err := ask(c.Context(), env, fmt.Sprintf("Releasing %s revokes it now and breaks whoever still uses it. Release? [y/N] ", args[0]),
						"nothing was done")
					if err != nil {
						return err
					}
					if !yes {
						return fmt.Errorf("%s not released: answer y, or pass --confirm", args[0])
					}
				}
				return releaseHold(c.Context(), env, a.store, asynq.NewInspectorFromRedisClient(a.rdb), args[0])
			})
		},
	}
	release.Flags().BoolVar(&confirm, "confirm", false, "release without asking (required when not on a terminal)")
	return newGroupCmd(&cobra.Command{
		Use:   "holds",
		Short: "Revocations held while the old credential is still in use",
		Long: `A previous credential's revocation waits past its grace while the issuer reports it in use
(README.md, "Holds: revocation that waits for disuse"); 'list' shows the holds and 'release' revokes
one now.`,
		Example: `  rekey holds list
  rekey holds release inst-123/cred-9 --confirm`,
	}, list, release)
}

// listHolds prints up to limit held revocations, oldest first, on w, and
// what is said about the list on notes (as listDeadRevocations does),
// there are more included, also under --json.
func listHolds(ctx context.Context, w, notes io.Writer, st *store.Store, limit int, asJSON bool) error {
	holds, err := st.Holds(ctx, int64(limit)+1)
	if err != nil {
		return err
	}
	more := len(holds) > limit
	holds = holds[:min(len(holds), limit)]
	moreNote := func() error {
		if !more {
			return nil
		}
		_, err := fmt.Fprintf(notes, "the oldest %s listed, there are more: --limit %d lists more\n",
			count(len(holds), "held revocation", "held revocations"), min(2*limit, maxHoldsListed))
		return err
	}
	if asJSON {
		if err := writeJSON(w, holds); err != nil {
			return err
		}
		return moreNote()
	}
	if len(holds) == 0 {
		_, err := fmt.Fprintln(notes, "no held revocations")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHELD SINCE\tLAST USED\tBY\tNEXT CHECK\tCAP\tCAPPED")
	for _, h := range holds {
		// The hint of who used it is the issuer's text: printable.Text
		// keeps it from acting on the terminal or breaking the table.
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\t%s\t%t\n", printable.Text(h.InstanceID), printable.Text(h.CredentialID),
			timeOrDash(h.HeldAt), timeOrDash(h.LastUsedAt), printable.Text(dashIfEmpty(h.LastUsedBy)), timeOrDash(h.NextCheckAt),
			timeOrDash(h.CapAt), h.Capped)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if more {
		return moreNote()
	}
	_, err = fmt.Fprintln(notes, count(len(holds), "held revocation", "held revocations"))
	return err
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// notHeld refuses to release id, which is not held, and says where the
// held ones are listed.
func notHeld(id string) error {
	return fmt.Errorf("%s is not held ('rekey holds list' lists the held revocations)", id)
}

// releaseHold marks the hold released and runs its revoke task now; the
// task revokes without asking the issuer and records the release. It warns
// on stderr when the revoke queue is paused.
func releaseHold(ctx context.Context, env *environ, st *store.Store, insp *asynq.Inspector, id string) error {
	inst, cred, ok := strings.Cut(id, "/")
	if !ok || !store.ValidID(inst) || !store.ValidID(cred) {
		return fmt.Errorf("%q is not INSTANCE_ID/CREDENTIAL_ID", id)
	}
	if err := st.RequestHoldRelease(ctx, inst, cred, releasedBy); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notHeld(id) // released or revoked since the look
		}
		return err
	}
	// The revoke task of a held credential waits in asynq's retry set;
	// when it cannot be run now, the next re-check sees the release.
	when := "now"
	if err := insp.RunTask(tasks.QueueRevoke, tasks.RevokeTaskID(inst, cred)); err != nil {
		when = "at its next re-check"
	}
	warnRevokePaused(env.stderr, insp, 1)
	_, err := fmt.Fprintf(env.stdout, "%s released; its revoke task runs %s\n", id, when)
	return err
}

// writeHoldStatus adds the held revocations to `rekey scheduler status`.
func writeHoldStatus(ctx context.Context, w io.Writer, st *store.Store, now time.Time) error {
	sum, err := st.HoldStats(ctx)
	if err != nil {
		return err
	}
	if sum.Held == 0 {
		_, err = fmt.Fprintln(w, "held revocations:   none")
		return err
	}
	_, err = fmt.Fprintf(w, "held revocations:   %d, the oldest held for %s (rekey holds list)\n",
		sum.Held, now.Sub(sum.Oldest).Round(time.Second))
	return err
}
