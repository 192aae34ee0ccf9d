package reconcile

import (
	"context"

	"github.com/rekeyhq/rekey/internal/store"
)

// retire walks the deprovisioned instances whose keys have no expiry yet and
// gives them one once none of their credentials waits for revocation (case
// 14 of issue 8). Instances still waiting stay for a later sweep. The
// sweep's whole share is read at once: whether a discarded credential
// waits is a scan of the fleet's revoke-due index, made once for all of
// them (store.ExpireRetiredPage).
func (s *Sweeper) retire(ctx context.Context, res *Result) error {
	return s.walk(ctx, store.CursorRetiring, func(after store.Cursor) (int, store.Cursor, bool, error) {
		ids, next, done, err := s.p.Store.RetiringAfter(ctx, after, int64(s.p.PerSweep))
		if err != nil {
			return 0, after, false, err
		}
		expiring, err := s.p.Store.ExpireRetiredPage(ctx, ids)
		res.InstancesExpiring += expiring
		if err != nil {
			return 0, after, false, err
		}
		return len(ids), next, done, nil
	})
}

// pruneLiveGone walks the index of live configs' entries of deprovisioned
// instances and removes those whose instance's records have expired
// (store.PruneLiveGoneAfter): nothing else would.
func (s *Sweeper) pruneLiveGone(ctx context.Context, res *Result) error {
	return s.walk(ctx, store.CursorLiveGone, func(after store.Cursor) (int, store.Cursor, bool, error) {
		seen, pruned, next, done, err := s.p.Store.PruneLiveGoneAfter(ctx, after, page)
		res.LiveConfigsPruned += pruned
		return seen, next, done, err
	})
}
