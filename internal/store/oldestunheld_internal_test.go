package store

import (
	"context"
	"slices"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/redistest"
)

// TestOldestUnheldScript runs oldestUnheldScript on revoke-due indexes and
// holds sets written as they are, with a small scan bound: it skips held
// entries at the head, ignores entries not due and holds of entries not
// due, and past the bound answers the entry after the held ones (an upper
// bound on the overdue), never nothing while an unheld one is due.
func TestOldestUnheldScript(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	ctx := context.Background()
	keys := oldestUnheldKeys{revokeDue: revokeDueKey(), holds: holdsKey()}
	for _, tc := range []struct {
		name  string
		due   []string // member at score 1, 2, 3, …
		holds []string
		bound int
		want  []string
	}{
		{name: "none due", bound: 10, want: []string{}},
		{name: "head not held", due: []string{"i/a", "i/b"}, bound: 10, want: []string{"i/a", "1"}},
		{name: "head held", due: []string{"i/a", "i/b"}, holds: []string{"i/a"}, bound: 10, want: []string{"i/b", "2"}},
		{name: "every due one held", due: []string{"i/a", "i/b"}, holds: []string{"i/a", "i/b"}, bound: 10, want: []string{}},
		{name: "a hold of an entry not due", due: []string{"i/a", "i/b", "i/late"}, holds: []string{"i/a", "i/late"},
			bound: 10, want: []string{"i/b", "2"}},
		{name: "past the bound", due: []string{"i/a", "i/b", "i/c", "i/d"}, holds: []string{"i/a", "i/b", "i/c"},
			bound: 1, want: []string{"i/b", "2"}},
		{name: "past the bound, one unheld within", due: []string{"i/a", "i/b"}, holds: []string{"i/a", "x/y", "x/z"},
			bound: 1, want: []string{"i/b", "2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := r.Client.Del(ctx, keys.list()...).Err(); err != nil {
				t.Fatal(err)
			}
			for i, m := range tc.due {
				score := float64(i + 1)
				if m == "i/late" {
					score = 100
				}
				r.Client.ZAdd(ctx, keys.revokeDue, redis.Z{Score: score, Member: m})
			}
			for _, m := range tc.holds {
				r.Client.ZAdd(ctx, keys.holds, redis.Z{Score: 1, Member: m})
			}
			got, err := oldestUnheldScript.Run(ctx, r.Client, keys.list(), 10, strconv.Itoa(tc.bound)).StringSlice()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
