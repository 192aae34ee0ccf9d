// Package pacing releases bulk rotations to the workers at the pace of the
// Heroku budget, so that no bulk task waits for budget in a worker slot or
// goes back to asynq because the budget is busy (docs/design.md, "Pacing a
// wave").
//
// A bulk rotation is held by adding its rotation id to a held set of
// rekey's own (Client.Hold); its claim, already durable, is all it needs
// meanwhile: no asynq task exists yet. One feeder among the worker
// processes (Feeder, a lease in Redis decides which) reads the oldest held
// rotations, builds their tasks from what their claims recorded (Tasks),
// takes background tokens for them from the shared budget, leaves a mark
// that each token is paid (Paid), and enqueues the tasks with asynq's
// public API. The worker that runs one spends the paid token on its push
// instead of waiting for one (ratelimit.WithPrepaid).
//
// Keys, all rekey's own (asynq's keys are only ever touched through asynq's
// API):
//
//	rekey:pace:held             sorted set: rotation id -> hold time in ms
//	rekey:pace:feeder           string: the feeder's lease, PX = lease left
//	rekey:pace:paid:<rotation>  string "1": the rotation's token is paid, PX
//	rekey:pace:forwarded:<rotation>
//	                            string "1": Feeder.bringForward held the rotation
//	                            again after an outage, EX (not again meanwhile)
//	rekey:pace:outcome:<bucket>:rotated|failed
//	                            string: runs of bulk rotations of a 10 s bucket
//	                            that rotated or failed (Outcomes.Record), EX
//	rekey:pace:outcome:streak   string: first runs of bulk rotations (no retry of
//	                            asynq's) failed since the last run that rotated
//	                            (Outcomes), EX
//	rekey:pace:outcome:outage   string "1": the leading feeder found the wave
//	                            failing, and no run rotated since (Feeder.failing), EX
//
// A wave whose every run fails (the issuer or Heroku down) is released one
// rotation every ProbeEvery until one rotates (Outcomes, Feeder.failing).
package pacing

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/tasks"
)

// Queue is the queue whose rotate tasks are held and paced: fleet waves and
// scheduled rotations (tasks.QueueBulk).
const Queue = tasks.QueueBulk

// HoldFor is how far in the future earlier versions of rekey scheduled the
// task of a held rotation; this one creates the task only at release. A
// task held that way is still released (the feeder runs it when it
// enqueues its rotation's task and finds it there), and the reconcile
// sweep works out its place in line from its date.
const HoldFor = 7 * 24 * time.Hour

const (
	heldKey  = "rekey:pace:held"
	leaseKey = "rekey:pace:feeder"
	paidKey  = "rekey:pace:paid:"
	// forwardedKey marks a rotation Feeder.bringForward held again.
	forwardedKey = "rekey:pace:forwarded:"
	paidFor      = 10 * time.Minute // how long a paid token waits for its task
	leaseTime    = 5 * time.Second
	// heldStep is how far apart in the held set's scores (milliseconds)
	// two HoldMany calls of a client within one millisecond are: a
	// thousandth, well above a score's precision at today's dates (about
	// a quarter of a microsecond).
	heldStep = 0.001
)

// Client is an asynq client that can hold bulk rotations for the feeder.
// internal/fleet uses Hold for every rotation on Queue when its Enqueuer is
// a *Client.
type Client struct {
	*asynq.Client
	rdb  redis.UniversalClient
	insp *asynq.Inspector
	now  func() time.Time

	mu       sync.Mutex
	lastHeld float64 // the score of the last HoldMany, so that the next is later
}

// NewClient returns a Client enqueueing with q and holding in rdb, the
// Redis of q's queues, dating its holds by now (nil: time.Now). Every
// process should hold on one clock, Redis's (internal/redisclock): a hold
// time is a rotation's place in line among every producer's, and
// rekey_pace_oldest_held_seconds reads it against Redis's clock, so that
// an operator's laptop an hour behind would otherwise put its wave ahead
// of an hour of held rotations, and show it an hour old at once.
func NewClient(q *asynq.Client, rdb redis.UniversalClient, now func() time.Time) *Client {
	if now == nil {
		now = time.Now
	}
	return &Client{Client: q, rdb: rdb, insp: asynq.NewInspectorFromRedisClient(rdb), now: now}
}

// Hold adds the claimed rotation rotationID to the held set, at the end of
// the line; one held already keeps its place. Its task is created when the
// feeder releases it: a held rotation costs Redis one entry of the held
// set beside its claim, and a wave of 100,000 no asynq task until its turn.
func (c *Client) Hold(ctx context.Context, rotationID string) error {
	_, err := c.addHeld(ctx, rotationID, c.now())
	return err
}

// HoldMany holds each of the claimed rotations rotationIDs, as Hold does, in
// one command: `rekey rotate --all` holds a chunk of claims at once. The
// rotations of one call share a place in line, after those of the client's
// earlier calls even within one millisecond (the order a request holds its
// chunks in is the order the feeder releases them).
func (c *Client) HoldMany(ctx context.Context, rotationIDs []string) error {
	if len(rotationIDs) == 0 {
		return nil
	}
	c.mu.Lock()
	// Bumped past the last call only within the current millisecond: a
	// clock stepped back does not keep later holds ahead of real time.
	at := float64(c.now().UnixMilli())
	if c.lastHeld >= at && c.lastHeld < at+1 {
		at = c.lastHeld + heldStep
	}
	c.lastHeld = at
	c.mu.Unlock()
	zs := make([]redis.Z, len(rotationIDs))
	for i, id := range rotationIDs {
		zs[i] = redis.Z{Score: at, Member: id}
	}
	if err := c.rdb.ZAddNX(ctx, heldKey, zs...).Err(); err != nil {
		return fmt.Errorf("hold %d rotations: %w", len(rotationIDs), err)
	}
	return nil
}

// addHeld adds rotationID to the held set at heldAt's place in line, unless
// it is there already, and reports whether it was missing.
func (c *Client) addHeld(ctx context.Context, rotationID string, heldAt time.Time) (bool, error) {
	z := redis.Z{Score: float64(heldAt.UnixMilli()), Member: rotationID}
	n, err := c.rdb.ZAddNX(ctx, heldKey, z).Result()
	if err != nil {
		return false, fmt.Errorf("hold rotation %s: %w", rotationID, err)
	}
	return n == 1, nil
}

// HoldAgain puts back in line, at heldAt's place, a claimed rotation whose
// caller cannot tell whether the feeder released it already, and reports
// whether the id is in the held set because of it (false for one held
// already). Its callers: the scheduler resuming a claim of its own (an
// index rebuilt from old times hands it a due time it claimed before), and
// the reconcile sweep, for a bulk rotation in flight with no task (a claim
// whose Hold failed left a rotation the feeder never sees, in flight for
// good) or with a task an earlier version held, scheduled HoldFor ahead.
//
// Holding a released rotation again would cost the feeder a token for a
// task that exists. The feeder takes an id out of the held set only once
// its task exists, so an id this adds whose task exists (and is not one an
// earlier version held, scheduled) was released meanwhile: it leaves the
// held set again. A task that cannot be looked at (no bulk queue yet, a
// Redis error) leaves the id held: at worst one token is spent for nothing.
func (c *Client) HoldAgain(ctx context.Context, rotationID string, heldAt time.Time) (bool, error) {
	added, err := c.addHeld(ctx, rotationID, heldAt)
	if err != nil || !added {
		return false, err
	}
	info, err := c.insp.GetTaskInfo(Queue, tasks.RotateTaskID(rotationID))
	if err != nil || info.State == asynq.TaskStateScheduled {
		return true, nil
	}
	if err := Unhold(ctx, c.rdb, rotationID); err != nil {
		return true, err
	}
	return false, nil
}

// unholdPage is how many ids one ZREM of Unhold names.
const unholdPage = 500

// Unhold takes rotation ids out of the held set: a cancelled batch's, so
// that the feeder spends no token on them. A cancelled fleet wave holds up
// to one id per instance (100,000): they go in ZREMs of unholdPage ids, in
// one pipeline, so that no single command holds Redis, and every worker
// and the web process waiting on it, for the whole wave.
func Unhold(ctx context.Context, rdb redis.UniversalClient, rotationIDs ...string) error {
	if len(rotationIDs) == 0 {
		return nil
	}
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for chunk := range slices.Chunk(rotationIDs, unholdPage) {
			members := make([]any, len(chunk))
			for i, id := range chunk {
				members[i] = id
			}
			p.ZRem(ctx, heldKey, members...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("unhold %d rotations: %w", len(rotationIDs), err)
	}
	return nil
}

// HeldIDs returns the ids of every held rotation, in no order. An id held
// or released while it reads may be in it or not; one held throughout is.
func HeldIDs(ctx context.Context, rdb redis.UniversalClient) ([]string, error) {
	var ids []string
	seen := map[string]bool{} // ZSCAN may return a member twice
	var cursor uint64
	for {
		page, next, err := rdb.ZScan(ctx, heldKey, cursor, "", 1000).Result()
		if err != nil {
			return nil, fmt.Errorf("list held rotations: %w", err)
		}
		for i := 0; i < len(page); i += 2 { // member, score
			if !seen[page[i]] {
				seen[page[i]] = true
				ids = append(ids, page[i])
			}
		}
		if cursor = next; cursor == 0 {
			return ids, nil
		}
	}
}

// Held counts the rotations waiting for the feeder.
func Held(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	return rdb.ZCard(ctx, heldKey).Result()
}

// Backlog is the held set in two figures: the rotations of fleet waves and
// scheduled rotations that wait for the feeder, which no asynq queue
// counts, since their tasks do not exist yet.
type Backlog struct {
	Held   int64     // rotations held
	Oldest time.Time // when the oldest was held (its place in line); zero when none
}

// ReadBacklog returns the held set's Backlog in one round trip of two
// commands, ZCARD and ZRANGE 0 0 (O(1) and O(log n)), whatever the wave's
// size: a metrics scrape reads it.
func ReadBacklog(ctx context.Context, rdb redis.UniversalClient) (Backlog, error) {
	var card *redis.IntCmd
	var head *redis.ZSliceCmd
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		card = p.ZCard(ctx, heldKey)
		head = p.ZRangeWithScores(ctx, heldKey, 0, 0)
		return nil
	})
	if err != nil {
		return Backlog{}, fmt.Errorf("read held rotations: %w", err)
	}
	b := Backlog{Held: card.Val()}
	if zs := head.Val(); len(zs) == 1 {
		b.Oldest = time.UnixMilli(int64(zs[0].Score)).UTC()
	}
	return b, nil
}

// Paid reads and spends the marks the feeder leaves for released rotations.
type Paid struct{ rdb redis.UniversalClient }

// NewPaid returns a Paid on rdb.
func NewPaid(rdb redis.UniversalClient) *Paid { return &Paid{rdb: rdb} }

// Take reports whether the feeder paid a token for rotationID's push, and
// removes the mark: a token is spent once. On a Redis error it reports false,
// and the push waits for a token of its own (the safe side of the budget).
func (p *Paid) Take(ctx context.Context, rotationID string) bool {
	n, err := p.rdb.Del(ctx, paidKey+rotationID).Result()
	return err == nil && n == 1
}
