package metrics_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// newStateStore is a store on a private Redis database, and its sealer.
func newStateStore(t *testing.T) (*redistest.Redis, *seal.Sealer, *store.Store) {
	t.Helper()
	r := redistest.New(t)
	sealer, err := seal.New(bytes.Repeat([]byte{1}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return r, sealer, store.New(r.Client, sealer)
}

// scrapeGauge returns the value of the series name (with its labels, if
// any, as /metrics prints them) on /metrics, and false when the scrape
// lacks it.
func scrapeGauge(t *testing.T, col http.Handler, name string) (float64, bool) {
	t.Helper()
	v, ok := scrape(t, col)[name]
	return v, ok
}

// scrape returns every sample /metrics serves, by series as it prints them:
// the name, then its labels in braces, if any.
func scrape(t *testing.T, col http.Handler) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	col.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics answered %d: %s", rec.Code, body)
	}
	samples := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// A label value may hold a space; the value is after the last.
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("%q is not a sample", line)
		}
		f, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		samples[line[:i]] = f
	}
	return samples
}

// previousSince makes instance id's credential "<id>-old" a previous one
// whose revoke time was ago, by a rotation promoted with a grace of a minute
// at a store clock set back.
func previousSince(t *testing.T, r *redistest.Redis, sealer *seal.Sealer, id string, ago time.Duration) store.Revocation {
	t.Helper()
	ctx := context.Background()
	then := time.Now().Add(-ago - time.Minute)
	st := store.New(r.Client, sealer, store.WithClock(func() time.Time { return then }))
	err := st.PutInstance(ctx, store.Registration{ID: id, APIVersion: store.APIv3,
		ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: id + "-old"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Claim(ctx, store.RotationRequest{InstanceID: id, RotationID: "rot-" + id}); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:s3cr3t-" + id + "@db/1")}
	if err := st.SavePending(ctx, id, "rot-"+id, id+"-new", cfg); err != nil {
		t.Fatal(err)
	}
	prev, err := st.Promote(ctx, id, "rot-"+id, id+"-new", time.Minute, "")
	if err != nil || prev == nil {
		t.Fatalf("promote %s: %+v, %v", id, prev, err)
	}
	return *prev
}

// TestOverdueLeavesHeldRevocationsOut: a revocation held while its
// credential is in use keeps its revoke-due entry at its revoke time, but
// it is not overdue: rekey_revoke_overdue_seconds reports the oldest due
// revocation that is not held (an SRE saw "rekey_revocations_held 1" beside
// an overdue of the hold's age while the hold lasted).
func TestOverdueLeavesHeldRevocationsOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, sealer, st := newStateStore(t)
	col := metrics.NewCollector(st, asynq.NewInspectorFromRedisClient(r.Client), zerolog.Nop()).Handler()
	overdue := func() float64 {
		t.Helper()
		v, ok := scrapeGauge(t, col, "rekey_revoke_overdue_seconds")
		if !ok {
			t.Fatal("/metrics lacks rekey_revoke_overdue_seconds")
		}
		return v
	}

	held := previousSince(t, r, sealer, "i-held", 2*time.Hour)
	if v := overdue(); v < 7200 || v > 7260 {
		t.Fatalf("rekey_revoke_overdue_seconds %v before the hold, want about 7200", v)
	}
	now := time.Now()
	err := st.SaveHold(ctx, store.Hold{InstanceID: held.InstanceID, CredentialID: held.CredentialID,
		RevokeAt: held.RevokeAt, HeldAt: held.RevokeAt, CapAt: held.RevokeAt.Add(24 * time.Hour),
		LastUsedAt: now, CheckedAt: now}, store.EventRevocationHeld, "was used")
	if err != nil {
		t.Fatal(err)
	}
	if v := overdue(); v != 0 {
		t.Errorf("rekey_revoke_overdue_seconds %v with the only due revocation held, want 0", v)
	}
	previousSince(t, r, sealer, "i-late", 10*time.Minute)
	if v := overdue(); v < 600 || v > 660 {
		t.Errorf("rekey_revoke_overdue_seconds %v, want about 600 (the unheld one), not the held one's 7200", v)
	}
	if _, err := st.ReleaseHold(ctx, held.InstanceID, held.CredentialID, "not used", time.Now()); err != nil {
		t.Fatal(err)
	}
	// Released, the held revocation is due from its release: if the issuer
	// then fails it, it is late from there, not by the whole hold.
	if v := overdue(); v < 600 || v > 660 {
		t.Errorf("rekey_revoke_overdue_seconds %v once the hold is released, want about 600 (the unheld one's)", v)
	}
}

// TestPacedBacklogIsExported: a fleet wave's rotations wait in rekey's
// paced holding set, not in asynq, so rekey_queue_tasks{queue="bulk"}
// reads 0 while they wait; rekey_pace_held_rotations and
// rekey_pace_oldest_held_seconds count them.
func TestPacedBacklogIsExported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, gauge := pacedGauges(t)
	if n, age := gauge("rekey_pace_held_rotations"), gauge("rekey_pace_oldest_held_seconds"); n != 0 || age != 0 {
		t.Errorf("no wave: held %v, oldest %v s; want 0 and 0", n, age)
	}
	client := pacing.NewClient(asynq.NewClientFromRedisClient(r.Client), r.Client, nil)
	// The sweep puts a rotation back at its place in line: an hour ago.
	if _, err := client.HoldAgain(ctx, "rot-first", time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	wave := make([]string, 300)
	for i := range wave {
		wave[i] = "rot-" + strconv.Itoa(i)
	}
	if err := client.HoldMany(ctx, wave); err != nil {
		t.Fatal(err)
	}
	if n := gauge("rekey_pace_held_rotations"); n != 301 {
		t.Errorf("rekey_pace_held_rotations %v, want 301", n)
	}
	if age := gauge("rekey_pace_oldest_held_seconds"); age < 3600 || age > 3660 {
		t.Errorf("rekey_pace_oldest_held_seconds %v, want about 3600", age)
	}
}

// pacedGauges returns a Redis and a reader of the gauges of a collector
// that exports the paced backlog (WithPacedBacklog) from it.
func pacedGauges(t *testing.T) (*redistest.Redis, func(name string) float64) {
	t.Helper()
	r, _, st := newStateStore(t)
	col := metrics.NewCollector(st, asynq.NewInspectorFromRedisClient(r.Client),
		zerolog.Nop(), metrics.WithPacedBacklog(r.Client)).Handler()
	return r, func(name string) float64 {
		t.Helper()
		v, ok := scrapeGauge(t, col, name)
		if !ok {
			t.Fatalf("/metrics lacks %s", name)
		}
		return v
	}
}

// A web process whose machine's clock is off reads the wave's outcomes,
// which workers date on Redis's clock, on Redis's clock too (WithClock).
func TestSlowedWaveIsReadOnTheClockGiven(t *testing.T) {
	t.Parallel()
	r, _, st := newStateStore(t)
	redisNow := func() time.Time { return time.Now().Add(-10 * time.Minute) }
	outcomes := pacing.NewOutcomes(r.Client, redisNow)
	for range pacing.FailingAfter {
		outcomes.Record(context.Background(), false, false)
	}
	for _, tt := range []struct {
		name string
		opts []metrics.CollectorOption
		want float64
	}{
		{"the machine's clock", nil, 0},
		{"Redis's clock", []metrics.CollectorOption{metrics.WithClock(redisNow)}, 1},
	} {
		col := metrics.NewCollector(st, asynq.NewInspectorFromRedisClient(r.Client), zerolog.Nop(),
			append([]metrics.CollectorOption{metrics.WithPacedBacklog(r.Client)}, tt.opts...)...).Handler()
		if v, ok := scrapeGauge(t, col, "rekey_pace_slowed"); !ok || v != tt.want {
			t.Errorf("on %s: rekey_pace_slowed %v (%v), want %v", tt.name, v, ok, tt.want)
		}
	}
}

// rekey_pace_slowed is 1 while the wave's runs fail and none rotates (the
// feeder releases a probe at a time), 0 before and once one rotates.
func TestSlowedWaveIsExported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, gauge := pacedGauges(t)
	slowed := func() float64 { t.Helper(); return gauge("rekey_pace_slowed") }
	if v := slowed(); v != 0 {
		t.Errorf("no wave: rekey_pace_slowed %v, want 0", v)
	}
	outcomes := pacing.NewOutcomes(r.Client, nil)
	for range pacing.FailingAfter {
		outcomes.Record(ctx, false, false)
	}
	if v := slowed(); v != 1 {
		t.Errorf("after %d failed runs: rekey_pace_slowed %v, want 1", pacing.FailingAfter, v)
	}
	outcomes.Record(ctx, true, false)
	if v := slowed(); v != 0 {
		t.Errorf("after a rotation: rekey_pace_slowed %v, want 0", v)
	}
}

// rekey_settings_variants counts the different values of a shared setting
// the running processes announce: 1 while they agree, 2 once one runs with
// another REKEY_HEROKU_RATE or another issuer, and absent when no process
// announces (nothing runs).
func TestSettingsVariantsAreExported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, _, st := newStateStore(t)
	col := metrics.NewCollector(st, asynq.NewInspectorFromRedisClient(r.Client), zerolog.Nop()).Handler()
	if _, ok := scrapeGauge(t, col, "rekey_settings_variants"); ok {
		t.Error("rekey_settings_variants served while no process announces its settings")
	}
	const same = "REKEY_HEROKU_RATE=4000 REKEY_RATE_SCOPE=account REKEY_GRACE=2h0m0s REKEY_PRIVATE_SPACE_GRACE=4h0m0s"
	for _, p := range []string{"web.1", "worker.1", "worker.2"} {
		if err := st.AnnounceSharedSettings(ctx, p, same, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if v, ok := scrapeGauge(t, col, "rekey_settings_variants"); !ok || v != 1 {
		t.Errorf("three processes alike: rekey_settings_variants %v (%v), want 1", v, ok)
	}
	if err := st.AnnounceSharedSettings(ctx, "worker.3", strings.Replace(same, "4000", "40000", 1), time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, ok := scrapeGauge(t, col, "rekey_settings_variants"); !ok || v != 2 {
		t.Errorf("one process with another rate: rekey_settings_variants %v (%v), want 2", v, ok)
	}
	if err := st.WithdrawSharedSettings(ctx, "worker.3"); err != nil {
		t.Fatal(err)
	}
	// The issuer is compared among the processes that announce one.
	for _, p := range []string{"worker.1", "worker.2"} {
		if err := st.AnnounceSharedSettings(ctx, p, same+" REKEY_ISSUER=http:issuer.example@1a2b3c4d", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if v, ok := scrapeGauge(t, col, "rekey_settings_variants"); !ok || v != 1 {
		t.Errorf("workers with one issuer beside a web process without: rekey_settings_variants %v (%v), want 1", v, ok)
	}
	if err := st.AnnounceSharedSettings(ctx, "worker.2", same+" REKEY_ISSUER=http:localhost:5613@9f8e7d6c", time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, ok := scrapeGauge(t, col, "rekey_settings_variants"); !ok || v != 2 {
		t.Errorf("a worker with another issuer: rekey_settings_variants %v (%v), want 2", v, ok)
	}
}

// TestDataStartChangesWhenRedisLosesRekeysData: an operator alerting from
// /metrics alone learns that Redis came back without rekey's data (its
// instances and the revocations it owed forgotten) from
// rekey_redis_data_start_time_seconds changing, as process_start_time_seconds
// changes at a restart. A mark without a time, which another writer may
// have left, is not shown at all.
func TestDataStartChangesWhenRedisLosesRekeysData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, _, st := newStateStore(t)
	col := metrics.NewCollector(st, asynq.NewInspectorFromRedisClient(r.Client), zerolog.Nop()).Handler()
	const name = "rekey_redis_data_start_time_seconds"
	if v, ok := scrapeGauge(t, col, name); ok {
		t.Fatalf("%s %v before any process marked Redis, want none", name, v)
	}
	first := time.Date(2026, 11, 2, 3, 4, 5, 0, time.UTC)
	for _, at := range []time.Time{first, first.Add(time.Hour)} { // the second finds the first's mark
		if _, err := st.Epoch(ctx, store.NewEpochMark(at)); err != nil {
			t.Fatal(err)
		}
	}
	if v, ok := scrapeGauge(t, col, name); !ok || v != float64(first.Unix()) {
		t.Fatalf("%s %v (present %v), want %d", name, v, ok, first.Unix())
	}

	if err := r.Client.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	later := first.Add(48 * time.Hour)
	if _, err := st.Epoch(ctx, store.NewEpochMark(later)); err != nil {
		t.Fatal(err)
	}
	if v, _ := scrapeGauge(t, col, name); v != float64(later.Unix()) {
		t.Fatalf("%s %v after Redis lost rekey's data, want %d", name, v, later.Unix())
	}

	if err := r.Client.Set(ctx, "rekey:epoch", "1700000000/not-a-time", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, ok := scrapeGauge(t, col, name); ok {
		t.Errorf("%s %v from a mark without a time, want none", name, v)
	}
}
