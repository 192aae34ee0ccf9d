// Package pacing releases bulk rotations to the workers at the pace of the
// Heroku budget, so that no bulk task waits for budget in a worker slot or
// goes back to asynq because the budget is busy (docs/design.md, "Pacing a
// wave").
//
// A bulk rotate task is enqueued by asynq's public API as a scheduled task
// (Client.Hold), far in the future, and its rotation id is added to a held
// set of rekey's own. One feeder among the worker processes (Feeder, a lease
// in Redis decides which) takes a background token from the shared budget,
// reads the oldest held rotation, leaves a mark that its token is paid
// (Paid), and makes its task runnable with asynq's Inspector.RunTask. The
// worker that runs the task spends the paid token on its push instead of
// waiting for one (ratelimit.WithPrepaid).
//
// Keys, all rekey's own (asynq's keys are only ever touched through asynq's
// API):
//
//	rekey:pace:held             sorted set: rotation id -> hold time in ms
//	rekey:pace:feeder           string: the feeder's lease, PX = lease left
//	rekey:pace:paid:<rotation>  string "1": the rotation's token is paid, PX
package pacing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/tasks"
)

// Queue is the queue whose rotate tasks are held and paced: fleet waves and
// scheduled rotations (tasks.QueueBulk).
const Queue = tasks.QueueBulk

// HoldFor is how far in the future a held task is scheduled. The feeder
// releases it long before; the date only matters for a task whose id was
// lost from the held set (a crash between popping it and releasing it), which
// asynq then runs on its own at that date.
const HoldFor = 7 * 24 * time.Hour

const (
	heldKey   = "rekey:pace:held"
	leaseKey  = "rekey:pace:feeder"
	paidKey   = "rekey:pace:paid:"
	paidFor   = 10 * time.Minute // how long a paid token waits for its task
	leaseTime = 5 * time.Second
)

// Client is an asynq client that can hold bulk rotate tasks for the feeder.
// internal/fleet uses Hold for every rotate task on Queue when its Enqueuer
// is a *Client.
type Client struct {
	*asynq.Client
	rdb redis.UniversalClient
}

// NewClient returns a Client enqueueing with q and holding in rdb.
func NewClient(q *asynq.Client, rdb redis.UniversalClient) *Client {
	return &Client{Client: q, rdb: rdb}
}

// Hold enqueues the rotate task t of rotationID as scheduled HoldFor from
// now, then adds the rotation to the held set, in that order: the claim is
// already durable, and the task exists before the feeder can see its id. A
// task that already exists counts as success and is not held again (it is
// held, released or finished already).
func (c *Client) Hold(ctx context.Context, t *asynq.Task, rotationID string) error {
	_, err := c.EnqueueContext(ctx, t, asynq.Queue(Queue), asynq.ProcessIn(HoldFor))
	switch {
	case errors.Is(err, asynq.ErrTaskIDConflict):
		return nil
	case err != nil:
		return err
	}
	_, err = c.addHeld(ctx, rotationID, time.Now())
	return err
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

// Rehold puts rotationID back in the held set, at heldAt's place in line
// (asynq keeps a task's time to the second), and reports whether it was
// missing: a Hold whose task was enqueued but whose id was not added (Redis
// failed in between, or the caller gave up) left a task the feeder never
// sees. The reconcile sweep calls it for a bulk rotate task it finds
// scheduled.
func (c *Client) Rehold(ctx context.Context, rotationID string, heldAt time.Time) (bool, error) {
	return c.addHeld(ctx, rotationID, heldAt)
}

// Unhold takes rotation ids out of the held set: a cancelled batch's, whose
// tasks were deleted, so that the feeder spends no token on them.
func Unhold(ctx context.Context, rdb redis.UniversalClient, rotationIDs ...string) error {
	if len(rotationIDs) == 0 {
		return nil
	}
	members := make([]any, len(rotationIDs))
	for i, id := range rotationIDs {
		members[i] = id
	}
	if err := rdb.ZRem(ctx, heldKey, members...).Err(); err != nil {
		return fmt.Errorf("unhold %d rotations: %w", len(rotationIDs), err)
	}
	return nil
}

// Held counts the rotations waiting for the feeder.
func Held(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	return rdb.ZCard(ctx, heldKey).Result()
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
