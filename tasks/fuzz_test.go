package tasks_test

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/tasks"
)

// payloadSeeds are payloads as producers write them, and as they go wrong.
var payloadSeeds = []string{
	`{"instance_id":"inst-1","rotation_id":"rot_1"}`,
	`{"instance_id":"inst-1","rotation_id":"rot_1","batch_id":"bat_1","reason":"incident","grace":"2h","skip_if_previous":true}`,
	`{"instance_id":"inst-1","rotation_id":"rot_1","grace":7200}`,
	`{"instance_id":"inst-1","rotation_id":"rot_1","grace":1e300}`,
	`{"instance_id":"inst-1","rotation_id":"rot_1","grace":-5}`,
	`{"instance_id":"inst-1","rotation_id":"rot_1","grace":"1ms"}`,
	`{"instance_id":"inst-1","rotation_id":"rot_1","grace":"9999999999h"}`,
	`{"instance_id":"inst-1","credential_id":"cred_1"}`,
	`{"instance_id":"","rotation_id":"rot_1"}`,
	`{"instance_id":1}`,
	`null`,
	`[]`,
	``,
	`{"instance_id":"inst-1","rotation_id":"rot_1","grace":{}}`,
	`{"instance_id":"inst-1","rotation_id":"rot_1","requested_at":"2026-11-30T13:00:00+01:00"}`,
	`{"instance_id":"inst-1","rotation_id":"rot_1","requested_at":"yesterday"}`,
}

// FuzzParseRotate decodes arbitrary rotate payloads. Properties: no panic;
// a refusal wraps ErrInvalidPayload; an accepted payload names an instance
// and a rotation, survives NewRotateTaskWithFloor without a floor and
// ParseRotate unchanged (but for the request time the constructor fills
// when the payload has none), is refused by NewRotateTask with a
// *GraceError exactly when its grace is positive and below MinGrace, and
// holds a grace of the sign the payload gave (a number of seconds too large
// for a duration is refused, not wrapped round).
func FuzzParseRotate(f *testing.F) {
	for _, s := range payloadSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		p, err := tasks.ParseRotate(asynq.NewTask(tasks.TypeRotate, payload))
		if err != nil {
			if !errors.Is(err, tasks.ErrInvalidPayload) {
				t.Fatalf("ParseRotate(%q) = %v, want ErrInvalidPayload", payload, err)
			}
			return
		}
		if p.InstanceID == "" || p.RotationID == "" {
			t.Fatalf("ParseRotate(%q) accepted %+v", payload, p)
		}
		checkGraceSign(t, payload, p.Grace)
		var ge *tasks.GraceError
		_, err = tasks.NewRotateTask(p)
		if short := p.Grace > 0 && time.Duration(p.Grace) < tasks.MinGrace; short != errors.As(err, &ge) || !short && err != nil {
			t.Fatalf("NewRotateTask(%+v) = %v; want a *GraceError only for a positive grace below %s", p, err, tasks.MinGrace)
		}
		task, err := tasks.NewRotateTaskWithFloor(p, 0)
		if err != nil {
			t.Fatalf("NewRotateTaskWithFloor(%+v, 0): %v", p, err)
		}
		again, err := tasks.ParseRotate(task)
		want := p
		if p.RequestedAt.IsZero() && err == nil && !again.RequestedAt.IsZero() {
			want.RequestedAt = again.RequestedAt
		}
		if err != nil || !reflect.DeepEqual(again, want) {
			t.Fatalf("round trip of %+v = %+v, %v", p, again, err)
		}
	})
}

// checkGraceSign compares a decoded grace with the payload's number of
// seconds, when it gave one.
func checkGraceSign(t *testing.T, payload []byte, got tasks.Duration) {
	var raw struct {
		Grace json.RawMessage `json:"grace"`
	}
	var secs float64
	if json.Unmarshal(payload, &raw) != nil || json.Unmarshal(raw.Grace, &secs) != nil {
		return
	}
	d, ns := time.Duration(got), secs*float64(time.Second)
	if ns >= 1 && d <= 0 || ns <= -1 && d >= 0 || ns >= math.MaxInt64 || ns <= math.MinInt64 {
		t.Fatalf("grace %v seconds decoded as %s", secs, d)
	}
}

// FuzzParseRevoke decodes arbitrary revoke payloads. Properties: no panic;
// a refusal wraps ErrInvalidPayload; an accepted payload names an instance
// and a credential and survives NewRevokeTask and ParseRevoke unchanged; a
// payload is never accepted as the other task type.
func FuzzParseRevoke(f *testing.F) {
	for _, s := range payloadSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		if _, err := tasks.ParseRotate(asynq.NewTask(tasks.TypeRevoke, payload)); !errors.Is(err, tasks.ErrInvalidPayload) {
			t.Fatalf("a revoke task parsed as a rotation: %v", err)
		}
		p, err := tasks.ParseRevoke(asynq.NewTask(tasks.TypeRevoke, payload))
		if err != nil {
			if !errors.Is(err, tasks.ErrInvalidPayload) {
				t.Fatalf("ParseRevoke(%q) = %v, want ErrInvalidPayload", payload, err)
			}
			return
		}
		if p.InstanceID == "" || p.CredentialID == "" {
			t.Fatalf("ParseRevoke(%q) accepted %+v", payload, p)
		}
		task, err := tasks.NewRevokeTask(p, time.Unix(1700000000, 0))
		if err != nil {
			t.Fatalf("NewRevokeTask(%+v): %v", p, err)
		}
		again, err := tasks.ParseRevoke(task)
		if err != nil || again != p {
			t.Fatalf("round trip of %+v = %+v, %v", p, again, err)
		}
	})
}
