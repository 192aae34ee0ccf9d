package fleet

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// Inspector is what Cancel needs of an *asynq.Inspector.
type Inspector interface {
	ListPendingTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListScheduledTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	DeleteTask(queue, id string) error
}

// listPage is how many pending tasks one listing reads.
const listPage = 1000

// Cancel cancels a batch: rotations of it that have not started are
// cancelled before any call to the issuer or Heroku, and rotations under
// way finish (store.CancelBatch). With insp, it also takes the batch's
// still-pending rotate tasks off the queues, recording each rotation as
// cancelled at once, so workers do not run them only to find them
// cancelled. It returns how many rotations it removed so; without insp, or
// when removing fails, the rotations are cancelled anyway when their task
// runs. A rotation of the batch that a customer's or an operator's request
// moved to its own queue (EnqueueMoved), or joined while its task ran, is
// that request's too: it is not cancelled, and its task stays; so is one
// that another batch, not cancelled, joined.
func Cancel(ctx context.Context, st *store.Store, insp Inspector, batchID string) (int, error) {
	if err := st.CancelBatch(ctx, batchID); err != nil {
		return 0, err
	}
	if insp == nil {
		return 0, nil
	}
	counted := map[string]bool{}
	for _, q := range []string{tasks.QueueInteractive, tasks.QueueDefault, tasks.QueueBulk} {
		pending, err := pendingOfBatch(insp.ListPendingTasks, q, batchID)
		if err == nil {
			pending, err = recorded(ctx, st, pending, q, batchID)
		}
		if err != nil {
			return len(counted), err
		}
		for _, id := range removeCancelled(ctx, st, deleteTask(insp, q), q, pending) {
			counted[id] = true
		}
	}
	// Bulk rotations held for the pacing feeder have no task yet: recording
	// them cancelled and taking their ids out of the held set keeps a
	// cancelled wave from spending the budget and from holding up the waves
	// after it. An id left behind (Unhold failed, or held meanwhile) is
	// dropped by the feeder without a token once its rotation is cancelled.
	ids, err := pacing.HeldIDs(ctx, st.Redis())
	if err != nil {
		return len(counted), err
	}
	held, err := st.RotationsOfBatch(ctx, ids, batchID)
	if err != nil {
		return len(counted), err
	}
	gone := removeCancelled(ctx, st, func(string) bool { return true }, tasks.QueueBulk, held)
	for _, id := range gone {
		counted[id] = true
	}
	// Tasks an earlier version held are scheduled (pacing.HoldFor).
	scheduled, err := pendingOfBatch(insp.ListScheduledTasks, tasks.QueueBulk, batchID)
	if err == nil {
		scheduled, err = recorded(ctx, st, scheduled, tasks.QueueBulk, batchID)
	}
	if err != nil {
		return len(counted), err
	}
	for _, id := range removeCancelled(ctx, st, deleteTask(insp, tasks.QueueBulk), tasks.QueueBulk, scheduled) {
		counted[id] = true
		gone = append(gone, id) // held again, the id would cost a token
	}
	return len(counted), pacing.Unhold(ctx, st.Redis(), gone...)
}

// recorded keeps, of the rotations whose tasks in queue q name batch
// batchID, those recorded as the batch's: rekey's producers record a
// rotation before its task exists, so a task with no record, or whose
// record names another batch, is another app's (through the tasks
// package), and claiming it here would start its rotation inside the
// batch, to be counted in it.
func recorded(ctx context.Context, st *store.Store, reqs []store.RotationRequest, q, batchID string) ([]store.RotationRequest, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	ids := make([]string, len(reqs))
	for i, r := range reqs {
		ids[i] = r.RotationID
	}
	out, err := st.RotationsOfBatch(ctx, ids, batchID)
	for i := range out {
		out[i].Queue = q
	}
	return out, err
}

// deleteTask deletes the rotate task of a rotation from queue q, and
// reports whether it did.
func deleteTask(insp Inspector, q string) func(rotationID string) bool {
	return func(rotationID string) bool { return insp.DeleteTask(q, tasks.RotateTaskID(rotationID)) == nil }
}

// pendingOfBatch lists the rotate tasks of one batch in queue q that list
// returns (pending or scheduled ones). It reads the whole list before
// anything is removed, so that removing does not shift the pages it reads.
func pendingOfBatch(list func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error), q, batchID string) ([]store.RotationRequest, error) {
	var out []store.RotationRequest
	for page := 1; ; page++ {
		infos, err := list(q, asynq.PageSize(listPage), asynq.Page(page))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list tasks of %s: %w", q, err)
		}
		for _, info := range infos {
			p, err := tasks.ParseRotate(asynq.NewTask(info.Type, info.Payload))
			if err == nil && p.BatchID == batchID {
				out = append(out, store.RotationRequest{InstanceID: p.InstanceID, RotationID: p.RotationID,
					BatchID: p.BatchID, Queue: q})
			}
		}
		if len(infos) < listPage {
			return out, nil
		}
	}
}

// removeCancelled records the rotations as cancelled (the claim script does
// so for a rotation of a cancelled batch that has not started), then
// removes what is left of those it cancelled (remove: their tasks, for
// rotations that have one), and returns the ids of those it removed. A task
// a worker picked up in between finds its rotation cancelled and does
// nothing.
func removeCancelled(ctx context.Context, st *store.Store, remove func(rotationID string) bool, q string, rotations []store.RotationRequest) []string {
	var removed []string
	for start := 0; start < len(rotations); start += claimChunk {
		chunk := rotations[start:min(start+claimChunk, len(rotations))]
		for i, c := range st.ClaimMany(ctx, chunk) {
			if c.Err != nil || c.Claim.Status != store.Done || c.Claim.State != store.RotationCancelled {
				continue // not ours to remove: under way, finished, or gone
			}
			// A task that cannot be deleted (a worker took it meanwhile) is
			// harmless: it finds its rotation cancelled.
			if remove(chunk[i].RotationID) {
				removed = append(removed, chunk[i].RotationID)
			}
		}
	}
	return removed
}
