package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rekeyhq/rekey/internal/printable"
	"github.com/rekeyhq/rekey/internal/store"
)

func newBatchesFailedCmd(env *environ) *cobra.Command {
	var asJSON bool
	var codes []string
	c := &cobra.Command{
		Use:   "failed BATCH_ID",
		Short: "List the instances whose rotation of a batch failed, to rotate them again",
		Long: `Lists the instances whose rotation of the batch failed, one id a line, grouped under a comment
line naming each failure code and how many failed with it; 'rekey rotate --from -' reads that list as
it is (it skips the comment lines), so a wave's failures can be rotated again once their cause is
fixed. --code keeps only the failures with that code (repeat it for more); when it keeps none, stderr
names the codes the batch's failures have. --json prints an array of
{"instance_id", "code"}, with "joined": true on a rotation the batch joined. The batch's own
rotations are listed and those it joined, in flight when it was requested (another batch's, a
scheduled one), each instance once: the failures of a wave that 'rotate --all' joined during an
incident are rotated again with the batch's. An instance deprovisioned since is still listed: 'rekey rotate --from - --skip-invalid' leaves
it out. Failures a rekey version before this list was kept recorded are not listed: stderr
says how many, by code.`,
		Example: `  rekey batches failed bat_01J...
  rekey batches failed bat_01J... --code retries_exhausted | rekey rotate --from - --confirm
  rekey batches failed bat_01J... --json | jq -r '.[] | select(.code | startswith("push:")) | .instance_id'`,
		Args: exactArgs(1, "one BATCH_ID"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkBatchArg("failed", args[0]); err != nil {
				return err
			}
			return withProducer(c.Context(), env, "batches", func(a *app) error {
				return listBatchFailed(c.Context(), env.stdout, env.stderr, a.store, args[0], codes, asJSON)
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the failed instances as a JSON array")
	c.Flags().StringArrayVar(&codes, "code", nil, "list only the failures with this code (repeatable)")
	return c
}

// listBatchFailed prints the instances whose rotation of batch id failed
// (with one of codes, when any is given), grouped by code, codes and ids
// in order; what is said about the list goes to notes.
func listBatchFailed(ctx context.Context, w, notes io.Writer, st *store.Store, id string, codes []string, asJSON bool) error {
	failed, unlisted, err := st.BatchFailed(ctx, id)
	if err != nil {
		return batchError(id, err)
	}
	all := failed
	failed = slices.DeleteFunc(slices.Clone(failed), func(f store.FailedInstance) bool {
		return len(codes) > 0 && !slices.Contains(codes, f.Code)
	})
	maps.DeleteFunc(unlisted, func(code string, _ int64) bool {
		return len(codes) > 0 && !slices.Contains(codes, code)
	})
	if err := unlistedNote(notes, id, unlisted); err != nil {
		return err
	}
	if asJSON {
		if failed == nil {
			failed = []store.FailedInstance{}
		}
		return writeJSON(w, failed)
	}
	if len(failed) == 0 && len(unlisted) == 0 {
		_, err := fmt.Fprintf(notes, "no failed rotation of batch %s is listed%s%s\n", id, codesNote(codes), otherCodes(all))
		return err
	}
	for i, f := range failed {
		if i == 0 || f.Code != failed[i-1].Code {
			n := 1
			for n < len(failed)-i && failed[i+n].Code == f.Code {
				n++
			}
			// The code comes from the store, which keeps rekey's own codes,
			// but a comment line stays one line whatever it holds.
			if _, err := fmt.Fprintf(w, "# %s (%d)\n", printable.Text(f.Code), n); err != nil {
				return err
			}
		}
		if _, err := fmt.Fprintln(w, f.InstanceID); err != nil {
			return err
		}
	}
	return nil
}

// unlistedNote says how many failures, by code, the batch counts that its
// list does not hold (store.BatchFailed): a short or empty list is then
// not read as all that failed.
func unlistedNote(w io.Writer, id string, unlisted map[string]int64) error {
	if len(unlisted) == 0 {
		return nil
	}
	var n int64
	by := make([]string, 0, len(unlisted))
	for _, code := range slices.Sorted(maps.Keys(unlisted)) {
		n += unlisted[code]
		by = append(by, fmt.Sprintf("%s %d", printable.Text(code), unlisted[code]))
	}
	_, err := fmt.Fprintf(w, "rekey: batch %s counts %s not listed here (%s): a rekey version before this list "+
		"was kept recorded them\n",
		id, count(int(n), "failed rotation", "failed rotations"), strings.Join(by, ", "))
	return err
}

// codesNote says which codes --code kept, for the note on an empty list.
// otherCodes names the codes of a batch's listed failures (sorted by code)
// when --code kept none of them, so that a mistyped code is told from a
// batch without such failures: "; its failures' codes: a, b".
func otherCodes(failed []store.FailedInstance) string {
	var codes []string
	for i, f := range failed {
		if i == 0 || f.Code != failed[i-1].Code {
			codes = append(codes, f.Code)
		}
	}
	if len(codes) == 0 {
		return ""
	}
	return "; its failures' codes: " + printable.Text(strings.Join(codes, ", "))
}

func codesNote(codes []string) string {
	if len(codes) == 0 {
		return ""
	}
	return " with code " + printable.Text(strings.Join(codes, " or "))
}
