package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rekeyhq/rekey/internal/printable"
	"github.com/rekeyhq/rekey/internal/store"
)

// sealedValues is what the keys commands need of the store (*store.Store).
type sealedValues interface {
	SealedStatus(ctx context.Context, maxValues int64) (store.SealedStatus, error)
	Reseal(ctx context.Context, progress func(store.ResealResult)) (store.ResealResult, error)
	Keyrings(ctx context.Context) ([]store.Keyring, error)
	KeyIDs() []string
}

var _ sealedValues = (*store.Store)(nil)

// errUnreadable is returned when stored values cannot be opened, so the
// command exits non-zero and a script does not drop a key on its word.
var errUnreadable = errors.New("some stored values cannot be opened with REKEY_ENCRYPTION_KEYS")

func newKeysCmd(env *environ) *cobra.Command {
	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "How many stored sealed values each key of REKEY_ENCRYPTION_KEYS opens",
		Long: `Counts every stored sealed value (OAuth tokens, pending credentials' config, the fingerprint
key) by the key of REKEY_ENCRYPTION_KEYS that opens it, and how many none opens, then lists the
running processes and the key each seals under. Exits 1 when some cannot be opened, or when every
value is under the first key but a running process seals under another, so a script does not drop a
key on its word.`,
		Example: `  rekey keys status
  rekey keys status --json | jq .unreadable_total`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return withProducer(c.Context(), env, "keys", func(a *app) error { return keysStatus(c.Context(), a.store, env.stdout, asJSON) })
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print the counts as JSON")
	var force bool
	reseal := &cobra.Command{
		Use:   "reseal",
		Short: "Seal every stored value again under the first key (once every process has it first)",
		Long: `Seals every stored value again under the first key of REKEY_ENCRYPTION_KEYS, each with a
compare-and-set, and can be run again. Run it only once every running process (web, worker, clock,
one-off) holds the new key first in REKEY_ENCRYPTION_KEYS: restart them all with NEW,OLD first. A
process still on the old list cannot open what reseal wrote, and one with the new key listed but not
first keeps sealing under the old key. Every web, worker and clock process says in Redis which keys
it holds, renewed every minute: reseal refuses to start while one that is running seals under
another key than the first here, and names it. With that done it is safe while workers run: a value
a rotation rewrote meanwhile is read again, not overwritten. With REKEY_ISSUER=postgres, pin
REKEY_POSTGRES_KEY before changing the first key (README.md, "Encryption keys"). Progress on stderr,
counts on stdout; exits 1 when a value was left under another key.`,
		Example: `  rekey keys reseal && rekey keys status`,
		Args:    noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return withProducer(c.Context(), env, "keys", func(a *app) error {
				return resealKeys(c.Context(), a.store, env.stdout, env.stderr, force)
			})
		},
	}
	reseal.Flags().BoolVar(&force, "force", false,
		"reseal even though running processes seal under another key (they then cannot open what it writes)")
	return newGroupCmd(&cobra.Command{
		Use:   "keys",
		Short: "Encryption keys: values per key; reseal them under the first",
		Long: `To retire a key: with REKEY_ISSUER=postgres, first pin REKEY_POSTGRES_KEY (README.md, "Encryption
keys"); put the new key first in REKEY_ENCRYPTION_KEYS and keep the old one after it (NEW,OLD),
restart every process, and only then run 'rekey keys reseal'; check 'rekey keys status' shows
nothing under the old key, then drop it.`,
		Example: `  rekey keys status
  rekey keys reseal`,
	}, status, reseal)
}

// keysStatus counts every stored sealed value by the key that opens it and
// prints the count. It returns errUnreadable when some cannot be opened,
// and errProcessKeys when every value is under the first key but a running
// process seals under another: what it writes from then on is under that
// key, which must not be dropped yet.
func keysStatus(ctx context.Context, src sealedValues, w io.Writer, asJSON bool) error {
	st, err := src.SealedStatus(ctx, 0)
	if err != nil {
		return err
	}
	rings, err := src.Keyrings(ctx)
	if err != nil {
		return err
	}
	behind, _ := sealingElsewhere(rings, st.KeyIDs)
	if asJSON {
		err = writeKeysJSON(w, st, rings)
	} else {
		// In one write, whose error is the command's: counts that could
		// not be printed are no counts read.
		var b strings.Builder
		writeKeysText(&b, st, behind)
		writeProcessKeys(&b, st.KeyIDs, rings)
		_, err = io.WriteString(w, b.String())
	}
	switch {
	case err != nil:
	case st.UnreadableTotal() > 0:
		err = fmt.Errorf("%w: %d values", errUnreadable, st.UnreadableTotal())
	case len(behind) > 0 && st.ByKey[0] == st.Values:
		// Every value under key 1 would clear the other keys for
		// dropping; while values remain under another key the counts
		// already say not to.
		err = fmt.Errorf("%w (key %s): %s", errProcessKeys, st.KeyIDs[0], printable.Text(strings.Join(behind, "; ")))
	}
	return err
}

// keyCount is one configured key in `rekey keys status --json`.
type keyCount struct {
	Position int    `json:"position"`
	ID       string `json:"id"`
	Seals    bool   `json:"seals"`
	Values   int64  `json:"values"`
}

// processKeys is one running process in `rekey keys status --json`.
type processKeys struct {
	Process string   `json:"process"`
	Seals   string   `json:"seals"`
	KeyIDs  []string `json:"key_ids"`
}

func writeKeysJSON(w io.Writer, st store.SealedStatus, rings []store.Keyring) error {
	keys := make([]keyCount, len(st.KeyIDs))
	for i, id := range st.KeyIDs {
		keys[i] = keyCount{Position: i + 1, ID: id, Seals: i == 0, Values: st.ByKey[i]}
	}
	procs := make([]processKeys, len(rings))
	for i, r := range rings {
		procs[i] = processKeys{Process: r.Process, Seals: r.Seals(), KeyIDs: r.KeyIDs}
	}
	out := struct {
		Keys            []keyCount       `json:"keys"`
		Unreadable      map[string]int64 `json:"unreadable"`
		UnreadableTotal int64            `json:"unreadable_total"`
		Values          int64            `json:"values"`
		KeysExamined    int64            `json:"keys_examined"`
		Processes       []processKeys    `json:"processes"`
	}{keys, st.Unreadable, st.UnreadableTotal(), st.Values, st.Keys, procs}
	return writeJSON(w, out)
}

// writeKeysText prints the counts; behind lists the running processes
// that seal under another key than the first (sealingElsewhere), which
// keep writing under a key the counts alone would clear for dropping.
func writeKeysText(w io.Writer, st store.SealedStatus, behind []string) {
	fmt.Fprintf(w, "%s in %s; REKEY_ENCRYPTION_KEYS holds %s "+
		"(ids are the first 8 hex digits of SHA-256 of each key):\n", count(int(st.Values), "sealed value", "sealed values"),
		count(int(st.Keys), "Redis key", "Redis keys"), count(len(st.KeyIDs), "key", "keys"))
	for i, id := range st.KeyIDs {
		role := ""
		if i == 0 {
			role = " (seals)"
		}
		fmt.Fprintf(w, "  key %d  %s%-8s %s\n", i+1, id, role, count(int(st.ByKey[i]), "value", "values"))
	}
	if n := st.UnreadableTotal(); n > 0 {
		fmt.Fprintf(w, "  cannot be opened  %s: %s\n", count(int(n), "value", "values"), printable.Text(unreadableText(st)))
	}
	if older := st.Values - st.UnreadableTotal() - st.ByKey[0]; older > 0 {
		fmt.Fprintf(w, "%s still under an older key: run 'rekey keys reseal' before dropping it\n",
			count(int(older), "value is", "values are"))
	} else if len(behind) > 0 {
		fmt.Fprintf(w, "every value is under key 1, but %s under another key: restart %s with key 1 first, "+
			"then run 'rekey keys reseal' again before dropping any key\n",
			count(len(behind), "running process still seals", "running processes still seal"), pronoun(len(behind)))
	} else if len(st.KeyIDs) > 1 && st.UnreadableTotal() == 0 {
		fmt.Fprintln(w, "every value is under key 1: the other keys can be dropped from REKEY_ENCRYPTION_KEYS")
	}
}

func pronoun(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

// writeProcessKeys says which key each running process seals under, by
// its position here when it has one.
func writeProcessKeys(w io.Writer, ids []string, rings []store.Keyring) {
	if len(rings) == 0 {
		fmt.Fprintln(w, "no running process announces its keys")
		return
	}
	fmt.Fprintf(w, "%s running:\n", count(len(rings), "process", "processes"))
	for _, r := range rings {
		where := "a key REKEY_ENCRYPTION_KEYS here does not hold"
		if pos := slices.Index(ids, r.Seals()); pos >= 0 {
			where = fmt.Sprintf("key %d", pos+1)
		}
		// A process's name and keys are what it announced in Redis.
		fmt.Fprintf(w, "  %s\n", printable.Text(fmt.Sprintf("%s  seals under %s (%s), holds %s", r.Process, r.Seals(), where,
			count(len(r.KeyIDs), "key", "keys"))))
	}
}

// unreadableText says, per key id, why values did not open.
func unreadableText(st store.SealedStatus) string {
	ids := make([]string, 0, len(st.Unreadable))
	for id := range st.Unreadable {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		why := "which REKEY_ENCRYPTION_KEYS does not hold: add it back"
		if pos := slices.Index(st.KeyIDs, id); pos >= 0 {
			why = fmt.Sprintf("key %d, yet they do not open: altered or copied elsewhere", pos+1)
		}
		parts[i] = fmt.Sprintf("%d sealed under key %s, %s", st.Unreadable[id], id, why)
	}
	return strings.Join(parts, "; ")
}

// resealKeys seals every stored value again under the first key, with
// progress on stderr and the counts on stdout. It refuses to start while a
// running process seals under another key (checkProcessKeys), and fails
// when a value was left under another key (unreadable, or changing too
// fast to reseal) or when such a process started while it ran.
func resealKeys(ctx context.Context, src sealedValues, stdout, stderr io.Writer, force bool) error {
	if err := checkProcessKeys(ctx, src, stderr, force); err != nil {
		return err
	}
	res, err := src.Reseal(ctx, func(p store.ResealResult) {
		fmt.Fprintf(stderr, "resealing: %d Redis keys examined, %d resealed, %d already under key 1\n",
			p.Keys, p.Resealed, p.Current)
	})
	if err != nil && ctx.Err() != nil {
		return &stoppedError{done: "the values resealed so far stay resealed; run 'rekey keys reseal' again to finish", err: err}
	}
	if err != nil {
		return fmt.Errorf("reseal: %w (what was resealed stays so; run it again)", err)
	}
	fmt.Fprintf(stdout, "%d sealed values in %d Redis keys: %d resealed under key 1, %d already under it, "+
		"%d removed by rotations meanwhile, %d unreadable, %d busy\n",
		res.Values, res.Keys, res.Resealed, res.Current, res.Gone, res.Unreadable, res.Busy)
	switch {
	case res.Unreadable > 0:
		return fmt.Errorf("%w: %d values (see 'rekey keys status')", errUnreadable, res.Unreadable)
	case res.Busy > 0:
		return fmt.Errorf("%d values kept changing under running rotations: run 'rekey keys reseal' again", res.Busy)
	}
	if force {
		return nil
	}
	// A process that started meanwhile on the old list sealed under the
	// old key what it wrote since.
	rings, err := src.Keyrings(ctx)
	if err != nil {
		return err
	}
	if behind, _ := sealingElsewhere(rings, src.KeyIDs()); len(behind) > 0 {
		return fmt.Errorf("%w since reseal started: %s. Restart them with the new key first, then run 'rekey keys reseal' again",
			errProcessKeys, strings.Join(behind, "; "))
	}
	return nil
}

// errProcessKeys is reseal's refusal while running processes seal under
// another key.
var errProcessKeys = errors.New("running processes do not seal under the first key of REKEY_ENCRYPTION_KEYS here")

// checkProcessKeys reads which keys the running processes announced
// (store.Keyrings) and refuses, unless force, when one seals under another
// key than the first here: such a process cannot open what reseal writes
// if it lacks that key, and keeps sealing under its own if it has it
// further down. It says on stderr what it found.
func checkProcessKeys(ctx context.Context, src sealedValues, stderr io.Writer, force bool) error {
	rings, err := src.Keyrings(ctx)
	if err != nil {
		return err
	}
	ids := src.KeyIDs()
	behind, reversed := sealingElsewhere(rings, ids)
	switch {
	case len(rings) == 0:
		fmt.Fprintf(stderr, "no running process announces its keys: check that every web, worker and clock "+
			"process runs with key %s first in REKEY_ENCRYPTION_KEYS\n", ids[0])
	case len(behind) == 0:
		fmt.Fprintf(stderr, "%s running, every one sealing under key %s\n", count(len(rings), "process", "processes"), ids[0])
	case force:
		fmt.Fprintf(stderr, "resealing anyway (--force), although not every running process seals under key %s: %s\n",
			ids[0], printable.Text(strings.Join(behind, "; ")))
	case reversed != "":
		return fmt.Errorf("reseal refused: %w (key %s): %s. %s", errProcessKeys, ids[0], strings.Join(behind, "; "), reversed)
	default:
		return fmt.Errorf("reseal refused: %w (key %s): %s. Restart them with the new key first and the old one after it "+
			"(NEW,OLD), then run 'rekey keys reseal' again; one that has stopped drops out of this list within %s, "+
			"and --force reseals anyway", errProcessKeys, ids[0], strings.Join(behind, "; "), keyringTTL)
	}
	return nil
}

// sealingElsewhere lists the running processes that seal under another
// key than ids' first, each with what it lacks. When every running process
// seals under one key that ids hold further down, and holds ids' first
// too, the list here is likely the wrong way round: reversed then says so;
// when that key is not in ids at all, ids are out of date, and reversed
// says that instead.
func sealingElsewhere(rings []store.Keyring, ids []string) (behind []string, reversed string) {
	first := ids[0]
	agreed := ""
	for i, r := range rings {
		if i == 0 || r.Seals() == agreed {
			agreed = r.Seals()
		} else {
			agreed = "-"
		}
		if r.Seals() == first {
			continue
		}
		what := "seals under key " + r.Seals()
		if !slices.Contains(r.KeyIDs, first) {
			what += " and cannot open key " + first
		}
		behind = append(behind, r.Process+" ("+what+")")
	}
	pos := slices.Index(ids, agreed)
	if len(behind) == len(rings) && agreed != "-" && pos < 0 {
		// The fleet agrees on a key this shell lacks: this shell's value
		// is out of date, not the processes' (and --force would reseal
		// the fleet's values back under an older key).
		return behind, fmt.Sprintf("Every running process seals under key %s, which REKEY_ENCRYPTION_KEYS here does not "+
			"hold: this shell's value is not the fleet's; run reseal with the processes' value "+
			"(heroku config:get REKEY_ENCRYPTION_KEYS)", agreed)
	}
	if len(behind) == len(rings) && pos > 0 && !slices.ContainsFunc(rings, func(r store.Keyring) bool {
		return !slices.Contains(r.KeyIDs, first)
	}) {
		reversed = fmt.Sprintf("Every running process seals under key %s, which REKEY_ENCRYPTION_KEYS here lists as key %d, "+
			"and holds key %s too: if %s is the new key, the list here is the wrong way round (put it first)",
			agreed, pos+1, first, agreed)
	}
	return behind, reversed
}
