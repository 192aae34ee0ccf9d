package store_test

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// memoryInstances is how many instances the memory benchmark registers:
// enough that per-key overheads average out, few enough to run in seconds.
const memoryInstances = 2000

// BenchmarkMemory prints what rekey keeps in Redis per registered
// instance (docs/benchmarks.md, "Redis memory"):
//
//   - at rest, just registered (V3, sealed OAuth tokens, a current
//     credential, in the due index);
//   - at rest holding the audit history of its last 10 rotations, every
//     superseded credential revoked;
//   - per rotation's finished records (the rotation hash and the revoked
//     credential hash), which expire after the rotation ttl;
//   - per waiting revoke: what goes when the revocation is done (its
//     index entries, the previous credential's record less the revoked
//     one's, and the real asynq revoke task the handlers schedule);
//   - per rotation, all it adds while its revoke waits.
//
// Figures are MEMORY USAGE (SAMPLES 0) summed over the keys of each kind,
// and the server's used_memory delta, divided by the instance count.
// memoryGrace is the grace of the benchmark's rotations: rekey's default.
const memoryGrace = 2 * time.Hour

func BenchmarkMemory(b *testing.B) {
	for _, form := range memoryCredentialForms {
		b.Run("credentials="+form.name, func(b *testing.B) {
			for range b.N {
				runMemory(b, form.id)
			}
		})
	}
}

// memoryCredentialForms are the forms of the credential ids the memory
// benchmark's rotations mint, k the rotation (0: the credential the
// instance was registered with): the demo issuer's, the PostgreSQL
// issuer's role names, and UUIDs, as many issuers mint them.
var memoryCredentialForms = []struct {
	name string
	id   func(instance string, k int) string
}{
	{"cred_hex16", func(instance string, k int) string { return fmt.Sprintf("cred_%s%08x", instance[:8], k) }},
	{"rekey_hex20", func(instance string, k int) string { return fmt.Sprintf("rekey_%s%012x", instance[:8], k) }},
	{"uuid", func(instance string, k int) string { return fmt.Sprintf("%s-%04x-4000-8000-%012x", instance[:8], k, k) }},
}

func runMemory(b *testing.B, credID func(instance string, k int) string) {
	ctx := context.Background()
	r := redistest.New(b)
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var clock sync.Mutex
	// Every reading of the clock moves it on 100 ms, so that a rotation's
	// events are apart in time (with 8 rotations running at once, most of a
	// second between two of one rotation), as they are when an issuer and
	// Heroku answer, and its history entry holds their offsets.
	st := store.New(r.Client, sealer, store.WithClock(func() time.Time {
		clock.Lock()
		defer clock.Unlock()
		now = now.Add(100 * time.Millisecond)
		return now
	}))
	advance := func(d time.Duration) {
		clock.Lock()
		now = now.Add(d)
		clock.Unlock()
	}
	ids := make([]string, memoryInstances)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) // Heroku's add-on ids are UUIDs
	}
	m := &memoryMeter{rdb: r.Client}
	base := m.measure(ctx, b)

	fleet(b, ids, func(id string) error { return registerForMemory(ctx, st, id, credID(id, 0)) })
	registered := m.measure(ctx, b)

	callsBefore := commandCalls(ctx, b, r.Client)
	for k := range 10 {
		prevs := make(map[string]string, len(ids))
		var mu sync.Mutex
		fleet(b, ids, func(id string) error {
			prev, err := rotateForMemory(ctx, st, id, credID(id, k+1))
			if err != nil {
				return err
			}
			mu.Lock()
			prevs[id] = prev.CredentialID
			mu.Unlock()
			return nil
		})
		// The superseded credentials are revoked once the grace is over,
		// as the revoke tasks would.
		advance(memoryGrace)
		fleet(b, ids, func(id string) error { return st.MarkRevoked(ctx, id, prevs[id]) })
		advance(90 * 24 * time.Hour)
	}
	calls := commandCalls(ctx, b, r.Client) - callsBefore
	rotated := m.measure(ctx, b)

	client := asynq.NewClientFromRedisClient(r.Client)
	fleet(b, ids, func(id string) error {
		prev, err := rotateForMemory(ctx, st, id, credID(id, 11))
		if err != nil {
			return err
		}
		t, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: id, CredentialID: prev.CredentialID}, prev.RevokeAt)
		if err != nil {
			return err
		}
		_, err = client.EnqueueContext(ctx, t)
		return err
	})
	waiting := m.measure(ctx, b)

	// The same revocations done: what stays is the revoked credential's
	// record until it expires; what went is what the waiting cost.
	fleet(b, ids, func(id string) error {
		prev, err := st.Previous(ctx, id)
		if err != nil || len(prev) != 1 {
			return fmt.Errorf("previous credentials %v: %w", prev, err)
		}
		return st.MarkRevoked(ctx, id, prev[0].CredentialID)
	})
	if _, err := asynq.NewInspectorFromRedisClient(r.Client).DeleteAllScheduledTasks(tasks.QueueRevoke); err != nil {
		b.Fatal(err)
	}
	revoked := m.measure(ctx, b)

	n := float64(memoryInstances)
	perInstance := func(s memorySample) float64 { return float64(s.perInstance) / n }
	expiring := func(s memorySample) float64 { return float64(s.expiring) / n }
	fmt.Printf("Redis memory, %d instances (MEMORY USAGE per key kind; used_memory delta in brackets)\n", memoryInstances)
	fmt.Printf("  registered, at rest:                  %6.0f B/instance  [%6.0f]\n", perInstance(registered.minus(base)),
		float64(registered.used-base.used)/n)
	fmt.Printf("  at rest with 10 rotations of history: %6.0f B/instance  [%6.0f]\n", perInstance(rotated.minus(base)),
		float64(rotated.used-base.used-(rotated.expiring-base.expiring))/n)
	fmt.Printf("  finished records per rotation, until they expire: %6.0f B\n", expiring(rotated.minus(registered))/10)
	wait := waiting.minus(revoked)
	fmt.Printf("  per waiting revoke (asynq task included): %6.0f B  [%6.0f]\n",
		float64(wait.perInstance+wait.expiring+wait.asynq)/n, float64(waiting.used-revoked.used)/n)
	fmt.Printf("  per rotation, everything it adds until its revocation (history, records, task): %6.0f B\n",
		float64(waiting.perInstance+waiting.expiring+waiting.asynq-rotated.perInstance-rotated.expiring-rotated.asynq)/n)
	fmt.Printf("  Redis commands per rotation and its revocation (store only, Lua inner calls included): %.1f\n",
		float64(calls)/n/10)
	fmt.Printf("  by kind, at rest with history, then waiting:\n")
	for _, kind := range sortedKinds(waiting.byKind) {
		fmt.Printf("    %-40s %8.1f B/instance  %8.1f\n", kind, float64(rotated.byKind[kind])/n, float64(waiting.byKind[kind])/n)
	}
	b.ReportMetric(perInstance(rotated.minus(base)), "B/instance")
	b.ReportMetric(float64(wait.perInstance+wait.expiring+wait.asynq)/n, "B/revoke")
}

// commandCalls is how many commands Redis ran, scripts' inner calls
// included (INFO commandstats).
func commandCalls(ctx context.Context, b *testing.B, rdb *redis.Client) int64 {
	b.Helper()
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, line := range strings.Split(info, "\n") {
		if _, rest, ok := strings.Cut(line, ":calls="); ok && strings.HasPrefix(line, "cmdstat_") &&
			!strings.HasPrefix(line, "cmdstat_info:") {
			var n int64
			fmt.Sscanf(rest, "%d", &n)
			total += n
		}
	}
	return total
}

// fleet runs fn for every id on a few goroutines and fails on the first error.
func fleet(b *testing.B, ids []string, fn func(id string) error) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(ids))
	work := make(chan string)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				if err := fn(id); err != nil {
					errs <- fmt.Errorf("%s: %w", id, err)
				}
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

func registerForMemory(ctx context.Context, st *store.Store, id, cred string) error {
	tok := &heroku.Token{AccessToken: secret.New("HRKU-" + id), RefreshToken: secret.New("HRKU-" + id + "-r"),
		ExpiresAt: time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)}
	return st.Register(ctx, store.Registration{ID: id, APIVersion: store.APIv3, ConfigVars: []string{"MYADDON_URL"},
		CurrentCredentialID: cred}, tok)
}

// rotateForMemory runs a rotation of id that mints cred, as the handlers
// do, and returns the credential it superseded.
func rotateForMemory(ctx context.Context, st *store.Store, id, cred string) (*store.Revocation, error) {
	rot := tasks.NewID("rot")
	if _, err := st.Claim(ctx, store.RotationRequest{InstanceID: id, RotationID: rot, Reason: store.ReasonScheduled}); err != nil {
		return nil, err
	}
	cfg := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:" + rot + "@db.example.com:5432/d1")}
	if err := st.SavePending(ctx, id, rot, cred, cfg); err != nil {
		return nil, err
	}
	if err := st.MarkPushAttempt(ctx, rot, store.PushTarget{InstanceID: id, ConfigVars: []string{"MYADDON_URL"}}); err != nil {
		return nil, err
	}
	p, err := st.PromotePushed(ctx, id, rot, cred, memoryGrace, "grace "+memoryGrace.String(), 1)
	if err != nil {
		return nil, err
	}
	if p.Previous == nil {
		return nil, fmt.Errorf("the rotation that minted %s superseded nothing", cred)
	}
	return p.Previous, nil
}

// memoryMeter sums MEMORY USAGE over the database's keys.
type memoryMeter struct{ rdb *redis.Client }

// memorySample is one measurement. perInstance sums the keys that stay
// (no expiry) and belong to one instance or index instances; expiring sums
// rekey's keys with an expiry; asynq sums asynq's keys; byKind splits the
// total by key kind (ids replaced by '*').
type memorySample struct {
	perInstance, expiring, asynq, used int64
	byKind                             map[string]int64
}

func (s memorySample) minus(o memorySample) memorySample {
	return memorySample{perInstance: s.perInstance - o.perInstance, expiring: s.expiring - o.expiring,
		asynq: s.asynq - o.asynq, used: s.used - o.used}
}

// fleetWide are keys whose size does not grow with the instances: the
// capped fleet audit stream and the fleet's counters and settings.
var fleetWide = map[string]bool{"rekey:events": true, "rekey:counters": true, "rekey:schedule": true, "rekey:fingerprint_key": true}

var idPart = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-4000-8000-[0-9a-f]{12}|rot_[0-9a-f]{24}|cred_[0-9a-f]{16}|rekey_[0-9a-f]{20}`)

func (m *memoryMeter) measure(ctx context.Context, b *testing.B) memorySample {
	b.Helper()
	s := memorySample{byKind: map[string]int64{}}
	iter := m.rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		size, err := m.rdb.MemoryUsage(ctx, key, 0).Result()
		if err != nil {
			b.Fatal(err)
		}
		ttl, err := m.rdb.PTTL(ctx, key).Result()
		if err != nil {
			b.Fatal(err)
		}
		kind := idPart.ReplaceAllString(key, "*")
		if strings.HasPrefix(key, "rekey:live:") { // the index of live configs, one set a first byte
			kind = "rekey:live:*"
		}
		s.byKind[kind] += size
		switch {
		case strings.HasPrefix(key, "asynq:"):
			s.asynq += size
		case fleetWide[key]:
		case ttl > 0:
			s.expiring += size
		default:
			s.perInstance += size
		}
	}
	if err := iter.Err(); err != nil {
		b.Fatal(err)
	}
	info, err := m.rdb.InfoMap(ctx, "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	fmt.Sscan(info["Memory"]["used_memory"], &s.used)
	return s
}

func sortedKinds(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
