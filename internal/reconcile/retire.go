package reconcile

import (
	"context"

	"github.com/rekeyhq/rekey/internal/store"
)

// retire walks the deprovisioned instances whose keys have no expiry yet and
// gives them one once none of their credentials waits for revocation (case
// 14 of issue 8). Instances still waiting stay for a later sweep.
func (s *Sweeper) retire(ctx context.Context, res *Result) error {
	return s.walk(ctx, store.CursorRetiring, func(after store.Cursor) (int, store.Cursor, bool, error) {
		ids, next, done, err := s.p.Store.RetiringAfter(ctx, after, page)
		if err != nil {
			return 0, after, false, err
		}
		for _, id := range ids {
			expiring, err := s.p.Store.ExpireRetired(ctx, id)
			if err != nil {
				return 0, after, false, err
			}
			if expiring {
				res.InstancesExpiring++
			}
		}
		return len(ids), next, done, nil
	})
}
