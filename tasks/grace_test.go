package tasks_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/tasks"
)

// TestRotateConstructorsCheckTheGrace: a positive Grace below the floor
// (MinGrace for NewRotateTask, the one given to NewRotateTaskWithFloor) is
// refused with a *GraceError that says what the number was read as, since
// it is almost always a unit mistake: Grace: 86400 is 86.4µs, and a worker
// would not honour it. Zero, the instance's own grace, passes, and so does
// a grace at or above the floor, kept as asked. A floor of zero, which
// rekey's own producers pass, refuses none.
func TestRotateConstructorsCheckTheGrace(t *testing.T) {
	t.Parallel()
	newRotateTask := func(p tasks.RotatePayload) (*asynq.Task, error) { return tasks.NewRotateTask(p) }
	withFloor := func(floor time.Duration) func(tasks.RotatePayload) (*asynq.Task, error) {
		return func(p tasks.RotatePayload) (*asynq.Task, error) { return tasks.NewRotateTaskWithFloor(p, floor) }
	}
	tests := []struct {
		name  string
		build func(tasks.RotatePayload) (*asynq.Task, error)
		grace tasks.Duration
		floor time.Duration // the *GraceError's floor; zero when accepted
		says  []string
	}{
		{name: "zero is the instance's grace", build: newRotateTask},
		{name: "a negative grace is none", build: newRotateTask, grace: tasks.Duration(-time.Hour)},
		{name: "the floor", build: newRotateTask, grace: tasks.Duration(tasks.MinGrace)},
		{name: "a day", build: newRotateTask, grace: tasks.Duration(24 * time.Hour)},
		{name: "a day in seconds", build: newRotateTask, grace: 86400, floor: tasks.MinGrace,
			says: []string{"grace 86.4µs is below the 10m0s floor", "a tasks.Duration counts nanoseconds",
				"Grace: 86400 is 86.4µs", "tasks.Duration(86400 * time.Second) for 24h0m0s", "leave Grace zero"}},
		{name: "two hours in hours", build: newRotateTask, grace: 2, floor: tasks.MinGrace,
			says: []string{"grace 2ns is below the 10m0s floor", "write the unit, as in tasks.Duration(2 * time.Hour)"}},
		{name: "a second short of the floor", build: newRotateTask, grace: tasks.Duration(tasks.MinGrace - time.Second), floor: tasks.MinGrace,
			says: []string{"grace 9m59s is below the 10m0s floor", "workers whose REKEY_MIN_GRACE is 10m0s would not honour it",
				"keep the instance's own grace", "ask for at least 10m0s", "tasks.NewRotateTaskWithFloor and the deployment's REKEY_MIN_GRACE"}},
		{name: "a lower floor's grace", build: withFloor(time.Minute), grace: tasks.Duration(5 * time.Minute)},
		{name: "below a lower floor", build: withFloor(time.Minute), grace: tasks.Duration(30 * time.Second), floor: time.Minute,
			says: []string{"grace 30s is below the 1m0s floor", "workers whose REKEY_MIN_GRACE is 1m0s"}},
		{name: "no floor", build: withFloor(0), grace: 86400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			task, err := tt.build(tasks.RotatePayload{InstanceID: "inst-grace", Grace: tt.grace})
			if tt.floor == 0 {
				if err != nil {
					t.Fatalf("grace %s: %v, want it accepted", time.Duration(tt.grace), err)
				}
				if p, err := tasks.ParseRotate(task); err != nil || p.Grace != tt.grace {
					t.Fatalf("task's grace = %s, %v; want %s as asked", time.Duration(p.Grace), err, time.Duration(tt.grace))
				}
				return
			}
			var ge *tasks.GraceError
			if task != nil || !errors.As(err, &ge) || ge.Grace != time.Duration(tt.grace) || ge.Floor != tt.floor {
				t.Fatalf("grace %s: task built %t, err %v; want a *GraceError{%s, %s}", time.Duration(tt.grace), task != nil, err, time.Duration(tt.grace), tt.floor)
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}
