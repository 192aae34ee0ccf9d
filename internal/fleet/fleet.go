// Package fleet turns rotation requests (one instance, a list, the whole
// fleet) into claimed rotations and enqueued rotate tasks. It is the one
// producer used by the CLI, the HTTP API and the dashboard.
//
// Claiming in the store first makes a request for an instance that is
// already rotating join that rotation (I4). A rotation whose task could not
// be enqueued stays in flight in the store, and the reconcile sweep
// enqueues it again, so a request is never lost.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// Enqueuer is an *asynq.Client.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Producer requests rotations. It is safe for concurrent use.
type Producer struct {
	store *store.Store
	q     Enqueuer
	// parallel is how many claims and enqueues run at once.
	parallel int
}

// NewProducer returns a Producer that claims in st and enqueues with q.
func NewProducer(st *store.Store, q Enqueuer) *Producer {
	return &Producer{store: st, q: q, parallel: 32}
}

// Request asks for rotations.
type Request struct {
	// InstanceIDs names the instances; duplicates are rotated once.
	InstanceIDs []string
	// Reason is recorded in the audit trail.
	Reason string
	// Grace overrides the grace period when positive.
	Grace time.Duration
	// Queue is tasks.QueueInteractive, QueueDefault or QueueBulk; empty means
	// interactive for one instance and default for more.
	Queue string
	// BatchID groups the rotations; empty means a new id.
	BatchID string
	// SkipIfPrevious declines instances whose previous credential still waits.
	SkipIfPrevious bool
}

// Result says what a request did.
type Result struct {
	BatchID  string
	Enqueued int
	Joined   int
	Skipped  int
	Items    []Item
}

// Item is the outcome for one instance.
type Item struct {
	InstanceID string
	RotationID string
	// Status is "enqueued", "joined" or "skipped".
	Status string
}

// UnknownError lists the instances a request named that are unknown or
// deprovisioned. A request with any is refused whole.
type UnknownError struct {
	Unknown       []string
	Deprovisioned []string
}

func (e *UnknownError) Error() string {
	var parts []string
	if n := len(e.Unknown); n > 0 {
		parts = append(parts, fmt.Sprintf("%d unknown instance(s): %s", n, preview(e.Unknown)))
	}
	if n := len(e.Deprovisioned); n > 0 {
		parts = append(parts, fmt.Sprintf("%d deprovisioned instance(s): %s", n, preview(e.Deprovisioned)))
	}
	return "rotation refused, nothing enqueued: " + strings.Join(parts, "; ")
}

func preview(ids []string) string {
	if len(ids) > 5 {
		return strings.Join(ids[:5], ", ") + ", ..."
	}
	return strings.Join(ids, ", ")
}

// Rotate checks that every instance exists and is live, then claims and
// enqueues a rotation for each. It refuses the whole request with an
// *UnknownError when any instance is unknown or deprovisioned.
func (p *Producer) Rotate(ctx context.Context, req Request) (Result, error) {
	ids := dedupe(req.InstanceIDs)
	if len(ids) == 0 {
		return Result{}, errors.New("rotation refused: no instance named")
	}
	if err := p.check(ctx, ids); err != nil {
		return Result{}, err
	}
	if req.BatchID == "" {
		req.BatchID = tasks.NewID("bat")
	}
	if req.Queue == "" {
		req.Queue = tasks.QueueDefault
		if len(ids) == 1 {
			req.Queue = tasks.QueueInteractive
		}
	}
	if err := p.store.CreateBatch(ctx, req.BatchID, req.Reason, len(ids)); err != nil {
		return Result{}, err
	}
	items, err := p.each(ctx, ids, req)
	res := Result{BatchID: req.BatchID, Items: items}
	for _, it := range items {
		switch it.Status {
		case "enqueued":
			res.Enqueued++
		case "joined":
			res.Joined++
		case "skipped":
			res.Skipped++
		}
	}
	if cerr := p.store.CountBatch(ctx, req.BatchID, res.Enqueued, res.Joined, res.Skipped); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return res, err
}

// check refuses the request when any instance is unknown or deprovisioned.
func (p *Producer) check(ctx context.Context, ids []string) error {
	var unknown UnknownError
	for start := 0; start < len(ids); start += 1000 {
		page := ids[start:min(start+1000, len(ids))]
		ins, err := p.store.Instances(ctx, page)
		if err != nil {
			return err
		}
		for _, in := range ins {
			switch {
			case in.RegisteredAt.IsZero():
				unknown.Unknown = append(unknown.Unknown, in.ID)
			case in.Deprovisioned():
				unknown.Deprovisioned = append(unknown.Deprovisioned, in.ID)
			}
		}
	}
	if len(unknown.Unknown)+len(unknown.Deprovisioned) > 0 {
		return &unknown
	}
	return nil
}

// each claims and enqueues every instance, a bounded number at once.
func (p *Producer) each(ctx context.Context, ids []string, req Request) ([]Item, error) {
	items := make([]Item, len(ids))
	errs := make([]error, len(ids))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(p.parallel, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				items[i], errs[i] = p.one(ctx, ids[i], req)
			}
		}()
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	return items, errors.Join(errs...)
}

func (p *Producer) one(ctx context.Context, id string, req Request) (Item, error) {
	rot := tasks.NewID("rot")
	c, err := p.store.Claim(ctx, store.RotationRequest{InstanceID: id, RotationID: rot, BatchID: req.BatchID,
		Reason: req.Reason, Queue: req.Queue, Grace: req.Grace, SkipIfPrevious: req.SkipIfPrevious})
	if err != nil {
		return Item{InstanceID: id}, fmt.Errorf("claim %s: %w", id, err)
	}
	switch c.Status {
	case store.Joined:
		return Item{InstanceID: id, RotationID: c.RotationID, Status: "joined"}, nil
	case store.Skipped:
		return Item{InstanceID: id, Status: "skipped"}, nil
	}
	if err := Enqueue(ctx, p.q, id, rot, req.BatchID, req.Reason, req.Queue, req.Grace); err != nil {
		// The rotation stays in flight; the reconcile sweep enqueues it again.
		return Item{InstanceID: id, RotationID: rot, Status: "enqueued"}, err
	}
	return Item{InstanceID: id, RotationID: rot, Status: "enqueued"}, nil
}

// Enqueue enqueues the rotate task of a claimed rotation. A task that
// already exists counts as success.
func Enqueue(ctx context.Context, q Enqueuer, instanceID, rotationID, batchID, reason, queue string, grace time.Duration) error {
	t, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: instanceID, RotationID: rotationID,
		BatchID: batchID, Reason: reason, Grace: tasks.Duration(grace)}, asynq.Queue(queue))
	if err != nil {
		return err
	}
	if _, err := q.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue rotation of %s: %w", instanceID, err)
	}
	return nil
}

func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
