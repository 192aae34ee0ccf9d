package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cursor marks where a walk through one of the store's time-ordered
// indexes (the due revocations, the rotations in flight) stopped: the last
// entry it saw. The zero Cursor is the start of the index. A walk resumed
// from a Cursor sees every entry that was after it and is still there, so a
// sweep that reads a page at a time reaches the whole index, however many
// entries at its head stay put (case 7 of issue 8: 500 permanently failing
// revocations used to hide every entry behind them).
type Cursor struct {
	At     time.Time
	Member string
}

// IsZero reports whether c is the start of the index.
func (c Cursor) IsZero() bool { return c.Member == "" }

// reconcileKey is a HASH of the reconcile sweep's cursors, one field per
// index it walks ("revocations", "rotations", "retiring"), each
// "<score ms> <member>", and where its HSCAN of liveGoneKey stopped
// ("live_gone", "0 <HSCAN cursor>").
func reconcileKey() string { return keyPrefix + "reconcile" }

// Cursors the reconcile sweep keeps, by index.
const (
	CursorRevocations = "revocations"
	CursorRotations   = "rotations"
	CursorRetiring    = "retiring"
	CursorLiveGone    = "live_gone"
)

// SweepCursor returns where the reconcile sweep's walk of index stopped
// last; the zero Cursor when it finished a pass or never ran.
func (s *Store) SweepCursor(ctx context.Context, index string) (Cursor, error) {
	v, err := s.rdb.HGet(ctx, reconcileKey(), index).Result()
	if errors.Is(err, redis.Nil) {
		return Cursor{}, nil
	}
	if err != nil {
		return Cursor{}, fmt.Errorf("sweep cursor: %w", err)
	}
	at, member, _ := strings.Cut(v, " ")
	return Cursor{At: fromMS(at), Member: member}, nil
}

// SaveSweepCursor records where the reconcile sweep's walk of index
// stopped; the zero Cursor starts the next walk from the head.
func (s *Store) SaveSweepCursor(ctx context.Context, index string, c Cursor) error {
	var err error
	if c.IsZero() {
		err = s.rdb.HDel(ctx, reconcileKey(), index).Err()
	} else {
		err = s.rdb.HSet(ctx, reconcileKey(), index, strconv.FormatInt(ms(c.At), 10)+" "+c.Member).Err()
	}
	if err != nil {
		return fmt.Errorf("save sweep cursor: %w", err)
	}
	return nil
}

// DueRevocationsAfter returns up to limit credentials, fleet-wide, whose
// revoke time is at or before t, in order, starting after cursor c; the
// cursor of the last one; and done, true when no due entry follows them.
func (s *Store) DueRevocationsAfter(ctx context.Context, t time.Time, c Cursor, limit int64) ([]Revocation, Cursor, bool, error) {
	members, at, next, done, err := s.duePage(ctx, revokeDueKey(), t, c, limit)
	if err != nil {
		return nil, c, false, fmt.Errorf("due revocations: %w", err)
	}
	out := make([]Revocation, 0, len(members))
	for i, m := range members {
		if inst, cred, ok := strings.Cut(m, "/"); ok {
			out = append(out, Revocation{InstanceID: inst, CredentialID: cred, RevokeAt: at[i]})
		}
	}
	return out, next, done, nil
}

// StaleRotationsAfter is StaleRotations a page at a time, starting after
// cursor c, with the cursor of the last one and whether none follows.
func (s *Store) StaleRotationsAfter(ctx context.Context, t time.Time, c Cursor, limit int64) ([]RotationRef, Cursor, bool, error) {
	members, at, next, done, err := s.duePage(ctx, inflightKey(), t, c, limit)
	if err != nil {
		return nil, c, false, fmt.Errorf("stale rotations: %w", err)
	}
	out := make([]RotationRef, 0, len(members))
	for i, m := range members {
		if inst, rot, ok := strings.Cut(m, "/"); ok {
			out = append(out, RotationRef{InstanceID: inst, RotationID: rot, RequestedAt: at[i]})
		}
	}
	return out, next, done, nil
}

// duePage reads up to limit members of the sorted set key after cursor c,
// with scores (times in ms) at or before t. Members of equal score are in
// Redis' lexical order, so the cursor's rank is exact while its member is
// still there; when it is gone, the page starts at the first member of the
// cursor's time, which may repeat a few entries but skips none.
func (s *Store) duePage(ctx context.Context, key string, t time.Time, c Cursor, limit int64) (
	[]string, []time.Time, Cursor, bool, error) {
	start, err := s.rankAfter(ctx, key, c)
	if err != nil {
		return nil, nil, c, false, err
	}
	zs, err := s.rdb.ZRangeWithScores(ctx, key, start, start+limit-1).Result()
	if err != nil {
		return nil, nil, c, false, err
	}
	members, times := make([]string, 0, len(zs)), make([]time.Time, 0, len(zs))
	for _, z := range zs {
		if int64(z.Score) > ms(t) {
			break
		}
		m, _ := z.Member.(string)
		members = append(members, m)
		times = append(times, time.UnixMilli(int64(z.Score)).UTC())
	}
	done := len(members) < len(zs) || int64(len(zs)) < limit
	if len(members) == 0 {
		return nil, nil, c, done, nil
	}
	return members, times, Cursor{At: times[len(times)-1], Member: members[len(members)-1]}, done, nil
}

// rankAfter is the rank in key of the first member after cursor c.
func (s *Store) rankAfter(ctx context.Context, key string, c Cursor) (int64, error) {
	if c.IsZero() {
		return 0, nil
	}
	pipe := s.rdb.Pipeline()
	rank := pipe.ZRank(ctx, key, c.Member)
	score := pipe.ZScore(ctx, key, c.Member)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, err
	}
	if r, err := rank.Result(); err == nil && int64(score.Val()) == ms(c.At) {
		return r + 1, nil
	}
	return s.rdb.ZCount(ctx, key, "-inf", "("+strconv.FormatInt(ms(c.At), 10)).Result()
}
