package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/spf13/cobra"

	"github.com/rekeyhq/rekey/internal/printable"
	"github.com/rekeyhq/rekey/internal/reconcile"
	"github.com/rekeyhq/rekey/internal/store"
)

// retriedBy names the CLI in the "revocation_retried" audit events.
const retriedBy = "rekey revocations retry"

// deadListPage is how many dead entries one Redis read lists.
const deadListPage = 1000

func newRevocationsCmd(env *environ) *cobra.Command {
	var asJSON bool
	dead := &cobra.Command{
		Use:   "dead",
		Short: "List the revocations the issuer refused permanently",
		Long: `Lists the revocations the issuer refused permanently (a 4xx other than 404), which the reconcile
sweep set aside: they are not tried again until an operator says so. Each line names the entry as
INSTANCE_ID/CREDENTIAL_ID, with its revoke time, when and why it was set aside; never a secret.`,
		Example: `  rekey revocations dead
  rekey revocations dead --json | jq length`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return withProducer(c.Context(), env, "revocations", func(a *app) error {
				return listDeadRevocations(c.Context(), env.stdout, env.stderr, a.store, asJSON)
			})
		},
	}
	dead.Flags().BoolVar(&asJSON, "json", false, "print the entries as JSON")
	var all bool
	retry := &cobra.Command{
		Use:   "retry ID... | --all",
		Short: "Move dead revocations back to due and run their revoke tasks again",
		Long: `Moves the named dead revocations (INSTANCE_ID/CREDENTIAL_ID, as 'dead' prints them), or --all,
back to due and runs their revoke tasks again; fix the issuer's answer first. It retries nothing if
any ID is not a dead revocation.`,
		Example: `  rekey revocations retry inst-123/cred-9
  rekey revocations retry --all`,
		RunE: func(c *cobra.Command, ids []string) error {
			if all == (len(ids) > 0) {
				return usagef("name dead revocations (INSTANCE_ID/CREDENTIAL_ID), or --all (one of them)")
			}
			for _, id := range ids {
				// What is no INSTANCE_ID/CREDENTIAL_ID is a wrong call
				// (exit 2), as for holds release; a well-formed id that is
				// not dead is refused by the retry (exit 1).
				if _, _, err := store.ParseDeadID(id); err != nil {
					return usagef("%s", printable.Text(err.Error()))
				}
			}
			return withProducer(c.Context(), env, "revocations", func(a *app) error {
				p := reconcile.Params{Store: a.store, Enqueuer: a.queue, Inspector: asynq.NewInspectorFromRedisClient(a.rdb), Logger: a.log}
				return retryDeadRevocations(c.Context(), env.stdout, p, ids, all)
			})
		},
	}
	retry.Flags().BoolVar(&all, "all", false, "retry every dead revocation")
	return newGroupCmd(&cobra.Command{
		Use:   "revocations",
		Short: "Revocations: revoke old credentials now, or list and retry those refused permanently",
		Long: `Old credentials are revoked after their grace. 'expedite' revokes an instance's old credentials now,
after an incident. A revocation the issuer refuses permanently is set aside in a dead-letter set;
'dead' lists them and 'retry' runs them again once the issuer is fixed.`,
		Example: `  rekey revocations expedite inst-123
  rekey revocations dead
  rekey revocations retry --all`,
	}, newExpediteCmd(env), dead, retry)
}

// deadRow is one dead revocation as the CLI prints it.
type deadRow struct {
	ID string `json:"id"`
	store.DeadRevocation
}

// listDeadRevocations prints every entry of the dead-letter set, oldest
// first, as a table or as a JSON array, on w; what is said about the list
// (none, how many, what to do) goes to notes, so that the rows piped on
// (awk, xargs rekey revocations retry) are ids only.
func listDeadRevocations(ctx context.Context, w, notes io.Writer, st *store.Store, asJSON bool) error {
	rows := []deadRow{}
	for offset := int64(0); ; offset += deadListPage {
		dead, err := st.DeadRevocations(ctx, offset, deadListPage)
		if err != nil {
			return err
		}
		for _, d := range dead {
			rows = append(rows, deadRow{ID: d.ID(), DeadRevocation: d})
		}
		if len(dead) < deadListPage {
			break
		}
	}
	if asJSON {
		return writeJSON(w, rows)
	}
	if len(rows) == 0 {
		_, err := fmt.Fprintln(notes, "no dead revocations")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tREVOKE AT\tDEAD SINCE\tREASON")
	for _, r := range rows {
		// The reason is the issuer's error text: printable.Text keeps it
		// from acting on the terminal or breaking the table.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", printable.Text(r.ID), printable.Text(r.State), timeOrDash(r.RevokeAt),
			timeOrDash(r.DeadAt), printable.Text(r.Reason))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(notes, "%s: retry them with 'rekey revocations retry ID...' or '--all'\n",
		count(len(rows), "dead revocation", "dead revocations"))
	return err
}

func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// retryDeadRevocations moves the dead revocations ids (or all) back to due
// and runs their revoke tasks, then says how many.
func retryDeadRevocations(ctx context.Context, w io.Writer, p reconcile.Params, ids []string, all bool) error {
	moved, err := reconcile.RetryDead(ctx, p, ids, all, retriedBy)
	if err != nil {
		// Those moved before the error stay moved: said, so that the
		// operator knows running it again finishes the rest.
		done := count(len(moved), "dead revocation", "dead revocations") + " moved back to due; run it again for the rest"
		if !all {
			// Named ids already moved are no longer dead, and a retry
			// naming them again is refused: name those left.
			left := slices.DeleteFunc(slices.Clone(ids), func(id string) bool {
				return slices.ContainsFunc(moved, func(r store.Revocation) bool { return r.InstanceID+"/"+r.CredentialID == id })
			})
			done = count(len(moved), "dead revocation", "dead revocations") + " moved back to due; the rest: rekey revocations retry " +
				strings.Join(left, " ")
		}
		if ctx.Err() != nil {
			return &stoppedError{done: done, err: err}
		}
		if len(moved) > 0 {
			return fmt.Errorf("%s, then: %w", done, err)
		}
		if errors.Is(err, reconcile.ErrNotDead) {
			return fmt.Errorf("%w ('rekey revocations dead' lists the dead revocations)", err)
		}
		return err
	}
	names := make([]string, len(moved))
	for i, r := range moved {
		names[i] = r.InstanceID + "/" + r.CredentialID
	}
	fmt.Fprint(w, count(len(moved), "dead revocation moved back to due and its revoke task enqueued",
		"dead revocations moved back to due and their revoke tasks enqueued"))
	if len(names) > 0 && len(names) <= 20 {
		fmt.Fprintf(w, ": %s", printable.Text(strings.Join(names, ", ")))
	}
	_, err = fmt.Fprintln(w)
	return err
}
