package store

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A reason that reads like a grace too long for a time.Duration is kept as
// the text it is: coded, it would read back as a negative duration.
func TestHistoryKeepsAGraceReasonTooLongToCode(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newHistoryStore(t)
	for i, reason := range []string{"grace 2562048h0m0s", "grace 99999999999999h0m0s", "grace 2562047h0m0s"} {
		inst, rot := fmt.Sprintf("inst-g%d", i), fmt.Sprintf("rot_%024x", i+1)
		if err := s.PutInstance(ctx, Registration{ID: inst, APIVersion: APIv3, ConfigVars: []string{"A_URL"},
			CurrentCredentialID: "cred-0"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Claim(ctx, RotationRequest{InstanceID: inst, RotationID: rot, Reason: reason}); err != nil {
			t.Fatal(err)
		}
		events, err := s.Events(ctx, inst, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) == 0 || events[0].Type != EventRequested || events[0].Detail != reason {
			t.Errorf("events %+v, want the requested event with the reason %q", events, reason)
		}
	}
}

// An instance whose events an earlier version kept in a stream is moved
// into the history one entry per rotation: the cap of 16 entries keeps 16
// rotations, not 16 events.
func TestLegacyStreamMovesOneEntryPerRotation(t *testing.T) {
	ctx := context.Background()
	s, r, now := newHistoryStore(t)
	key := legacyEventsKey("inst-l")
	at := now.Add(-30 * 24 * time.Hour)
	kinds := []string{EventRequested, EventMinted, EventPushed, EventPromoted, EventRevokeScheduled, EventRevoked}
	var want []string
	add := func(typ, rot, cred string) {
		at = at.Add(time.Minute)
		if err := r.Client.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []any{"type", typ, "instance_id", "inst-l",
			"rotation_id", rot, "credential_id", cred, "detail", "", "at", strconv.FormatInt(ms(at), 10)}}).Err(); err != nil {
			t.Fatal(err)
		}
		want = append(want, typ+" "+rot+" "+cred)
	}
	add(EventRegistered, "", "cred_0")
	for k := 1; k <= 5; k++ {
		for _, typ := range kinds {
			add(typ, fmt.Sprintf("rot_%024x", k), fmt.Sprintf("cred_%016x", k))
		}
	}
	// A rotation whose events interleave with the next one's.
	add(EventRequested, "rot_a", "")
	add(EventRequested, "rot_b", "")
	add(EventRevoked, "rot_a", "cred_a")
	for read := range 2 {
		events, err := s.Events(ctx, "inst-l", 1000)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for i := len(events) - 1; i >= 0; i-- {
			got = append(got, events[i].Type+" "+events[i].RotationID+" "+events[i].CredentialID)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("read %d: %d events, want the stream's %d:\n got %q\nwant %q", read+1, len(got), len(want), got, want)
		}
	}
	if n := historyLen(t, r, "inst-l"); n != 8 {
		t.Errorf("%d history entries, want 8: the registration and 7 rotations", n)
	}
}

// A deprovisioned instance whose events were still in an earlier version's
// stream gets its history string from the "expiring" event: it expires
// with the instance's other keys.
func TestExpiringHistoryExpires(t *testing.T) {
	ctx := context.Background()
	s, r, _ := newHistoryStore(t)
	if err := s.PutInstance(ctx, Registration{ID: "inst-x", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: "cred-0"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Deprovision(ctx, "inst-x"); err != nil {
		t.Fatal(err)
	}
	// As an earlier version left it: the events in the stream, no history string.
	r.Client.Del(ctx, historyKey("inst-x"))
	r.Client.XAdd(ctx, &redis.XAddArgs{Stream: legacyEventsKey("inst-x"), Values: []any{"type", EventDeprovisioned,
		"instance_id", "inst-x", "at", "1767323045000"}})
	ok, err := s.ExpireRetired(ctx, "inst-x")
	if err != nil || !ok {
		t.Fatalf("expire retired: %v %v", ok, err)
	}
	for _, k := range []string{instanceKey("inst-x"), legacyEventsKey("inst-x"), historyKey("inst-x")} {
		if d := r.Client.PTTL(ctx, k).Val(); d <= 0 {
			t.Errorf("%s: PTTL %v after ExpireRetired, want the retention", k, d)
		}
	}
	events, err := s.Events(ctx, "inst-x", 10)
	if err != nil || len(events) == 0 || events[0].Type != EventExpiring {
		t.Errorf("events after ExpireRetired: %v %v, want the expiring event first", events, err)
	}
}

// beforeFirst runs before, once, just ahead of the first command named name.
type beforeFirst struct {
	name   string
	before func()
	done   bool
}

func (h *beforeFirst) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *beforeFirst) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *beforeFirst) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == h.name && !h.done {
			h.done = true
			h.before()
		}
		return next(ctx, cmd)
	}
}

// Events reads an earlier version's LIST history in two commands; another
// process's event between them turns the list into the string, which
// Events then reads.
func TestEventsWhileAnotherProcessConvertsTheList(t *testing.T) {
	ctx := context.Background()
	s, r, now := newHistoryStore(t)
	key := historyKey("inst-c")
	r.Client.LPush(ctx, key, encodeHistory(Event{Type: EventRetrying, RotationID: "rot-1", At: *now}))
	other := redis.NewClient(&redis.Options{Addr: r.Addr, DB: r.DB})
	defer other.Close()
	writer := New(other, s.sealer, WithClock(func() time.Time { return now.Add(time.Second) }))
	r.Client.AddHook(&beforeFirst{name: "lrange", before: func() {
		if err := writer.AddEvent(ctx, Event{Type: EventRetrying, InstanceID: "inst-c", RotationID: "rot-2"}); err != nil {
			t.Error(err)
		}
	}})
	events, err := s.Events(ctx, "inst-c", 100)
	if err != nil {
		t.Fatalf("Events while another process converts the list: %v", err)
	}
	if len(events) != 2 || events[0].RotationID != "rot-2" || events[1].RotationID != "rot-1" {
		t.Errorf("events %+v, want rot-2's then rot-1's", events)
	}
}

// Events of one millisecond in several entries (a script that records
// events of several rotations at once) still have ids of their own.
func TestEventIDsAreUniqueInAnInstance(t *testing.T) {
	ctx := context.Background()
	s, r, now := newHistoryStore(t)
	key := historyKey("inst-u")
	for _, rot := range []string{"rot-1", "rot-2", "rot-3"} {
		e := Event{Type: EventCancelled, RotationID: rot, At: *now}
		if err := r.Client.LPush(ctx, key, encodeHistoryEntry([]Event{e, e})).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for read := range 2 {
		events, err := s.Events(ctx, "inst-u", 100)
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, e := range events {
			if ids[e.ID] {
				t.Errorf("read %d: event id %s twice in %d events", read+1, e.ID, len(events))
			}
			ids[e.ID] = true
		}
		if len(events) != 6 {
			t.Errorf("read %d: %d events, want 6", read+1, len(events))
		}
	}
}
