package handlers_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/tasks"
)

// Another app's rotate payload written by hand with a field of the wrong
// shape (a grace or a request time that does not parse) is archived at
// once; its error, which asynq keeps as the task's last error
// (/monitoring) and the worker logs, quotes no more of the payload than any
// text the handlers keep: a value of megabytes (or a secret put in the
// wrong field) is not repeated in full, as a revoke task's error is capped.
func TestRotatePayloadErrorsAreCapped(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	long := "postgres://app:" + strings.Repeat("Hunter2x", 8<<10) + "@db.example.com/app"
	for _, payload := range []string{
		`{"instance_id":"inst-1","rotation_id":"rot_pt1","grace":"` + long + `"}`,
		`{"instance_id":"inst-1","rotation_id":"rot_pt2","requested_at":"` + long + `"}`,
	} {
		err := g.run(asynq.NewTask(tasks.TypeRotate, []byte(payload)))
		if !isPermanent(err) || !errors.Is(err, tasks.ErrInvalidPayload) {
			t.Errorf("err = %.200v, want a permanent ErrInvalidPayload", err)
			continue
		}
		if n := len(err.Error()); n > 512 {
			t.Errorf("the task's error is %d bytes, quoting the payload: %.200s…", n, err.Error())
		}
	}
}
