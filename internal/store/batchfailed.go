package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// FailedInstance is an instance whose rotation of a batch failed, and its
// failure code ("push:heroku_404", "retries_exhausted"). Joined is true
// when the rotation was another's (a wave's, a scheduled one) that the
// batch joined, in flight when the batch was requested.
type FailedInstance struct {
	InstanceID string `json:"instance_id"`
	Code       string `json:"code"`
	Joined     bool   `json:"joined,omitempty"`
}

// failedPage is how many entries of a batch's failed instances one HSCAN
// asks for.
const failedPage = 1000

// BatchFailed returns the instances whose rotation of batch id failed,
// by code, then by instance id, read a page at a time: the batch's own
// rotations, and those of other batches (or of the schedule) it joined,
// each instance once (its own rotation's failure when it has both).
// unlisted counts by code the failures the batch counts (Batch.Failures:
// its own rotations') that the list does not hold: those a worker of a
// version before the list was kept recorded, a whole batch's or, in a
// wave that ran across the upgrade, some of them. ErrNotFound when the
// batch is not known (never created, or expired).
func (s *Store) BatchFailed(ctx context.Context, id string) (failed []FailedInstance, unlisted map[string]int64, err error) {
	// The counts are read before the list: a failure recorded in between
	// is then listed and not counted, never counted and not listed.
	counts, err := s.rdb.HGetAll(ctx, batchKey(id)+":failures").Result()
	if err != nil {
		return nil, nil, fmt.Errorf("read batch %s: %w", id, err)
	}
	untracked, err := s.rdb.HGet(ctx, batchKey(id), "joined_untracked").Result()
	if errors.Is(err, redis.Nil) {
		// The batch exists when the hash does; one without that field
		// answers nil too.
		n, err := s.rdb.Exists(ctx, batchKey(id)).Result()
		if err != nil {
			return nil, nil, fmt.Errorf("read batch %s: %w", id, err)
		}
		if n == 0 {
			return nil, nil, ErrNotFound
		}
	} else if err != nil {
		return nil, nil, fmt.Errorf("read batch %s: %w", id, err)
	}
	own, err := s.scanFailed(ctx, batchFailedKey(id))
	if err != nil {
		return nil, nil, fmt.Errorf("read the failed instances of batch %s: %w", id, err)
	}
	out := make([]FailedInstance, 0, len(own))
	listed := map[string]int64{}
	for inst, code := range own {
		out = append(out, FailedInstance{InstanceID: inst, Code: code})
		listed[code]++
	}
	joined, err := s.scanFailed(ctx, batchFailedJoinedKey(id))
	if err != nil {
		return nil, nil, fmt.Errorf("read the failed instances of batch %s: %w", id, err)
	}
	if untracked != "" && untracked != "0" {
		// The rotations it joined past their joined_by's room note
		// nothing of it: its waits set names them.
		if err := s.failedWaits(ctx, id, joined); err != nil {
			return nil, nil, err
		}
	}
	for inst, code := range joined {
		if _, ok := own[inst]; !ok {
			out = append(out, FailedInstance{InstanceID: inst, Code: code, Joined: true})
		}
	}
	slices.SortFunc(out, func(a, b FailedInstance) int {
		return cmp.Or(strings.Compare(a.Code, b.Code), strings.Compare(a.InstanceID, b.InstanceID))
	})
	unlisted = map[string]int64{}
	for code, v := range counts {
		if c, _ := strconv.ParseInt(v, 10, 64); c > listed[code] {
			unlisted[code] = c - listed[code]
		}
	}
	return out, unlisted, nil
}

// scanFailed reads a hash of instance ids to failure codes a page at a
// time. HSCAN answers each field followed by its value, and may answer a
// field twice (a hash rehashed meanwhile): it is read once.
func (s *Store) scanFailed(ctx context.Context, key string) (map[string]string, error) {
	out := map[string]string{}
	var cursor uint64
	for {
		pairs, next, err := s.rdb.HScan(ctx, key, cursor, "", failedPage).Result()
		if err != nil {
			return nil, err
		}
		for i := 0; i+1 < len(pairs); i += 2 {
			out[pairs[i]] = pairs[i+1]
		}
		if cursor = next; cursor == 0 {
			return out, nil
		}
	}
}

// failedWaits adds to joined (instance id to failure code) the rotations
// in batch id's waits set (batchWaitsKey) that failed, read a page at a
// time as waitsInFlight reads them. A rotation whose record is gone, or
// failed by a version of rekey that did not note its code, is left out.
func (s *Store) failedWaits(ctx context.Context, id string, joined map[string]string) error {
	var cursor uint64
	for {
		rots, next, err := s.rdb.SScan(ctx, batchWaitsKey(id), cursor, "", waitsPage).Result()
		if err != nil {
			return fmt.Errorf("read batch waits: %w", err)
		}
		pipe := s.rdb.Pipeline()
		recs := make([]*redis.SliceCmd, len(rots))
		for i, rot := range rots {
			recs[i] = pipe.HMGet(ctx, rotationKey(rot), "state", "instance_id", "error_code")
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("read batch waits: %w", err)
		}
		for _, rec := range recs {
			v := rec.Val()
			if len(v) != 3 {
				continue
			}
			st, _ := v[0].(string)
			inst, _ := v[1].(string)
			code, _ := v[2].(string)
			if st == RotationFailed && inst != "" && code != "" {
				joined[inst] = code
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}
