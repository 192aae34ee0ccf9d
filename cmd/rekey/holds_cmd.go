package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

const holdsUsage = `usage: rekey holds [list] [--json]
       rekey holds release INSTANCE_ID/CREDENTIAL_ID --confirm

list shows the revocations held because the issuer reports the old
credential still in use: since when, the last use and by whom, the next
re-check and the cap (REKEY_HOLD_MAX past the grace).
release revokes a held credential at once, without asking the issuer again:
whoever still uses it will fail. It needs --confirm.
`

// releasedBy names the CLI in the "hold_released" audit event.
const releasedBy = "an operator (rekey holds release)"

// holdsListLen is how many holds list prints at most.
const holdsListLen = 1000

func runHolds(ctx context.Context, env *environ, args []string) error {
	if len(args) == 0 {
		args = []string{"list"}
	}
	fs := flag.NewFlagSet("holds "+args[0], flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() { fmt.Fprint(env.stderr, holdsUsage) }
	asJSON := fs.Bool("json", false, "with list, print the holds as JSON")
	confirm := fs.Bool("confirm", false, "with release, confirm that the credential is revoked now")
	ids, err := parseInterspersed(fs, args[1:])
	switch {
	case err != nil, args[0] == "list" && (len(ids) > 0 || *confirm),
		args[0] == "release" && (len(ids) != 1 || *asJSON), args[0] != "list" && args[0] != "release":
		fmt.Fprint(env.stderr, holdsUsage)
		return errUsage
	case args[0] == "release" && !*confirm:
		return fmt.Errorf("releasing %s revokes it now and breaks whoever still uses it: run again with --confirm", ids[0])
	}
	a, err := openProducer(ctx, env, "holds")
	if err != nil {
		return err
	}
	defer a.Close()
	if args[0] == "list" {
		return listHolds(ctx, env.stdout, a.store, *asJSON)
	}
	return releaseHold(ctx, env.stdout, a.store, asynq.NewInspectorFromRedisClient(a.rdb), ids[0])
}

// listHolds prints the held revocations, oldest first.
func listHolds(ctx context.Context, w io.Writer, st *store.Store, asJSON bool) error {
	holds, err := st.Holds(ctx, holdsListLen)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, holds)
	}
	if len(holds) == 0 {
		_, err := fmt.Fprintln(w, "no held revocations")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHELD SINCE\tLAST USED\tBY\tNEXT CHECK\tCAP\tCAPPED")
	for _, h := range holds {
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\t%s\t%t\n", h.InstanceID, h.CredentialID, timeOrDash(h.HeldAt),
			timeOrDash(h.LastUsedAt), dashIfEmpty(h.LastUsedBy), timeOrDash(h.NextCheckAt), timeOrDash(h.CapAt), h.Capped)
	}
	fmt.Fprintf(tw, "%d held revocations\n", len(holds))
	return tw.Flush()
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// releaseHold marks the hold released and runs its revoke task now; the
// task revokes without asking the issuer and records the release.
func releaseHold(ctx context.Context, w io.Writer, st *store.Store, insp *asynq.Inspector, id string) error {
	inst, cred, ok := strings.Cut(id, "/")
	if !ok || !store.ValidID(inst) || !store.ValidID(cred) {
		return fmt.Errorf("%q is not INSTANCE_ID/CREDENTIAL_ID", id)
	}
	if err := st.RequestHoldRelease(ctx, inst, cred, releasedBy); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%s is not held", id)
		}
		return err
	}
	// The revoke task of a held credential waits in asynq's retry set;
	// when it cannot be run now, the next re-check sees the release.
	if err := insp.RunTask(tasks.QueueRevoke, tasks.RevokeTaskID(inst, cred)); err != nil {
		_, err = fmt.Fprintf(w, "%s released; its revoke task runs at its next re-check\n", id)
		return err
	}
	_, err := fmt.Fprintf(w, "%s released; its revoke task runs now\n", id)
	return err
}

// writeHoldStatus adds the held revocations to `rekey scheduler status`.
func writeHoldStatus(ctx context.Context, w io.Writer, st *store.Store, now time.Time) error {
	sum, err := st.HoldStats(ctx)
	if err != nil {
		return err
	}
	if sum.Held == 0 {
		_, err = fmt.Fprintln(w, "held revocations: none")
		return err
	}
	_, err = fmt.Fprintf(w, "held revocations: %d, the oldest held for %s (rekey holds list)\n",
		sum.Held, now.Sub(sum.Oldest).Round(time.Second))
	return err
}
