package fleet_test

import (
	"context"
	"errors"
	"flag"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// With a pacing client, a bulk request's rotations are held for the feeder
// after their claims, with no task until the feeder builds it from the
// claim (HeldTasks); a cancelled batch's held rotations are recorded
// cancelled and leave the held set, so they spend no budget.
func TestBulkRotationsAreHeldAndCancelRemovesThem(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	ids := f.register(t, 20)
	p := fleet.NewProducer(f.st, pacing.NewClient(f.queue, f.r.Client, nil))
	res, err := p.Rotate(ctx, fleet.Request{InstanceIDs: ids, Reason: "test", Queue: tasks.QueueBulk, Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(f.r.Client)
	if qs, err := insp.Queues(); err != nil || slices.Contains(qs, tasks.QueueBulk) {
		t.Errorf("queues %v (%v): want no bulk task before the feeder releases one", qs, err)
	}
	if n, err := pacing.Held(ctx, f.r.Client); err != nil || n != 20 {
		t.Errorf("%d rotations held (%v), want 20", n, err)
	}
	src := &fleet.HeldTasks{Store: f.st}
	for _, it := range res.Items {
		task, err := src.RotateTask(ctx, it.RotationID)
		if err != nil || task == nil {
			t.Fatalf("task of held rotation %s: %v, %v", it.RotationID, task, err)
		}
		pl, err := tasks.ParseRotate(task)
		if err != nil || pl.InstanceID != it.InstanceID || pl.RotationID != it.RotationID || pl.BatchID != res.BatchID ||
			pl.Reason != "test" || time.Duration(pl.Grace) != time.Hour || pl.RequestedAt.IsZero() {
			t.Errorf("task of held rotation %s: %+v, %v; want the claim's request", it.RotationID, pl, err)
		}
	}
	// asynq does not keep a released wave's tasks once they finished.
	task, err := src.RotateTask(ctx, res.Items[0].RotationID)
	if err != nil {
		t.Fatal(err)
	}
	info, err := f.queue.Enqueue(task)
	if err != nil || info.Queue != tasks.QueueBulk || info.Retention != 0 {
		t.Errorf("released task: %+v, %v; want on the bulk queue, not retained", info, err)
	}
	if err := insp.DeleteTask(tasks.QueueBulk, info.ID); err != nil {
		t.Fatal(err)
	}
	// A single rotation is interactive and never held: it joins the wave's
	// rotation of its instance and moves it to the interactive queue.
	one, err := p.Rotate(ctx, fleet.Request{InstanceIDs: []string{instanceID(0)}, Reason: "test"})
	if err != nil || one.Joined != 1 {
		t.Fatalf("single rotation of a rotating instance: %+v, %v; want it joined", one, err)
	}
	removed, err := fleet.Cancel(ctx, f.st, insp, res.BatchID)
	if err != nil {
		t.Fatal(err)
	}
	if removed != 19 {
		t.Errorf("cancel removed %d held rotations, want 19 (the moved one is the single request's)", removed)
	}
	// Their ids leave the held set: the feeder would take a token for each,
	// and the next wave wait behind them. An id left behind is dropped with
	// no token: its rotation is cancelled, or moved, and waits for no task
	// of the feeder's.
	if n, err := pacing.Held(ctx, f.r.Client); err != nil || n > 1 {
		t.Errorf("%d rotations still held after cancel (%v), want at most the moved one", n, err)
	}
	for _, it := range res.Items {
		if task, err := src.RotateTask(ctx, it.RotationID); err != nil || task != nil {
			t.Errorf("cancelled or moved rotation %s: task %v, %v; want none", it.RotationID, task, err)
		}
	}
	if rot, err := f.st.Rotation(ctx, res.Items[0].RotationID); err != nil || rot.State != store.RotationRequested ||
		rot.Queue != tasks.QueueInteractive {
		t.Errorf("moved rotation after the cancel: %+v, %v; want it requested on the interactive queue", rot, err)
	}
}

var pacedFleet = flag.Int("paced-fleet", 100_000, "BenchmarkProducerRotatePaced: how many instances to rotate")

// BenchmarkProducerRotatePaced requests a rotation of 100,000 instances on
// the bulk queue through the pacing client, as `rekey rotate --all` does:
// every claim, then every rotation held for the feeder. It also reports
// what the held wave costs Redis per rotation (used_memory growth: the
// claims, their history entries and the held set).
func BenchmarkProducerRotatePaced(b *testing.B) {
	n := *pacedFleet
	f := newFixture(b)
	ctx := context.Background()
	p := fleet.NewProducer(f.st, pacing.NewClient(f.queue, f.r.Client, nil))
	for range b.N {
		b.StopTimer()
		if err := f.r.Client.FlushDB(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		ids := f.register(b, n)
		before := usedMemory(b, f.r.Client)
		b.StartTimer()
		start := time.Now()
		res, err := p.Rotate(ctx, fleet.Request{InstanceIDs: ids, Reason: "bench", Queue: tasks.QueueBulk})
		if err != nil {
			b.Fatal(err)
		}
		if res.Enqueued != n {
			b.Fatalf("enqueued %d of %d", res.Enqueued, n)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/request")
		b.StopTimer()
		b.ReportMetric(float64(usedMemory(b, f.r.Client)-before)/float64(n), "B/held-rotation")
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rotations/s")
}

// usedMemory reads Redis' used_memory.
func usedMemory(tb testing.TB, rdb *redis.Client) int64 {
	tb.Helper()
	info, err := rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return n
		}
	}
	tb.Fatal("INFO memory without used_memory")
	return 0
}

// A rotation of a cancelled batch held after the cancel (the wave's
// producer still running, or the sweep holding it again) waits for no
// task: it is recorded cancelled and dropped, with no token. A record that
// cannot make a bulk task is unusable, and a task carries the held id
// whatever the record says.
func TestHeldTasksDropsCancelledAndRefusesUnusableRotations(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	ids := f.register(t, 3)
	pc := pacing.NewClient(f.queue, f.r.Client, nil)
	res, err := fleet.NewProducer(f.st, pc).Rotate(ctx, fleet.Request{InstanceIDs: ids[:1], Reason: "test", Queue: tasks.QueueBulk})
	if err != nil {
		t.Fatal(err)
	}
	src := &fleet.HeldTasks{Store: f.st}
	if task, err := src.RotateTask(ctx, res.Items[0].RotationID); err != nil || task == nil {
		t.Fatalf("before the cancel: %v, %v; want a task", task, err)
	}
	if _, err := fleet.Cancel(ctx, f.st, asynq.NewInspectorFromRedisClient(f.r.Client), res.BatchID); err != nil {
		t.Fatal(err)
	}
	late := tasks.NewID("rot")
	if _, err := f.st.ClaimBrief(ctx, store.RotationRequest{InstanceID: ids[1], RotationID: late, BatchID: res.BatchID,
		Queue: tasks.QueueBulk}); err != nil {
		t.Fatal(err)
	}
	if err := pc.Hold(ctx, late); err != nil {
		t.Fatal(err)
	}
	// The batch was seen live a moment ago; the cancel shows once that look is old.
	time.Sleep(2100 * time.Millisecond)
	if task, err := src.RotateTask(ctx, late); err != nil || task != nil {
		t.Errorf("held after the cancel: %v, %v; want no task", task, err)
	}
	if rot, err := f.st.Rotation(ctx, late); err != nil || rot.State != store.RotationCancelled {
		t.Errorf("held after the cancel: %+v, %v; want it recorded cancelled", rot, err)
	}

	own := tasks.NewID("rot")
	if _, err := f.st.Claim(ctx, store.RotationRequest{InstanceID: ids[2], RotationID: own, Queue: tasks.QueueBulk}); err != nil {
		t.Fatal(err)
	}
	if err := f.r.Client.HDel(ctx, "rekey:rotation:"+own, "id").Err(); err != nil {
		t.Fatal(err)
	}
	task, err := src.RotateTask(ctx, own)
	if err != nil {
		t.Fatal(err)
	}
	if pl, err := tasks.ParseRotate(task); err != nil || pl.RotationID != own {
		t.Errorf("task of held %s: %+v, %v; want its id", own, pl, err)
	}
	if err := f.r.Client.HSet(ctx, "rekey:rotation:odd", "state", "requested", "queue", "bulk").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.RotateTask(ctx, "odd"); !errors.Is(err, pacing.ErrUnusable) {
		t.Errorf("a rotation without an instance: %v, want ErrUnusable", err)
	}
}

// zaddHook counts the ZADDs a client sends and fails them when told.
type zaddHook struct {
	sent atomic.Int64
	fail bool
}

func (h *zaddHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *zaddHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if strings.EqualFold(cmd.Name(), "zadd") {
			h.sent.Add(1)
			if h.fail {
				return errors.New("connection reset")
			}
		}
		return next(ctx, cmd)
	}
}
func (h *zaddHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A bulk request holds each chunk of claims with one ZADD. When the hold
// fails, every rotation of the chunk is reported with the error and stays
// claimed, in flight, for the reconcile sweep to hold again.
func TestBulkRotationsAreHeldAChunkAtATime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rotate := func(f *fixture, ids []string, fail bool) (fleet.Result, *zaddHook, error) {
		hook := &zaddHook{fail: fail}
		held := redis.NewClient(&redis.Options{Addr: f.r.Addr, DB: f.r.DB})
		t.Cleanup(func() { _ = held.Close() })
		held.AddHook(hook)
		res, err := fleet.NewProducer(f.st, pacing.NewClient(f.queue, held, nil)).Rotate(ctx,
			fleet.Request{InstanceIDs: ids, Reason: "test", Queue: tasks.QueueBulk})
		return res, hook, err
	}

	f := newFixture(t)
	ids := f.register(t, 250)
	res, hook, err := rotate(f, ids, false)
	n, herr := pacing.Held(ctx, f.r.Client)
	if err != nil || res.Enqueued != 250 || herr != nil || n != 250 || hook.sent.Load() != 3 {
		t.Errorf("Rotate: %d enqueued, %v; %d held (%v) with %d ZADDs; want 250 held with 3",
			res.Enqueued, err, n, herr, hook.sent.Load())
	}

	f = newFixture(t)
	ids = f.register(t, 150)
	_, _, err = rotate(f, ids, true)
	if err == nil || !strings.Contains(err.Error(), "hold 100 rotations: connection reset") ||
		!strings.Contains(err.Error(), "hold 50 rotations: connection reset") {
		t.Errorf("Rotate with every ZADD failing: %v; want each chunk's hold error", err)
	}
	if n, err := pacing.Held(ctx, f.r.Client); err != nil || n != 0 {
		t.Errorf("%d held (%v) after every hold failed", n, err)
	}
	if res, _, err = rotate(f, ids, false); err != nil || res.Joined != 150 {
		t.Errorf("Rotate again: %d joined, %v; want the 150 rotations still in flight", res.Joined, err)
	}
}

// A wave's V1 instances, whose rotation costs Heroku two calls (the push
// and the read-back that confirms it), are held before the others, so the
// feeder releases them early and the wave ends on rotations of one call
// each; the result still lists the items in the request's order.
func TestAWavesTwoCallRotationsAreHeldFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	ids := f.register(t, 250)
	v1 := map[string]bool{}
	for i := 6; i < len(ids); i += 7 { // spread through the request, the last among them
		err := f.st.PutInstance(ctx, store.Registration{ID: ids[i], APIVersion: store.APIv1,
			HerokuID: "app" + strconv.Itoa(i) + "@heroku.com", ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-0"})
		if err != nil {
			t.Fatal(err)
		}
		v1[ids[i]] = true
	}
	p := fleet.NewProducer(f.st, pacing.NewClient(f.queue, f.r.Client, nil))
	res, err := p.Rotate(ctx, fleet.Request{InstanceIDs: ids, Reason: "test", Queue: tasks.QueueBulk})
	if err != nil {
		t.Fatal(err)
	}
	instanceOf := map[string]string{}
	for i, it := range res.Items {
		if it.InstanceID != ids[i] || it.Status != "enqueued" {
			t.Fatalf("item %d: %+v; want %s enqueued, in the request's order", i, it, ids[i])
		}
		instanceOf[it.RotationID] = it.InstanceID
	}
	held, err := f.r.Client.ZRange(ctx, "rekey:pace:held", 0, -1).Result()
	if err != nil || len(held) != len(ids) {
		t.Fatalf("%d rotations held (%v), want %d", len(held), err, len(ids))
	}
	for k, rot := range held {
		if want := k < len(v1); v1[instanceOf[rot]] != want {
			t.Fatalf("held rotation %d of %d is of %s (V1 %t); want the %d V1 instances' first",
				k+1, len(held), instanceOf[rot], v1[instanceOf[rot]], len(v1))
		}
	}
}
