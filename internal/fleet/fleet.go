// Package fleet turns rotation requests (one instance, a list, the whole
// fleet) into claimed rotations and enqueued rotate tasks. It is the one
// producer used by the CLI, the HTTP API and the dashboard. It also works
// out what a request would do without doing it (Plan), reads and checks
// lists of instance ids line by line (ReadIDs, Screen), and cancels a
// batch (Cancel).
//
// A fleet-sized request costs round trips per chunk, not per instance:
// instances are read a thousand per pipeline and claimed a hundred per
// pipeline (store.ClaimMany); only the enqueue is one call per rotation,
// asynq having no batch enqueue, and those run 32 at once.
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

	"github.com/rekeyhq/rekey/internal/pacing"
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
	// minGrace and maxGrace are the shortest and the longest Request.Grace
	// accepted (WithMinGrace, WithMaxGrace).
	minGrace, maxGrace time.Duration
}

// NewProducer returns a Producer that claims in st and enqueues with q.
// Every producer of rotations (the CLI, the HTTP API, the dashboard) goes
// through one, so the grace floor is checked here, once.
func NewProducer(st *store.Store, q Enqueuer, opts ...Option) *Producer {
	p := &Producer{store: st, q: q, parallel: 32, minGrace: DefaultMinGrace, maxGrace: DefaultMaxGrace}
	for _, o := range opts {
		o(p)
	}
	return p
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
	// Customer marks a customer's request (the dashboard's button) and
	// carries the customer's limits, which the store's claim enforces.
	Customer *store.CustomerLimits
	// SkipGone leaves out unknown and deprovisioned instances (Item status
	// "gone") instead of refusing the request. A request for the whole fleet
	// sets it, so that an instance deprovisioned while the request runs
	// does not stop the others.
	SkipGone bool
}

// Result says what a request did.
type Result struct {
	BatchID  string
	Enqueued int
	Joined   int
	Skipped  int
	// Gone counts the instances SkipGone left out, and those deprovisioned
	// (or gone) between the check and their claim, whatever SkipGone says:
	// the check passed, so the request is not refused (unless every
	// instance went so: then it fails, and leaves no batch), and their
	// rotations would have been ended by the DELETE anyway.
	Gone int
	// Refused counts the instances a limit refused at their claim
	// (Item.Refused says which).
	Refused int
	Items   []Item
}

// Item is the outcome for one instance.
type Item struct {
	InstanceID string
	RotationID string
	// Status is "enqueued", "joined", "skipped", "refused" (a limit of the
	// store's claim) or "gone" (unknown or deprovisioned, with
	// Request.SkipGone).
	Status string
	// Refused says which limit refused the instance, with Status "refused".
	Refused *store.Refusal
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
// enqueues a rotation for each. It refuses the whole request with a
// *GraceError when req.Grace is below the floor or above the ceiling, and with an *UnknownError
// when any instance is unknown or deprovisioned, unless req.SkipGone is set.
func (p *Producer) Rotate(ctx context.Context, req Request) (Result, error) {
	if err := CheckGrace(req.Grace, p.minGrace, p.maxGrace); err != nil {
		return Result{}, err
	}
	ids := dedupe(req.InstanceIDs)
	if len(ids) == 0 {
		return Result{}, errors.New("rotation refused: no instance named")
	}
	var gone []Item
	if !req.SkipGone {
		if err := p.checkCap(ctx, ids); err != nil {
			return Result{}, err
		}
	}
	twoCalls, err := p.check(ctx, ids)
	if err != nil {
		var unknown *UnknownError
		if !req.SkipGone || !errors.As(err, &unknown) {
			return Result{}, err
		}
		ids, gone = leaveOut(ids, unknown)
		if len(ids) == 0 {
			return Result{Gone: len(gone), Items: gone}, errors.New("rotation refused: every instance named is unknown or deprovisioned")
		}
	}
	req = withDefaults(req, len(ids))
	if err := p.store.CreateBatch(ctx, req.BatchID, req.Reason, len(ids)); err != nil {
		return Result{}, err
	}
	items, err := p.twoCallsFirst(ctx, ids, twoCalls, req)
	res := tally(req.BatchID, append(gone, items...))
	// Instances that went away between the check and their claim, that a
	// limit refused, or whose claim failed (the request was interrupted,
	// Redis failed) count as skipped in the batch, so that it still adds
	// up to its total and is done once its rotations finish.
	unclaimed := 0
	for _, it := range items {
		if it.Status == "" {
			unclaimed++
		}
	}
	// The counts are written even when ctx is cancelled (an operator's
	// Ctrl-C during `rekey rotate --all`): the rotations claimed run
	// anyway, and a batch left without its counts would show none enqueued
	// and never be done.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), countTimeout)
	defer cancel()
	if req.Customer != nil && res.Enqueued == 0 {
		// A customer's click that started nothing (it joined the rotation
		// under way, a limit refused it, its claim failed) leaves no batch:
		// nobody follows a customer's batch, and a click may come again.
		if derr := p.store.DropBatch(cctx, req.BatchID); derr != nil {
			err = errors.Join(err, derr)
		}
		return res, err
	}
	if len(res.Items) > 0 && res.Gone == len(res.Items) {
		// Every instance named went between the check and its claim (a
		// DELETE racing the request): nothing was requested, and, as when
		// the check finds them gone, the request fails and leaves no batch.
		// A caller told otherwise (rekey rotate's exit 0) would take the
		// rotations for requested.
		if derr := p.store.DropBatch(cctx, req.BatchID); derr != nil {
			err = errors.Join(err, derr)
		}
		return Result{Gone: res.Gone, Items: res.Items},
			errors.Join(errors.New("rotation refused: every instance named was deprovisioned meanwhile"), err)
	}
	if cerr := p.store.CountBatch(cctx, req.BatchID, res.Enqueued, res.Joined,
		res.Skipped+res.Refused+res.Gone-len(gone)+unclaimed); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return res, err
}

// countTimeout bounds writing a batch's counts once its context is done.
const countTimeout = 5 * time.Second

// withDefaults fills the batch id and the queue.
func withDefaults(req Request, n int) Request {
	if req.BatchID == "" {
		req.BatchID = tasks.NewID("bat")
	}
	if req.Queue == "" {
		req.Queue = tasks.QueueDefault
		if n == 1 {
			req.Queue = tasks.QueueInteractive
		}
	}
	return req
}

// leaveOut removes the instances u names from ids, returning them as items.
func leaveOut(ids []string, u *UnknownError) ([]string, []Item) {
	bad := make(map[string]bool, len(u.Unknown)+len(u.Deprovisioned))
	for _, id := range append(append([]string(nil), u.Unknown...), u.Deprovisioned...) {
		bad[id] = true
	}
	keep := make([]string, 0, len(ids)-len(bad))
	gone := make([]Item, 0, len(bad))
	for _, id := range ids {
		if bad[id] {
			gone = append(gone, Item{InstanceID: id, Status: "gone"})
		} else {
			keep = append(keep, id)
		}
	}
	return keep, gone
}

// tally counts the items by status.
func tally(batchID string, items []Item) Result {
	res := Result{BatchID: batchID, Items: items}
	for _, it := range items {
		switch it.Status {
		case "enqueued":
			res.Enqueued++
		case "joined":
			res.Joined++
		case "skipped":
			res.Skipped++
		case "gone":
			res.Gone++
		case "refused":
			res.Refused++
		}
	}
	return res
}

// checkPage is how many instances one round trip reads.
const checkPage = 1000

// check refuses the request when any instance is unknown or deprovisioned
// (*UnknownError), and returns the live instances whose rotation costs
// Heroku two calls: V1's, whose push is confirmed by a read of the app's
// config (twoCallsFirst).
func (p *Producer) check(ctx context.Context, ids []string) (map[string]bool, error) {
	var unknown UnknownError
	twoCalls := map[string]bool{}
	for start := 0; start < len(ids); start += checkPage {
		page := ids[start:min(start+checkPage, len(ids))]
		ps, err := p.store.Presences(ctx, page)
		if err != nil {
			return nil, err
		}
		for i, pr := range ps {
			switch {
			case !pr.Registered:
				unknown.Unknown = append(unknown.Unknown, page[i])
			case pr.Deprovisioned:
				unknown.Deprovisioned = append(unknown.Deprovisioned, page[i])
			case pr.APIVersion == store.APIv1:
				twoCalls[page[i]] = true
			}
		}
	}
	if len(unknown.Unknown)+len(unknown.Deprovisioned) > 0 {
		return twoCalls, &unknown
	}
	return twoCalls, nil
}

// twoCallsFirst claims and holds the bulk rotations of the instances in
// twoCalls before the others', and returns the items in the request's
// order. The feeder releases a wave's held rotations in the order they were
// held, so the rotations that take two Heroku calls run early in the wave,
// and its last rotations take one call each: a V1 rotation's read-back no
// longer comes after the wave's last pushes, between them or behind them
// (longest first, the classic rule for a short tail). Other queues run at
// once, in no order that matters: their requests are claimed in one go.
func (p *Producer) twoCallsFirst(ctx context.Context, ids []string, twoCalls map[string]bool, req Request) ([]Item, error) {
	if len(twoCalls) == 0 || req.Queue != tasks.QueueBulk {
		return p.each(ctx, ids, req)
	}
	var first, rest []string
	var firstAt, restAt []int
	for i, id := range ids {
		if twoCalls[id] {
			first, firstAt = append(first, id), append(firstAt, i)
		} else {
			rest, restAt = append(rest, id), append(restAt, i)
		}
	}
	if len(rest) == 0 {
		return p.each(ctx, ids, req)
	}
	items := make([]Item, len(ids))
	a, errA := p.each(ctx, first, req)
	b, errB := p.each(ctx, rest, req)
	for k, i := range firstAt {
		items[i] = a[k]
	}
	for k, i := range restAt {
		items[i] = b[k]
	}
	return items, errors.Join(errA, errB)
}

// claimChunk is how many claims go to Redis in one pipeline.
const claimChunk = 100

// each claims and enqueues every instance: chunks of claims, each one
// pipeline, on a bounded number of goroutines that then enqueue what they
// claimed.
func (p *Producer) each(ctx context.Context, ids []string, req Request) ([]Item, error) {
	items := make([]Item, len(ids))
	errs := make([]error, len(ids))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(p.parallel, (len(ids)+claimChunk-1)/claimChunk) {
		wg.Go(func() {
			for start := range next {
				end := min(start+claimChunk, len(ids))
				p.chunk(ctx, ids[start:end], req, items[start:end], errs[start:end])
			}
		})
	}
	for start := 0; start < len(ids); start += claimChunk {
		next <- start
	}
	close(next)
	wg.Wait()
	return items, errors.Join(errs...)
}

// chunk claims ids in one pipeline, then enqueues the task of each rotation
// it started.
func (p *Producer) chunk(ctx context.Context, ids []string, req Request, items []Item, errs []error) {
	reqs := make([]store.RotationRequest, len(ids))
	for i, id := range ids {
		reqs[i] = store.RotationRequest{InstanceID: id, RotationID: tasks.NewID("rot"), BatchID: req.BatchID,
			Reason: req.Reason, Queue: req.Queue, Grace: req.Grace, SkipIfPrevious: req.SkipIfPrevious,
			Customer: req.Customer, Overtakes: Overtakes(req.Queue)}
	}
	bh, holdMany := p.q.(batchHolder)
	holdMany = holdMany && req.Queue == tasks.QueueBulk
	var held []int // the chunk's new rotations, when they are held together
	for i, c := range p.store.ClaimMany(ctx, reqs) {
		item, err := claimItem(reqs[i], c)
		items[i], errs[i] = item, err
		switch {
		case err == nil && c.Claim.Moved:
			// The request overtook a rotation a wave holds: its task goes
			// on the request's queue now. On failure the reconcile sweep
			// enqueues it there.
			errs[i] = EnqueueMoved(ctx, p.store, p.q, item.RotationID)
		case err != nil || item.Status != "enqueued":
		case holdMany:
			held = append(held, i)
		default:
			// On failure the rotation stays in flight; the reconcile sweep enqueues it again.
			errs[i] = Enqueue(ctx, p.q, item.InstanceID, item.RotationID, req.BatchID, req.Reason, req.Queue, req.Grace)
		}
	}
	if len(held) == 0 {
		return
	}
	rotations := make([]string, len(held))
	for k, i := range held {
		rotations[k] = items[i].RotationID
	}
	if err := bh.HoldMany(ctx, rotations); err != nil {
		for _, i := range held {
			errs[i] = fmt.Errorf("enqueue rotation of %s: %w", items[i].InstanceID, err)
		}
	}
}

// batchHolder is a Holder that holds many rotations in one round trip
// (*pacing.Client): a chunk's new bulk rotations, claimed in one pipeline,
// are held together.
type batchHolder interface {
	Holder
	HoldMany(ctx context.Context, rotationIDs []string) error
}

// claimItem turns a claim into an item: "enqueued" for a rotation whose
// task the caller must now enqueue (or hold).
func claimItem(r store.RotationRequest, c store.ClaimOutcome) (Item, error) {
	id := r.InstanceID
	switch {
	case c.Err != nil && (errors.Is(c.Err, store.ErrNotFound) || errors.Is(c.Err, store.ErrDeprovisioned)):
		// Deprovisioned since the check (the request passed it): not a
		// failure of rekey's, which the caller would retry.
		return Item{InstanceID: id, Status: "gone"}, nil
	case c.Err != nil:
		return Item{InstanceID: id}, fmt.Errorf("claim %s: %w", id, c.Err)
	case c.Claim.Status == store.Joined:
		return Item{InstanceID: id, RotationID: c.Claim.RotationID, Status: "joined"}, nil
	case c.Claim.Status == store.Skipped && c.Claim.Refused != nil:
		return Item{InstanceID: id, Status: "refused", Refused: c.Claim.Refused}, nil
	case c.Claim.Status == store.Skipped:
		return Item{InstanceID: id, Status: "skipped"}, nil
	}
	return Item{InstanceID: id, RotationID: r.RotationID, Status: "enqueued"}, nil
}

// Enqueue enqueues the rotate task of a claimed rotation. A task that
// already exists counts as success.
func Enqueue(ctx context.Context, q Enqueuer, instanceID, rotationID, batchID, reason, queue string, grace time.Duration) error {
	var err error
	if h, ok := q.(Holder); ok && queue == tasks.QueueBulk {
		// Paced: the feeder makes its task at the budget's pace (internal/pacing).
		err = h.Hold(ctx, rotationID)
	} else {
		err = enqueueTask(ctx, q, instanceID, rotationID, batchID, reason, queue, grace)
	}
	if err != nil {
		return fmt.Errorf("enqueue rotation of %s: %w", instanceID, err)
	}
	return nil
}

// Overtakes is the queue a request on queue does not wait behind
// (store.RotationRequest.Overtakes): the paced bulk queue, for a request on
// any other. A customer's click or an operator's rotation of an instance
// whose rotation a wave holds moves that rotation to its own queue
// (docs/design.md, "Pacing a wave").
func Overtakes(queue string) string {
	if queue == tasks.QueueBulk {
		return ""
	}
	return tasks.QueueBulk
}

// Rotations reads a rotation's record (*store.Store).
type Rotations interface {
	Rotation(ctx context.Context, id string) (store.Rotation, error)
}

// EnqueueMoved enqueues the task of a rotation that a request moved off
// the bulk queue (store.Claim.Moved) on the queue its record names now.
// The feeder drops the rotation from its held set instead of releasing
// it (HeldTasks), and a bulk task of it released already leaves it to
// this one (handlers.OutcomeMoved).
func EnqueueMoved(ctx context.Context, rotations Rotations, q Enqueuer, rotationID string) error {
	rot, err := rotations.Rotation(ctx, rotationID)
	if err != nil {
		return fmt.Errorf("enqueue moved rotation %s: %w", rotationID, err)
	}
	return Enqueue(ctx, q, rot.InstanceID, rot.ID, rot.BatchID, rot.Reason, rot.Queue, rot.Grace)
}

// Resume enqueues again the rotate task of a rotation claimed before
// (store.Resumed): as Enqueue, except that a paced bulk rotation the feeder
// released already is not held again (Holder.HoldAgain), which would cost
// a token for a task that exists; one that is held again takes heldAt's
// place in line.
func Resume(ctx context.Context, q Enqueuer, heldAt time.Time, instanceID, rotationID, batchID, reason, queue string, grace time.Duration) error {
	h, ok := q.(Holder)
	if !ok || queue != tasks.QueueBulk {
		return Enqueue(ctx, q, instanceID, rotationID, batchID, reason, queue, grace)
	}
	if _, err := h.HoldAgain(ctx, rotationID, heldAt); err != nil {
		return fmt.Errorf("enqueue rotation of %s: %w", instanceID, err)
	}
	return nil
}

// enqueueTask builds the task without tasks' floor (MinGrace): a
// request's grace was checked against this deployment's floor, which may
// be lower, when it was asked for (CheckGrace), and a grace a record kept
// from an older payload, below any floor, must not leave its rotation
// without a task for good. The worker gives such a rotation the
// instance's own grace, never a shorter one.
//
// A rotation whose record names the revoke queue (claimed by a rotate task
// another app put there, which workers before this version ran there) gets
// its task on the default queue: the tasks package refuses a rotation on
// the revoke queue, which is for revocations.
func enqueueTask(ctx context.Context, q Enqueuer, instanceID, rotationID, batchID, reason, queue string, grace time.Duration) error {
	if queue == tasks.QueueRevoke {
		queue = tasks.QueueDefault
	}
	t, err := tasks.NewRotateTaskWithFloor(tasks.RotatePayload{InstanceID: instanceID, RotationID: rotationID,
		BatchID: batchID, Reason: reason, Grace: tasks.Duration(grace)}, 0, asynq.Queue(queue))
	if err != nil {
		return err
	}
	if _, err = q.EnqueueContext(ctx, t); errors.Is(err, asynq.ErrTaskIDConflict) {
		err = nil
	}
	return err
}

// Holder is an Enqueuer that holds bulk rotations for the pacing feeder
// (*pacing.Client, docs/design.md "Pacing a wave"): Enqueue hands it every
// rotation on the bulk queue, and the feeder creates its task (HeldTasks).
// A rotation held already keeps its place.
type Holder interface {
	Hold(ctx context.Context, rotationID string) error
	HoldAgain(ctx context.Context, rotationID string, heldAt time.Time) (bool, error)
}

// HeldTasks builds the rotate task of a held bulk rotation, when the
// pacing feeder releases it, from what the rotation's claim recorded
// (pacing.Tasks). Use it by pointer: it remembers cancelled batches.
type HeldTasks struct {
	Store *store.Store

	mu        sync.Mutex
	cancelled map[string]bool      // batches seen cancelled: for good
	live      map[string]time.Time // batches seen live, and when
}

// liveFor is how long a batch seen live is taken as live: a rotation held
// in that time after its batch was cancelled costs a token, and its task's
// claim cancels it.
const liveFor = 2 * time.Second

// RotateTask returns the task of rotationID, or nil when the rotation
// waits for none any more: finished, expired, moved to another queue by a
// request that overtook the wave (EnqueueMoved: its task there runs it),
// or of a cancelled batch (it
// records that one cancelled, as its task's claim would have, unless a
// request on another queue joined it while its task ran, or a batch not
// cancelled joined it: that one is released). asynq does
// not keep the task once it finished, unlike other rotate tasks
// (tasks.Retention): a wave's progress is its batch (`rekey batches
// show`), each rotation is in its instance's history, and keeping a day of
// a wave's tasks cost several hundred bytes each (docs/benchmarks.md), one
// more asynq command a rotation to record each and two to delete it a day
// later. A record that cannot make a bulk task is pacing.ErrUnusable.
func (h *HeldTasks) RotateTask(ctx context.Context, rotationID string) (*asynq.Task, error) {
	rot, err := h.Store.Rotation(ctx, rotationID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case rot.State == store.RotationPromoted || rot.State == store.RotationFailed || rot.State == store.RotationCancelled:
		return nil, nil
	case rot.InstanceID != "" && rot.Queue != "" && rot.Queue != tasks.QueueBulk:
		return nil, nil // moved
	case rot.InstanceID == "" || rot.Queue != tasks.QueueBulk:
		return nil, fmt.Errorf("rotation %s of instance %q on queue %q: %w", rotationID, rot.InstanceID, rot.Queue, pacing.ErrUnusable)
	}
	if rot.State == store.RotationRequested && rot.BatchID != "" {
		cancelled, err := h.batchCancelled(ctx, rot.BatchID)
		if err != nil {
			return nil, err
		}
		if cancelled {
			// The claim cancels it, unless a customer's or an operator's
			// request joined it under way, or a wave not cancelled joined
			// it (the cancel leaves those to finish): released, it runs.
			// The claim is brief: it notes no start, so a click before the
			// task runs still moves the rotation ahead of the wave. A
			// request that moved it meanwhile leaves the released task
			// nothing to do (its claim finds the move).
			req := store.RotationRequest{InstanceID: rot.InstanceID, RotationID: rotationID, BatchID: rot.BatchID, Queue: rot.Queue}
			c, err := h.Store.ClaimBrief(ctx, req)
			if err != nil || c.Status != store.Resumed {
				return nil, err
			}
		}
	}
	// Without tasks' floor, as enqueueTask: the record's grace was
	// checked when asked for, or the worker sets it aside.
	t, err := tasks.NewRotateTaskWithFloor(tasks.RotatePayload{InstanceID: rot.InstanceID, RotationID: rotationID, BatchID: rot.BatchID,
		Reason: rot.Reason, Grace: tasks.Duration(rot.Grace), RequestedAt: rot.RequestedAt},
		0, asynq.Queue(tasks.QueueBulk), asynq.Retention(0))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", pacing.ErrUnusable, err)
	}
	return t, nil
}

// batchCancelled reports whether batch id was cancelled, reading it at most
// every liveFor while it is live: a wave is one batch, and its rotations
// are released one or two a budget interval.
func (h *HeldTasks) batchCancelled(ctx context.Context, id string) (bool, error) {
	h.mu.Lock()
	if h.cancelled[id] || time.Since(h.live[id]) < liveFor {
		defer h.mu.Unlock()
		return h.cancelled[id], nil
	}
	h.mu.Unlock()
	cancelled, err := h.Store.BatchCancelled(ctx, id)
	if err != nil {
		return false, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancelled == nil {
		h.cancelled, h.live = map[string]bool{}, map[string]time.Time{}
	}
	if len(h.live)+len(h.cancelled) > 1000 { // batches long gone
		clear(h.live)
		clear(h.cancelled)
	}
	if cancelled {
		h.cancelled[id] = true
	} else {
		h.live[id] = time.Now()
	}
	return cancelled, nil
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
