package worker_test

import (
	"maps"
	"slices"
	"testing"

	"github.com/rekeyhq/rekey/internal/worker"
	"github.com/rekeyhq/rekey/tasks"
)

// TestLanesServeEveryQueueOnce: a queue no lane polls would keep its tasks
// for ever, and one that two lanes poll would pay for every look twice.
func TestLanesServeEveryQueueOnce(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	for _, lane := range worker.Lanes() {
		for q := range lane.Queues {
			if other, ok := seen[q]; ok {
				t.Errorf("queue %s is polled by lanes %s and %s", q, other, lane.Name)
			}
			seen[q] = lane.Name
		}
	}
	want := slices.Sorted(maps.Keys(tasks.Queues()))
	if got := slices.Sorted(maps.Keys(seen)); !slices.Equal(got, want) {
		t.Errorf("lanes poll %v, want every queue of tasks.Queues() %v", got, want)
	}
}
