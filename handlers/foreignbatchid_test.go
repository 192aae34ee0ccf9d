package handlers_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// TestAHandWrittenBatchIDNoBatchCanHaveIsNotKept: another app's rotate
// task, its payload written by hand, carries a batch_id that is no usable
// correlation id (a megabyte, line breaks, terminal escapes). The rotation
// runs, in no batch as any task's own claim, and its record (kept 30 days,
// shown on the operator's instance page) keeps no such id: it kept the
// megabyte as it came, escapes included. A printable one is kept, a Redis
// key separator in it too (it counts into no batch: batch_id_ok).
func TestAHandWrittenBatchIDNoBatchCanHaveIsNotKept(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	for i, c := range []struct{ batch, kept string }{
		{strings.Repeat("b", 1<<20), ""},
		{"corr 42\r\n\x1b[2J", ""},
		{"bat_x:failures", "bat_x:failures"},
	} {
		batch := c.batch
		rot := "rot_fb" + string(rune('a'+i))
		b, err := json.Marshal(tasks.RotatePayload{InstanceID: "inst-1", RotationID: rot, BatchID: batch})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.run(asynq.NewTask(tasks.TypeRotate, b)); err != nil {
			t.Fatalf("batch id %.40q: run = %.300v, want the rotation done", batch, err)
		}
		r, err := g.st.Rotation(ctx, rot)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != store.RotationPromoted || r.BatchID != c.kept {
			t.Errorf("batch id %.40q: rotation %s, its record's batch id %.40q (%d bytes); want promoted, %q kept",
				batch, r.State, r.BatchID, len(r.BatchID), c.kept)
		}
	}
}
