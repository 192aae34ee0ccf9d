package reconcile_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/reconcile"
)

// steppedInspector is asynq's inspector with a step taken right after the
// sweep first reads task id: what another process does between the sweep's
// look at a task and what the sweep then does with it.
type steppedInspector struct {
	*asynq.Inspector
	id   string
	step func()
	once sync.Once
}

var _ reconcile.Inspector = (*steppedInspector)(nil)

func (i *steppedInspector) GetTaskInfo(queue, id string) (*asynq.TaskInfo, error) {
	info, err := i.Inspector.GetTaskInfo(queue, id)
	if id == i.id {
		i.once.Do(i.step)
	}
	return info, err
}

// TestOverlappingSweepsRunAnArchivedRotationAgainOnce: the sweep's lock
// lasts half an interval and is not renewed, so a sweep that outlasts it (a
// large fleet, a slow Redis) runs beside another process's. One sweep reads
// an archived rotate task, the other runs it again meanwhile, and asynq
// refuses to run a task that is pending already. The first sweep leaves the
// rotation to the other rather than fail there, before every record behind
// it, and the rotation is counted resumed once.
func TestOverlappingSweepsRunAnArchivedRotationAgainOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	info := w.archivedPushedRotation(t, "pushed", "rot-p", 1, 0)
	var other reconcile.Result
	var otherErr error
	insp := &steppedInspector{Inspector: w.insp, id: info.ID, step: func() { other, otherErr = w.sweep.Sweep(ctx) }}
	first := reconcile.New(reconcile.Params{Store: w.st, Enqueuer: w.q, Inspector: insp,
		Logger: zerolog.Nop(), Now: func() time.Time { return w.now }})
	res, err := first.Sweep(ctx)
	if otherErr != nil || other.RotationsResumed != 1 {
		t.Fatalf("the other sweep = %+v, %v; want rot-p run again", other, otherErr)
	}
	if err != nil || res.RotationsResumed != 0 {
		t.Fatalf("Sweep beside it = %+v, %v; want rot-p left to the other sweep, no error", res, err)
	}
	if got, err := w.insp.GetTaskInfo(info.Queue, info.ID); err != nil || got.State != asynq.TaskStatePending {
		t.Fatalf("rot-p's task: %+v, %v; want it pending", got, err)
	}
}
