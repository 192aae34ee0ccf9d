package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/reconcile"
	"github.com/rekeyhq/rekey/internal/store"
)

const revocationsUsage = `usage: rekey revocations dead [--json]
       rekey revocations retry ID... | --all

dead lists the revocations the issuer refused permanently (a 4xx other than
404), which the reconcile sweep set aside: they are not tried again until an
operator says so. Each line names the entry as INSTANCE_ID/CREDENTIAL_ID.
retry moves the named entries (or --all) back to due and runs their revoke
tasks again; fix the issuer's answer first. It retries nothing if any ID is
not a dead revocation.
`

// retriedBy names the CLI in the "revocation_retried" audit events.
const retriedBy = "rekey revocations retry"

// deadListPage is how many dead entries one Redis read lists.
const deadListPage = 1000

func runRevocations(ctx context.Context, env *environ, args []string) error {
	if len(args) == 0 || (args[0] != "dead" && args[0] != "retry") {
		fmt.Fprint(env.stderr, revocationsUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("revocations "+args[0], flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() { fmt.Fprint(env.stderr, revocationsUsage) }
	asJSON := fs.Bool("json", false, "with dead, print the entries as JSON")
	all := fs.Bool("all", false, "with retry, retry every dead revocation")
	ids, err := parseInterspersed(fs, args[1:])
	bad := err != nil
	switch args[0] {
	case "dead":
		bad = bad || *all || len(ids) > 0
	case "retry":
		bad = bad || *asJSON || (*all == (len(ids) > 0))
	}
	if bad {
		fmt.Fprint(env.stderr, revocationsUsage)
		return errUsage
	}
	a, err := openProducer(ctx, env, "revocations")
	if err != nil {
		return err
	}
	defer a.Close()
	if args[0] == "dead" {
		return listDeadRevocations(ctx, env.stdout, a.store, *asJSON)
	}
	p := reconcile.Params{Store: a.store, Enqueuer: a.queue, Inspector: asynq.NewInspectorFromRedisClient(a.rdb), Logger: a.log}
	return retryDeadRevocations(ctx, env.stdout, p, ids, *all)
}

// deadRow is one dead revocation as the CLI prints it.
type deadRow struct {
	ID string `json:"id"`
	store.DeadRevocation
}

// listDeadRevocations prints every entry of the dead-letter set, oldest
// first, as a table or as a JSON array.
func listDeadRevocations(ctx context.Context, w io.Writer, st *store.Store, asJSON bool) error {
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
		_, err := fmt.Fprintln(w, "no dead revocations")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tREVOKE AT\tDEAD SINCE\tREASON")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, timeOrDash(r.RevokeAt), timeOrDash(r.DeadAt), r.Reason)
	}
	fmt.Fprintf(tw, "%d dead revocations: retry them with 'rekey revocations retry ID...' or '--all'\n", len(rows))
	return tw.Flush()
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
		return err
	}
	names := make([]string, len(moved))
	for i, r := range moved {
		names[i] = r.InstanceID + "/" + r.CredentialID
	}
	fmt.Fprintf(w, "%d dead revocations moved back to due and their revoke tasks enqueued", len(moved))
	if len(names) > 0 && len(names) <= 20 {
		fmt.Fprintf(w, ": %s", strings.Join(names, ", "))
	}
	_, err = fmt.Fprintln(w)
	return err
}
