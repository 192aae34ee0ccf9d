package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// FailedInstance is an instance whose rotation of a batch failed, and its
// failure code ("push:heroku_404", "retries_exhausted").
type FailedInstance struct {
	InstanceID string `json:"instance_id"`
	Code       string `json:"code"`
}

// failedPage is how many entries of a batch's failed instances one HSCAN
// asks for.
const failedPage = 1000

// BatchFailed returns the instances whose rotation of batch id failed,
// by code, then by instance id, read a page at a time: the batch's own
// rotations, not those of other batches it joined, which count in theirs.
// unlisted counts by code the failures the batch counts (Batch.Failures)
// that the list does not hold: those a worker of a version before the
// list was kept recorded, a whole batch's or, in a wave that ran across
// the upgrade, some of them. ErrNotFound when the batch is not known
// (never created, or expired).
func (s *Store) BatchFailed(ctx context.Context, id string) (failed []FailedInstance, unlisted map[string]int64, err error) {
	// The counts are read before the list: a failure recorded in between
	// is then listed and not counted, never counted and not listed.
	counts, err := s.rdb.HGetAll(ctx, batchKey(id)+":failures").Result()
	if err != nil {
		return nil, nil, fmt.Errorf("read batch %s: %w", id, err)
	}
	n, err := s.rdb.Exists(ctx, batchKey(id)).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("read batch %s: %w", id, err)
	}
	if n == 0 {
		return nil, nil, ErrNotFound
	}
	var out []FailedInstance
	seen := map[string]bool{}
	var cursor uint64
	for {
		pairs, next, err := s.rdb.HScan(ctx, batchFailedKey(id), cursor, "", failedPage).Result()
		if err != nil {
			return nil, nil, fmt.Errorf("read the failed instances of batch %s: %w", id, err)
		}
		// HSCAN answers each field followed by its value, and may answer
		// a field twice (a hash rehashed meanwhile).
		for i := 0; i+1 < len(pairs); i += 2 {
			if !seen[pairs[i]] {
				seen[pairs[i]] = true
				out = append(out, FailedInstance{InstanceID: pairs[i], Code: pairs[i+1]})
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	slices.SortFunc(out, func(a, b FailedInstance) int {
		return cmp.Or(strings.Compare(a.Code, b.Code), strings.Compare(a.InstanceID, b.InstanceID))
	})
	listed := map[string]int64{}
	for _, f := range out {
		listed[f.Code]++
	}
	unlisted = map[string]int64{}
	for code, v := range counts {
		if c, _ := strconv.ParseInt(v, 10, 64); c > listed[code] {
			unlisted[code] = c - listed[code]
		}
	}
	return out, unlisted, nil
}
