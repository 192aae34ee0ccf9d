package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

func publish(t *testing.T, f *fixture, period time.Duration, quarantineAfter int) {
	t.Helper()
	if _, err := f.st.SetSchedulePolicy(context.Background(), store.SchedulePolicy{Period: period,
		QuarantineAfter: quarantineAfter}); err != nil {
		t.Fatal(err)
	}
}

func instance(t *testing.T, f *fixture, id string) store.Instance {
	t.Helper()
	in, err := f.st.Instance(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// rotate runs one rotation of id to promotion, or to failure when cause is set.
func rotate(t *testing.T, f *fixture, id, rot, reason, cause string) {
	t.Helper()
	ctx := context.Background()
	req := store.RotationRequest{InstanceID: id, RotationID: rot, Reason: reason}
	if reason == store.ReasonScheduled {
		// As the scheduler does: a producer's claim before its task's.
		if _, err := f.st.ClaimBrief(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.st.Claim(ctx, req); err != nil {
		t.Fatal(err)
	}
	if cause != "" {
		if _, err := f.st.Fail(ctx, id, rot, "mint:issuer_422", cause); err != nil {
			t.Fatal(err)
		}
		return
	}
	cfg := map[string]secret.String{"MYADDON_URL": secret.New("v-" + rot)}
	if err := f.st.SavePending(ctx, id, rot, "c-"+rot, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Promote(ctx, id, rot, "c-"+rot, time.Hour, ""); err != nil {
		t.Fatal(err)
	}
}

func TestSlotsAgreeBetweenGoAndRedis(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, period := range []time.Duration{time.Hour, 7 * time.Hour, store.DefaultRotationPeriod} {
		publish(t, f, period, 3)
		for i := range 50 {
			id := fmt.Sprintf("agree-%d-%d", period/time.Hour, i)
			f.register(t, id, "")
			got := instance(t, f, id).NextRotationAt
			want := store.NextSlot(id, period, f.now)
			if !got.Equal(want) {
				t.Fatalf("period %s, %s: Redis scheduled %s, Go computes %s", period, id, got, want)
			}
			if !got.After(f.now.Add(-time.Millisecond)) || got.After(f.now.Add(period)) {
				t.Fatalf("first rotation %s is not within one period of registration %s", got, f.now)
			}
		}
	}
}

func TestPromoteSchedulesNextPeriodAndFailureRetries(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	period := time.Hour
	publish(t, f, period, 3)
	f.register(t, "inst-p", "cred-0")
	first := instance(t, f, "inst-p").NextRotationAt

	f.now = first.Add(20 * time.Second)
	rotate(t, f, "inst-p", "rot-1", store.ReasonScheduled, "")
	if got := instance(t, f, "inst-p").NextRotationAt; !got.Equal(first.Add(period)) {
		t.Fatalf("after a scheduled rotation next = %s, want one period after its slot, %s", got, first.Add(period))
	}

	// A manual rotation soon after does not bring the scheduled one forward.
	f.now = f.now.Add(5 * time.Minute)
	rotate(t, f, "inst-p", "rot-2", "operator request", "")
	next := instance(t, f, "inst-p").NextRotationAt
	if next.Sub(f.now) < period/2 || !next.Equal(store.NextSlot("inst-p", period, f.now.Add(period/2))) {
		t.Fatalf("after a manual rotation at %s next = %s, want the slot at least half a period on", f.now, next)
	}

	f.now = next
	rotate(t, f, "inst-p", "rot-3", store.ReasonScheduled, "issuer: status 422")
	in := instance(t, f, "inst-p")
	if in.FailStreak != 1 || in.Quarantined() || !in.NextRotationAt.Equal(f.now.Add(store.RetryAfterFailure(period))) {
		t.Fatalf("after a failed scheduled rotation: %+v", in)
	}
}

func TestQuarantineAfterConsecutiveScheduledFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	publish(t, f, time.Hour, 3)
	f.register(t, "inst-q", "cred-0")

	rotate(t, f, "inst-q", "m-1", "operator request", "issuer: status 422")
	if in := instance(t, f, "inst-q"); in.FailStreak != 0 {
		t.Fatalf("a manual failure counted towards quarantine: streak %d", in.FailStreak)
	}
	for i := range 3 {
		f.now = f.now.Add(15 * time.Minute)
		rotate(t, f, "inst-q", fmt.Sprintf("s-%d", i), store.ReasonScheduled, "issuer: status 422")
	}
	in := instance(t, f, "inst-q")
	if !in.Quarantined() || in.FailStreak != 3 || !in.NextRotationAt.IsZero() {
		t.Fatalf("after 3 failed scheduled rotations: quarantined %v, streak %d, next %s", in.Quarantined(), in.FailStreak, in.NextRotationAt)
	}
	ids, n, err := f.st.Quarantined(ctx, 10)
	if err != nil || n != 1 || ids[0] != "inst-q" {
		t.Fatalf("Quarantined = %v, %d, %v", ids, n, err)
	}

	f.now = f.now.Add(time.Minute)
	rotate(t, f, "inst-q", "m-2", "operator request", "")
	in = instance(t, f, "inst-q")
	if in.Quarantined() || in.FailStreak != 0 || in.NextRotationAt.IsZero() {
		t.Fatalf("a successful manual rotation left %+v", in)
	}
	if _, n, _ := f.st.Quarantined(ctx, 10); n != 0 {
		t.Fatalf("%d quarantined after the manual rotation", n)
	}
	if ev := eventTypes(t, f, "inst-q"); !strings.Contains(ev, "failed quarantined") || !strings.HasSuffix(ev, "promoted revoke_scheduled unquarantined") {
		t.Fatalf("events = %s", ev)
	}
}

func TestUnquarantineByOperator(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	publish(t, f, time.Hour, 1)
	f.register(t, "inst-u", "")
	rotate(t, f, "inst-u", "s-1", store.ReasonScheduled, "issuer: status 422")
	if !instance(t, f, "inst-u").Quarantined() {
		t.Fatal("not quarantined after one failure with a limit of 1")
	}
	if ok, err := f.st.Unquarantine(ctx, "inst-u", "operator"); err != nil || !ok {
		t.Fatalf("Unquarantine = %v, %v", ok, err)
	}
	in := instance(t, f, "inst-u")
	if in.Quarantined() || in.NextRotationAt.IsZero() {
		t.Fatalf("after Unquarantine: %+v", in)
	}
	if ok, err := f.st.Unquarantine(ctx, "inst-u", "operator"); err != nil || ok {
		t.Fatalf("second Unquarantine = %v, %v; want false, nil", ok, err)
	}
}

func TestScheduleOptOutWindowAndDeprovision(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	publish(t, f, time.Hour, 3)
	f.register(t, "inst-o", "")
	w := store.Window{Start: 2, End: 5}
	if err := f.st.SetSchedule(ctx, "inst-o", store.Schedule{OptOut: true, Window: &w}); err != nil {
		t.Fatal(err)
	}
	in := instance(t, f, "inst-o")
	if !in.ScheduleOptOut || in.Window == nil || *in.Window != w || !in.NextRotationAt.IsZero() {
		t.Fatalf("after opting out: %+v", in)
	}
	rotate(t, f, "inst-o", "m-1", "operator request", "")
	if !instance(t, f, "inst-o").NextRotationAt.IsZero() {
		t.Fatal("a rotation put an opted-out instance back on the schedule")
	}
	if err := f.st.SetSchedule(ctx, "inst-o", store.Schedule{}); err != nil {
		t.Fatal(err)
	}
	if in := instance(t, f, "inst-o"); in.NextRotationAt.IsZero() || in.Window != nil {
		t.Fatalf("after opting back in: %+v", in)
	}
	if err := f.st.Deprovision(ctx, "inst-o"); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.st.CountScheduled(ctx); n != 0 {
		t.Fatalf("%d scheduled after deprovisioning", n)
	}
	if err := f.st.SetSchedule(ctx, "nope", store.Schedule{}); err == nil {
		t.Fatal("SetSchedule of an unknown instance succeeded")
	}
}

func TestReindexBackfillsAndFollowsThePeriod(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	publish(t, f, 0, 3) // off: registration leaves the index alone
	for i := range 30 {
		f.register(t, fmt.Sprintf("r-%d", i), "")
	}
	if n, _ := f.st.CountScheduled(ctx); n != 0 {
		t.Fatalf("%d scheduled while scheduled rotation is off", n)
	}
	publish(t, f, time.Hour, 3)
	if n, err := f.st.Reindex(ctx, false); err != nil || n != 30 {
		t.Fatalf("Reindex = %d, %v; want 30", n, err)
	}
	if n, err := f.st.Reindex(ctx, false); err != nil || n != 0 {
		t.Fatalf("second Reindex = %d, %v; want 0", n, err)
	}
	changed, _ := f.st.SetSchedulePolicy(ctx, store.SchedulePolicy{Period: 2 * time.Hour, QuarantineAfter: 3})
	if !changed {
		t.Fatal("SetSchedulePolicy did not report the period change")
	}
	if _, err := f.st.Reindex(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got, want := instance(t, f, "r-7").NextRotationAt, store.NextSlot("r-7", 2*time.Hour, f.now); !got.Equal(want) {
		t.Fatalf("after the period changed next = %s, want %s", got, want)
	}
}

func TestWindow(t *testing.T) {
	t.Parallel()
	at := func(h, m int) time.Time { return time.Date(2026, 3, 1, h, m, 0, 0, time.UTC) }
	cases := []struct {
		window    string
		t         time.Time
		contains  bool
		nextStart time.Time
	}{
		{"02-05", at(1, 59), false, at(2, 0)},
		{"02-05", at(2, 0), true, at(2, 0)},
		{"02-05", at(5, 0), false, at(2, 0).AddDate(0, 0, 1)},
		{"22-04", at(23, 0), true, at(22, 0).AddDate(0, 0, 1)},
		{"22-04", at(3, 59), true, at(22, 0)},
		{"22-04", at(12, 0), false, at(22, 0)},
		{"18-24", at(23, 59), true, at(18, 0).AddDate(0, 0, 1)},
	}
	for _, c := range cases {
		t.Run(c.window+"@"+c.t.Format("15:04"), func(t *testing.T) {
			w, err := store.ParseWindow(c.window)
			if err != nil {
				t.Fatal(err)
			}
			if w.Contains(c.t) != c.contains || !w.NextStart(c.t).Equal(c.nextStart) {
				t.Fatalf("Contains = %v, NextStart = %s; want %v, %s", w.Contains(c.t), w.NextStart(c.t), c.contains, c.nextStart)
			}
		})
	}
	for _, bad := range []string{"", "5", "05-05", "00-24", "03-25", "x-4"} {
		if _, err := store.ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q) accepted", bad)
		}
	}
}

// The next rotation an instance is told of is where the scheduler runs
// it: inside its maintenance window, its own before the fleet's, at its
// slot in the window's next opening when the due time falls outside.
func TestNextRotationFallsInTheWindow(t *testing.T) {
	t.Parallel()
	due := time.Date(2027, 4, 13, 21, 56, 58, 0, time.UTC)
	night, _ := store.ParseWindow("02-04")
	evening, _ := store.ParseWindow("20-23")
	slot := store.Slot("inst-1", 2*time.Hour)
	cases := []struct {
		name        string
		own, global *store.Window
		due, want   time.Time
	}{
		{"no window", nil, nil, due, due},
		{"own window, due outside", &night, nil, due, time.Date(2027, 4, 14, 2, 0, 0, 0, time.UTC).Add(slot)},
		{"fleet's window, due outside", nil, &night, due, time.Date(2027, 4, 14, 2, 0, 0, 0, time.UTC).Add(slot)},
		{"own window before the fleet's, due inside", &evening, &night, due, due},
		{"not scheduled", &night, nil, time.Time{}, time.Time{}},
	}
	for _, c := range cases {
		in := store.Instance{ID: "inst-1", Window: c.own, NextRotationAt: c.due}
		if got := in.NextRotation(c.global); !got.Equal(c.want) {
			t.Errorf("%s: next rotation %v, want %v", c.name, got, c.want)
		}
	}
}

func TestScheduledRotationIDFitsValidID(t *testing.T) {
	t.Parallel()
	due := time.UnixMilli(1767225600123)
	short := store.ScheduledRotationID("inst-1", due)
	long := store.ScheduledRotationID(strings.Repeat("a", 128), due)
	if short != "sch_1767225600123_inst-1" || !store.ValidID(long) || long == store.ScheduledRotationID(strings.Repeat("b", 128), due) {
		t.Fatalf("ids %q, %q", short, long)
	}
}

func eventTypes(t *testing.T, f *fixture, id string) string {
	t.Helper()
	events, err := f.st.Events(context.Background(), id, 100)
	if err != nil {
		t.Fatal(err)
	}
	kinds := make([]string, len(events))
	for i, e := range events {
		kinds[len(events)-1-i] = e.Type
	}
	return strings.Join(kinds, " ")
}
