package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/spf13/cobra"

	"github.com/rekeyhq/rekey/internal/reconcile"
	"github.com/rekeyhq/rekey/internal/store"
)

// expeditedBy names the CLI in the "revoke_expedited" audit events; the
// customer's timeline reads it as "an operator".
const expeditedBy = "an operator (rekey revocations expedite)"

func newExpediteCmd(env *environ) *cobra.Command {
	var confirm, asJSON bool
	c := &cobra.Command{
		Use:   "expedite INSTANCE_ID[/CREDENTIAL_ID]...",
		Short: "Revoke previous credentials now instead of at the end of their grace",
		Long: `Revokes now, rather than when their grace ends, the previous credentials of the named instances:
INSTANCE_ID for every one it has waiting, INSTANCE_ID/CREDENTIAL_ID for one. For after an incident:
apps not restarted since the rotation that superseded the credential fail, and a revocation held
because the credential is still in use is not held any more. The revoke tasks run at once.

A current, pending or unconfirmed credential is in an app's config, or may be, and is never revoked;
naming one, an unknown instance or credential, or an instance with nothing waiting refuses the whole
command, naming each and its state, and nothing is changed. Asks on a terminal; needs --confirm off one.`,
		Example: `  rekey revocations expedite inst-123
  rekey revocations expedite inst-123/cred-9 inst-456 --confirm
  rekey revocations expedite inst-123 --confirm --json`,
		RunE: func(c *cobra.Command, args []string) error {
			names, err := parseExpediteArgs(args)
			if err != nil {
				return err
			}
			if !confirm && !env.terminal {
				return usagef("nothing was expedited: pass --confirm when not on a terminal")
			}
			return withProducer(c.Context(), env, "revocations", func(a *app) error {
				p := reconcile.Params{Store: a.store, Enqueuer: a.queue, Inspector: asynq.NewInspectorFromRedisClient(a.rdb), Logger: a.log}
				return expedite(c.Context(), env, p, names, confirm, asJSON)
			})
		},
	}
	c.Flags().BoolVar(&confirm, "confirm", false, "revoke without asking (required when not on a terminal)")
	c.Flags().BoolVar(&asJSON, "json", false, "print what was done as JSON")
	return c
}

// expediteName is one argument of `revocations expedite`: an instance, and
// one of its credentials or "" for every previous one.
type expediteName struct{ instance, credential string }

func (n expediteName) String() string {
	if n.credential == "" {
		return n.instance
	}
	return n.instance + "/" + n.credential
}

// parseExpediteArgs reads INSTANCE_ID[/CREDENTIAL_ID] arguments.
func parseExpediteArgs(args []string) ([]expediteName, error) {
	if len(args) == 0 {
		return nil, usagef("name instances (INSTANCE_ID) or credentials (INSTANCE_ID/CREDENTIAL_ID)")
	}
	names := make([]expediteName, len(args))
	for i, a := range args {
		inst, cred, hasCred := strings.Cut(a, "/")
		if !store.ValidID(inst) || hasCred && !store.ValidID(cred) {
			return nil, usagef("%q is not INSTANCE_ID or INSTANCE_ID/CREDENTIAL_ID", a)
		}
		names[i] = expediteName{inst, cred}
	}
	return names, nil
}

// expedited is one credential `revocations expedite` revoked now.
type expedited struct {
	ID           string `json:"id"`
	InstanceID   string `json:"instance_id"`
	CredentialID string `json:"credential_id"`
	// WasRevokeAt is the revoke time the grace gave it.
	WasRevokeAt time.Time `json:"was_revoke_at"`
	// RevokeAt is its revoke time now, zero when it was revoked meanwhile.
	RevokeAt time.Time `json:"revoke_at,omitzero"`
	// Task is what became of its revoke task (reconcile.RevokeTask), or
	// "revoked" when it was revoked before it could be expedited.
	Task string `json:"task"`
}

// expedite plans, asks, then moves each planned revocation's time to now
// and runs its revoke task.
func expedite(ctx context.Context, env *environ, p reconcile.Params, names []expediteName, confirm, asJSON bool) error {
	plan, left, err := planExpedite(ctx, p.Store, names)
	if err != nil {
		return err
	}
	if len(left.dead) > 0 {
		// Left out, and said: in an incident those old credentials still
		// work, and only the issuer's fix and a retry revoke them.
		fmt.Fprintf(env.stderr, "not expedited: %s: %s\n", strings.Join(left.dead, ", "), deadNotExpedited(strings.Join(left.dead, " ")))
	}
	for _, r := range left.rotating {
		// The credential an incident is about is often the current one,
		// which the rotation in flight makes previous only once it is done.
		fmt.Fprintf(env.stderr, "not expedited: %s\n", r)
	}
	if !confirm {
		yes, err := ask(ctx, env, expediteQuestion(plan), "nothing was expedited")
		if err != nil {
			return err
		}
		if !yes {
			return errors.New("nothing was expedited: answer y, or pass --confirm")
		}
	}
	done := make([]expedited, 0, len(plan))
	for _, r := range plan {
		e, err := expediteOne(ctx, p, r)
		if errors.Is(err, store.ErrRevocationDead) {
			// Set aside since the plan read it: it waits for an operator's retry.
			fmt.Fprintf(env.stderr, "not expedited: %s: %s\n", e.ID, deadNotExpedited(e.ID))
			continue
		}
		if err != nil {
			return errors.Join(err, writeExpedited(env.stdout, done, asJSON))
		}
		done = append(done, e)
	}
	waiting := 0
	for _, e := range done {
		if e.Task != store.CredentialRevoked {
			waiting++
		}
	}
	warnRevokePaused(env.stderr, p.Inspector, waiting)
	return writeExpedited(env.stdout, done, asJSON)
}

// expediteOne moves r's revoke time to now and runs its revoke task.
func expediteOne(ctx context.Context, p reconcile.Params, r store.Revocation) (expedited, error) {
	e := expedited{ID: r.InstanceID + "/" + r.CredentialID, InstanceID: r.InstanceID, CredentialID: r.CredentialID,
		WasRevokeAt: r.RevokeAt}
	now, err := p.Store.ExpediteRevocation(ctx, r.InstanceID, r.CredentialID, expeditedBy)
	if errors.Is(err, store.ErrRevocationDead) {
		return e, err // set aside since the plan read it
	}
	if errors.Is(err, store.ErrConflict) {
		// Checked previous a moment ago: only a revocation makes it leave that state.
		e.Task = store.CredentialRevoked
		return e, nil
	}
	if err != nil {
		return e, fmt.Errorf("expedite %s: %w", e.ID, err)
	}
	e.RevokeAt = now.RevokeAt
	task, err := reconcile.RunRevokeNow(ctx, p, now)
	if err != nil {
		// The reconcile sweep runs a due revocation's task that waits for
		// a later time (Sweeper.expedited), so the revocation is not lost.
		done := e.ID + " is due now, but its revoke task was not run yet: the reconcile sweep runs it within a few minutes"
		if ctx.Err() != nil {
			return e, &stoppedError{done: done, err: err}
		}
		return e, fmt.Errorf("%s (%w)", done, err)
	}
	e.Task = string(task)
	return e, nil
}

// expediteQuestion asks whether to revoke plan now.
func expediteQuestion(plan []store.Revocation) string {
	ids := make([]string, len(plan))
	for i, r := range plan {
		ids[i] = r.InstanceID + "/" + r.CredentialID
	}
	shown := strings.Join(ids, ", ")
	if len(ids) > 10 {
		shown = strings.Join(ids[:10], ", ") + fmt.Sprintf(" and %d more", len(ids)-10)
	}
	return fmt.Sprintf("Revoking %d previous credentials now (%s) breaks every app not restarted since its rotation, and whoever else still uses them. Revoke now? [y/N] ",
		len(plan), shown)
}

// writeExpedited prints what was expedited, as lines or as JSON.
func writeExpedited(w io.Writer, done []expedited, asJSON bool) error {
	if asJSON {
		return writeJSON(w, done)
	}
	for _, e := range done {
		var err error
		switch reconcile.RevokeTask(e.Task) {
		case reconcile.RevokeTaskRunning:
			_, err = fmt.Fprintf(w, "%s: due now (was %s); its revoke task is running, and runs again if it read the old time\n", e.ID, timeOrDash(e.WasRevokeAt))
		case store.CredentialRevoked:
			_, err = fmt.Fprintf(w, "%s: revoked meanwhile\n", e.ID)
		default:
			_, err = fmt.Fprintf(w, "%s: due now (was %s); its revoke task runs now\n", e.ID, timeOrDash(e.WasRevokeAt))
		}
		if err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%d previous credentials expedited: follow them with 'rekey instances show ID'\n", len(done))
	return err
}

// leftOut is what `revocations expedite` leaves out of its plan, and says:
// revocations the issuer refused for good (dead), and, for each instance
// named whole with a rotation in flight, the current credential that
// rotation makes previous only once it is done (rotating).
type leftOut struct{ dead, rotating []string }

// planExpedite resolves names to the previous credentials they stand for,
// each once. It refuses, naming every one, a name that stands for none:
// nothing is expedited unless every name can be.
func planExpedite(ctx context.Context, st *store.Store, names []expediteName) (plan []store.Revocation, left leftOut, err error) {
	var refused []error
	for _, n := range names {
		revs, err := expediteTargets(ctx, st, n, &left)
		var why *refusal
		switch {
		case errors.As(err, &why):
			refused = append(refused, err)
		case err != nil:
			return nil, leftOut{}, err
		}
		for _, r := range revs {
			if !slices.ContainsFunc(plan, func(q store.Revocation) bool { return q.CredentialID == r.CredentialID && q.InstanceID == r.InstanceID }) {
				plan = append(plan, r)
			}
		}
	}
	if len(refused) > 0 {
		return nil, leftOut{}, errors.Join(append(refused, errors.New("nothing was expedited"))...)
	}
	return plan, left, nil
}

// refusal is a name `revocations expedite` refuses, and why.
type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }

func refusef(format string, a ...any) error { return &refusal{fmt.Sprintf(format, a...)} }

// expediteTargets returns the previous credentials n stands for: the one it
// names, or every one its instance has waiting, less those the issuer
// refused for good, which it adds to left.dead; an instance named whole
// with a rotation in flight is noted in left.rotating. A *refusal says why
// none.
func expediteTargets(ctx context.Context, st *store.Store, n expediteName, left *leftOut) ([]store.Revocation, error) {
	in, err := st.Instance(ctx, n.instance)
	if errors.Is(err, store.ErrNotFound) {
		return nil, refusef("%s: instance %s is not registered%s", n, n.instance, timeNotTaken(n))
	}
	if err != nil {
		return nil, err
	}
	if n.credential != "" {
		r, err := expediteCredential(ctx, st, in, n.credential)
		if err != nil {
			return nil, err
		}
		return []store.Revocation{r}, nil
	}
	waiting, err := st.Previous(ctx, n.instance)
	if err != nil {
		return nil, err
	}
	rotating := ""
	if in.InFlight != "" {
		rotating = fmt.Sprintf("rotation %s of %s is in flight: its current credential, %s, becomes previous once that "+
			"rotation is done, with its grace; run 'rekey revocations expedite %s' again then to revoke it now "+
			"('rekey instances show %s' says when)", in.InFlight, n.instance, dashIfEmpty(in.CurrentCredential), n.instance, n.instance)
	}
	var out []store.Revocation
	var deadOnes []string
	for _, w := range waiting {
		c, err := st.Credential(ctx, n.instance, w.CredentialID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if err != nil || !expeditable(c) {
			continue
		}
		if isDead, err := st.IsRevocationDead(ctx, n.instance, w.CredentialID); err != nil {
			return nil, err
		} else if isDead {
			deadOnes = append(deadOnes, n.instance+"/"+w.CredentialID)
			continue
		}
		out = append(out, store.Revocation{InstanceID: n.instance, CredentialID: w.CredentialID, RevokeAt: c.RevokeAt})
	}
	if len(out) == 0 && len(deadOnes) > 0 {
		why := deadNotExpedited(strings.Join(deadOnes, " "))
		if rotating != "" {
			why += "; " + rotating
		}
		return nil, refusef("%s: %s", n, why)
	}
	left.dead = append(left.dead, deadOnes...)
	if len(out) == 0 && rotating != "" {
		return nil, refusef("%s: %s has no previous credential waiting for revocation; %s", n, describeInstance(in), rotating)
	}
	if len(out) == 0 {
		return nil, refusef("%s: %s has no previous credential waiting for revocation (its current credential, %s, is never revoked)",
			n, describeInstance(in), dashIfEmpty(in.CurrentCredential))
	}
	if rotating != "" {
		left.rotating = append(left.rotating, rotating)
	}
	return out, nil
}

// timeNotTaken says, of an unknown instance named by what reads as a time
// or a grace (2h, 0, 2d, now), that expedite takes none: an operator who
// typed one meant a sooner revocation, which expedite is, at once.
func timeNotTaken(n expediteName) string {
	v := strings.TrimRight(n.instance, "smhdw")
	if n.credential != "" || n.instance != "now" && (v == "" || strings.Trim(v, "0123456789.") != "") {
		return ""
	}
	return " (expedite takes no time or grace: it revokes the previous credentials of the instances named now; " +
		"name INSTANCE_ID or INSTANCE_ID/CREDENTIAL_ID only)"
}

// expediteCredential checks that credential cred of in may be revoked now.
func expediteCredential(ctx context.Context, st *store.Store, in store.Instance, cred string) (store.Revocation, error) {
	id := in.ID + "/" + cred
	c, err := st.Credential(ctx, in.ID, cred)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Revocation{}, refusef("%s: %s has no credential %s", id, describeInstance(in), cred)
	case err != nil:
		return store.Revocation{}, err
	case expeditable(c):
		if dead, err := st.IsRevocationDead(ctx, in.ID, cred); err != nil {
			return store.Revocation{}, err
		} else if dead {
			return store.Revocation{}, refusef("%s: %s", id, deadNotExpedited(id))
		}
		return store.Revocation{InstanceID: in.ID, CredentialID: cred, RevokeAt: c.RevokeAt}, nil
	case c.Revoked():
		return store.Revocation{}, refusef("%s: already revoked, at %s", id, timeOrDash(c.RevokedAt))
	}
	return store.Revocation{}, refusef("%s: the credential is %s: %s", id, c.State, notExpeditable(c.State))
}

// deadNotExpedited says why revocations the issuer refused for good (the
// dead-letter set) are not expedited: their revoke time has passed, and
// what they wait for is the issuer's fix and an operator's retry, which
// records who retried.
func deadNotExpedited(ids string) string {
	return "the issuer refused its revocation and it was set aside (rekey revocations dead): " +
		"fix the issuer, then 'rekey revocations retry " + ids + "'"
}

// expeditable reports whether c waits for its revocation after a grace,
// which expediting brings forward: a previous credential not yet revoked.
func expeditable(c store.Credential) bool {
	return c.State == store.CredentialPrevious && !c.Revoked()
}

// notExpeditable says why a credential in state is not revoked early.
func notExpeditable(state string) string {
	switch state {
	case store.CredentialCurrent:
		return "it is in the apps' config and is never revoked; rotate the instance first, then expedite the credential it supersedes"
	case store.CredentialPending:
		return "its rotation is under way and may put it in the apps' config; it is never revoked before it is superseded"
	case store.CredentialUnconfirmed:
		return "Heroku may hold it in the apps' config (its push had no answer); it is revoked only once a later rotation replaces it"
	case store.CredentialDiscarded:
		return "it was never published, or its instance was deprovisioned; its revocation runs at its own time, which expedite does not change"
	}
	return "only a previous credential's revocation is brought forward"
}

// describeInstance names an instance, and says when it is deprovisioned.
func describeInstance(in store.Instance) string {
	if in.Deprovisioned() {
		return "instance " + in.ID + " (deprovisioned)"
	}
	return "instance " + in.ID
}
