package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Batch is the progress of one fleet request: counts only, no secrets.
type Batch struct {
	ID     string `json:"batch_id"`
	Reason string `json:"reason,omitempty"`
	// Total is how many instances the request named.
	Total int64 `json:"total"`
	// Enqueued rotations were started for this batch; Joined instances had
	// a rotation in flight already; Skipped ones declined (grace running).
	Enqueued int64 `json:"enqueued"`
	Joined   int64 `json:"joined"`
	Skipped  int64 `json:"skipped"`
	// Succeeded, Failed and Cancelled count this batch's finished rotations.
	Succeeded int64 `json:"succeeded"`
	Failed    int64 `json:"failed"`
	Cancelled int64 `json:"cancelled"`
	// InFlight is Enqueued less the finished, and the rotations of other
	// batches this one joined that have not finished (their outcomes count
	// in their own batches).
	InFlight int64 `json:"in_flight"`
	// Revoked counts old credentials superseded in this batch and revoked.
	Revoked int64 `json:"revoked"`
	// Done is true when nothing of the batch is left in flight.
	Done bool `json:"done"`
	// Failures counts failed rotations by failure code.
	Failures    map[string]int64 `json:"failures,omitempty"`
	CreatedAt   time.Time        `json:"created_at"`
	CancelledAt time.Time        `json:"cancelled_at,omitzero"`
}

// CreateBatch records a new batch of total instances.
func (s *Store) CreateBatch(ctx context.Context, id, reason string, total int) error {
	key := batchKey(id)
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, key, "id", id, "reason", reason, "total", total, "created_at", ms(s.now()))
	pipe.Expire(ctx, key, s.finishedTTL)
	pipe.ZAdd(ctx, batchesKey(), redis.Z{Score: float64(ms(s.now())), Member: id})
	pipe.ZRemRangeByScore(ctx, batchesKey(), "-inf", "("+strconv.FormatInt(ms(s.now().Add(-s.finishedTTL)), 10))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("create batch: %w", err)
	}
	return nil
}

// DropBatch deletes batch id, which nothing was claimed for or counts
// into: its hash, its failures and waits, and its place in the list.
func (s *Store) DropBatch(ctx context.Context, id string) error {
	pipe := s.rdb.TxPipeline()
	pipe.Del(ctx, batchKey(id), batchKey(id)+":failures", batchWaitsKey(id), batchFailedKey(id),
		batchFailedJoinedKey(id))
	pipe.ZRem(ctx, batchesKey(), id)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("drop batch: %w", err)
	}
	return nil
}

// CountBatch adds to a batch's enqueued, joined and skipped counts.
func (s *Store) CountBatch(ctx context.Context, id string, enqueued, joined, skipped int) error {
	key := batchKey(id)
	pipe := s.rdb.TxPipeline()
	pipe.HIncrBy(ctx, key, "enqueued", int64(enqueued))
	pipe.HIncrBy(ctx, key, "joined", int64(joined))
	pipe.HIncrBy(ctx, key, "skipped", int64(skipped))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("count batch: %w", err)
	}
	return nil
}

// BatchCancelled reports whether batch id was cancelled; an unknown batch
// was not.
func (s *Store) BatchCancelled(ctx context.Context, id string) (bool, error) {
	v, err := s.rdb.HGet(ctx, batchKey(id), "cancelled_at").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("read batch %s: %w", id, err)
	}
	return v != "", nil
}

// CancelBatch marks a batch cancelled: its rotations that have not started
// are cancelled when their task runs, before any call to the issuer or
// Heroku. Rotations already under way finish, and so do those a request on
// another queue joined (moved_at, kept_at) or a batch not cancelled joined
// (joined_by): they are that request's too.
func (s *Store) CancelBatch(ctx context.Context, id string) error {
	key := batchKey(id)
	n, err := s.rdb.Exists(ctx, key).Result()
	if err != nil {
		return fmt.Errorf("cancel batch: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("batch %s: %w", id, ErrNotFound)
	}
	if err := s.rdb.HSetNX(ctx, key, "cancelled_at", ms(s.now())).Err(); err != nil {
		return fmt.Errorf("cancel batch: %w", err)
	}
	return nil
}

// Batch returns a batch's progress, or ErrNotFound.
func (s *Store) Batch(ctx context.Context, id string) (Batch, error) {
	pipe := s.rdb.Pipeline()
	main := pipe.HGetAll(ctx, batchKey(id))
	fails := pipe.HGetAll(ctx, batchKey(id)+":failures")
	if _, err := pipe.Exec(ctx); err != nil {
		return Batch{}, fmt.Errorf("get batch: %w", err)
	}
	if len(main.Val()) == 0 {
		return Batch{}, fmt.Errorf("batch %s: %w", id, ErrNotFound)
	}
	b := []Batch{parseBatch(id, main.Val(), fails.Val())}
	if err := s.addWaits(ctx, b, []map[string]string{main.Val()}); err != nil {
		return Batch{}, err
	}
	return b[0], nil
}

// waitsPage is how many members of a batch's waits set (batchWaitsKey)
// one SSCAN asks for.
const waitsPage = 500

// addWaits counts into each batch of bs not cancelled (its hash in ms, in
// the same order) the rotations it noted it joined (batchWaitsKey) that are
// still in flight. Only a batch that joined a rotation many batches had
// joined has any (joined_untracked): the others cost no read. A rotation
// whose record is gone has finished long since.
func (s *Store) addWaits(ctx context.Context, bs []Batch, ms []map[string]string) error {
	var at []int
	for i, m := range ms {
		if m["joined_untracked"] != "" && m["joined_untracked"] != "0" && bs[i].CancelledAt.IsZero() {
			at = append(at, i)
		}
	}
	if len(at) == 0 {
		return nil
	}
	for _, i := range at {
		n, err := s.waitsInFlight(ctx, bs[i].ID)
		if err != nil {
			return err
		}
		bs[i].InFlight += n
		bs[i].Done = bs[i].Done && bs[i].InFlight == 0
	}
	return nil
}

// waitsInFlight counts the rotations in batch id's waits set that are
// still in flight. The set holds up to one rotation per instance of the
// batch (a fleet wave's: 100,000): it is read a page at a time (SSCAN),
// each page's states in one pipeline, so that no single command walks the
// whole set while every process waits on Redis. SSCAN may return a member
// twice (a set rehashed meanwhile): each rotation counts once.
func (s *Store) waitsInFlight(ctx context.Context, id string) (int64, error) {
	var n int64
	var cursor uint64
	seen := map[string]bool{}
	for {
		rots, next, err := s.rdb.SScan(ctx, batchWaitsKey(id), cursor, "", waitsPage).Result()
		if err != nil {
			return 0, fmt.Errorf("read batch waits: %w", err)
		}
		pipe := s.rdb.Pipeline()
		var states []*redis.StringCmd
		for _, rot := range rots {
			if !seen[rot] {
				seen[rot] = true
				states = append(states, pipe.HGet(ctx, rotationKey(rot), "state"))
			}
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return 0, fmt.Errorf("read batch waits: %w", err)
		}
		for _, st := range states {
			if v := st.Val(); v != "" && v != RotationPromoted && v != RotationFailed && v != RotationCancelled {
				n++
			}
		}
		if cursor = next; cursor == 0 {
			return n, nil
		}
	}
}

// parseBatch reads batch id from its hash m and its failures hash f.
func parseBatch(id string, m, f map[string]string) Batch {
	n := func(k string) int64 { v, _ := strconv.ParseInt(m[k], 10, 64); return v }
	b := Batch{ID: id, Reason: m["reason"], Total: n("total"), Enqueued: n("enqueued"), Joined: n("joined"),
		Skipped: n("skipped"), Succeeded: n("succeeded"), Failed: n("failed"), Cancelled: n("cancelled"),
		Revoked: n("revoked"), CreatedAt: fromMS(m["created_at"]), CancelledAt: fromMS(m["cancelled_at"])}
	b.InFlight = max(b.Enqueued-b.Succeeded-b.Failed-b.Cancelled, 0)
	if b.CancelledAt.IsZero() {
		// A cancelled batch no longer waits for the rotations it joined.
		b.InFlight += max(n("joined_tracked")-n("joined_finished"), 0)
	}
	b.Done = b.InFlight == 0 && b.Enqueued+b.Joined+b.Skipped >= b.Total
	if len(f) > 0 {
		b.Failures = make(map[string]int64, len(f))
		for k, v := range f {
			b.Failures[k], _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return b
}

// BatchQuery says which batches Batches lists.
type BatchQuery struct {
	// Limit is the most batches listed; at least 1.
	Limit int
	// Running lists only the batches not done.
	Running bool
	// Before lists only the batches listed after the batch it names: the
	// last batch of a page names the next page. Empty starts at the newest.
	Before string
}

// batchesPage is how many batch ids Batches reads in one round trip.
const batchesPage = 200

// Batches lists the batches newest first (those created in one millisecond
// in an order that is the same on every call), as q says, or ErrNotFound when
// q.Before names a batch not in the list. It reads the list in pages until
// it has q.Limit batches or the list ends, so listing the few running
// batches among a month of finished ones reads them all.
func (s *Store) Batches(ctx context.Context, q BatchQuery) ([]Batch, error) {
	if q.Limit < 1 {
		return nil, fmt.Errorf("list batches: limit %d, want at least 1", q.Limit)
	}
	// The pages go by a cursor, the last score read and how many of its
	// members were read (those of one millisecond come in one order every
	// time), not by offsets from the top: a batch created meanwhile, by a
	// process whose clock is ahead or behind, shifts no page. One created
	// in the very millisecond being read may shift its members by one: a
	// batch read twice so is listed once.
	top, skip := "+inf", int64(0)
	seen := map[string]bool{}
	if q.Before != "" {
		score, err := s.rdb.ZScore(ctx, batchesKey(), q.Before).Result()
		if errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("batch %s: %w", q.Before, ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("list batches: %w", err)
		}
		top = strconv.FormatFloat(score, 'f', 0, 64)
		same, err := s.rdb.ZRevRangeByScore(ctx, batchesKey(), &redis.ZRangeBy{Max: top, Min: top}).Result()
		if err != nil {
			return nil, fmt.Errorf("list batches: %w", err)
		}
		skip = int64(slices.Index(same, q.Before) + 1)
	}
	var out []Batch
	for {
		page, err := s.rdb.ZRevRangeByScoreWithScores(ctx, batchesKey(), &redis.ZRangeBy{Max: top, Min: "-inf",
			Offset: skip, Count: batchesPage}).Result()
		if err != nil {
			return nil, fmt.Errorf("list batches: %w", err)
		}
		if len(page) == 0 {
			return out, nil
		}
		ids := make([]string, len(page))
		for i, z := range page {
			ids[i], _ = z.Member.(string)
		}
		pipe := s.rdb.Pipeline()
		mains := make([]*redis.MapStringStringCmd, len(ids))
		fails := make([]*redis.MapStringStringCmd, len(ids))
		for i, id := range ids {
			mains[i] = pipe.HGetAll(ctx, batchKey(id))
			fails[i] = pipe.HGetAll(ctx, batchKey(id)+":failures")
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("list batches: %w", err)
		}
		var bs []Batch
		var hashes []map[string]string
		for i, id := range ids {
			if len(mains[i].Val()) == 0 || seen[id] {
				continue // expired, not trimmed yet; or read already
			}
			seen[id] = true
			bs = append(bs, parseBatch(id, mains[i].Val(), fails[i].Val()))
			hashes = append(hashes, mains[i].Val())
		}
		if err := s.addWaits(ctx, bs, hashes); err != nil {
			return nil, fmt.Errorf("list batches: %w", err)
		}
		for _, b := range bs {
			if q.Running && b.Done {
				continue
			}
			if out = append(out, b); len(out) == q.Limit {
				return out, nil
			}
		}
		if len(page) < batchesPage {
			return out, nil
		}
		last := strconv.FormatFloat(page[len(page)-1].Score, 'f', 0, 64)
		n := int64(0)
		for _, z := range page {
			if strconv.FormatFloat(z.Score, 'f', 0, 64) == last {
				n++
			}
		}
		if last == top {
			skip += n
		} else {
			top, skip = last, n
		}
	}
}
