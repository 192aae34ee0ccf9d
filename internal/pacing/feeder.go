package pacing

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/tasks"
)

// Budget is the shared Heroku budget (*ratelimit.Limiter).
type Budget interface {
	WaitN(ctx context.Context, addonID string, n int) error
}

// Tasks builds the rotate task of a held rotation when the feeder releases
// it (fleet.HeldTasks, from what the rotation's claim recorded).
type Tasks interface {
	// RotateTask returns the task of held rotation id, or nil when the
	// rotation waits for none any more (it finished, was cancelled, or
	// expired): the feeder drops its id without a token. An error wrapping
	// ErrUnusable says the rotation's record cannot make a task: the
	// feeder drops it too, with a warning; any other error (Redis) holds
	// the line until the next step.
	RotateTask(ctx context.Context, rotationID string) (*asynq.Task, error)
}

// ErrUnusable marks a held rotation whose record cannot make a rotate task.
var ErrUnusable = errors.New("held rotation cannot be released")

// Enqueuer enqueues released tasks (*asynq.Client).
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Queues is what the feeder needs of asynq's inspector (*asynq.Inspector).
type Queues interface {
	RunTask(queue, id string) error
	GetQueueInfo(queue string) (*asynq.QueueInfo, error)
	Queues() ([]string, error)
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
	ListPendingTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListRetryTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
}

// FeederParams build a Feeder.
type FeederParams struct {
	// Redis holds the held set, the lease and the paid marks. Required.
	Redis redis.UniversalClient
	// Tasks builds the tasks of held rotations. Required.
	Tasks Tasks
	// Client enqueues them. Required.
	Client Enqueuer
	// Queues looks at the bulk queue, and releases a task an earlier
	// version held (HoldFor). Required.
	Queues Queues
	// Budget is the account's shared budget: the feeder takes a
	// background token per release, Batch at a time, and marks each paid. nil releases without
	// tokens, for per-instance budgets (REKEY_RATE_SCOPE=instance), where
	// a wave's calls do not compete and each push waits on its own budget.
	Budget Budget
	// Batch is how many rotations the feeder releases together, on tokens
	// taken in one request to the budget; 0 means 2, and never more than the
	// budget's background burst. Pairs halve what the feeder's tokens and
	// look at the held set cost Redis; once fewer than lastOnes are held
	// (a wave's last eight or nine) they go one at a time.
	Batch int
	// MaxPending stops releases while this many bulk tasks are runnable
	// and not yet picked up (the workers are busy or gone); 0 means 16, or
	// backlogFor of the budget when that is more.
	MaxPending int
	// Idle is how often a feeder with nothing to do looks again, and how
	// often a feeder that does not hold the lease tries to take it (five
	// times that); 0 means half a second.
	Idle time.Duration
	// QueueCheck is how often the feeder looks whether the bulk queue is
	// backed up; 0 means DefaultQueueCheck.
	QueueCheck time.Duration
	// PauseCheck is how often it looks whether the bulk queue is paused
	// (the circuit breaker, an operator); 0 means DefaultPauseCheck. A
	// pause it has not seen yet costs at most MaxPending tokens: the tasks
	// released into the paused queue back it up. While the queue is paused
	// it looks every PausedCheck at most, so that a wave resumes within
	// seconds of the unpause.
	PauseCheck time.Duration
	// Now is the clock the wave's outcomes are dated by (Outcomes), shared
	// by every process: Redis's (internal/redisclock). nil means time.Now.
	Now func() time.Time
	// Logger receives the feeder's rare warnings.
	Logger zerolog.Logger
}

// Feeder releases held bulk rotations at the budget's pace. Every worker
// process runs one; the one holding the lease in Redis feeds, the others
// stand by and take over when it stops: at once after a SIGTERM, within
// about 7.5 s after a SIGKILL.
type Feeder struct {
	p  FeederParams
	id string
	// leased is when this feeder last asked for the renewal of its lease
	// that Redis granted, by now.
	leased time.Time
	now    func() time.Time
	// queueChecked and blocked are the last look at the bulk queue: paused
	// or backed up; pauseChecked and paused the last look at its pause;
	// sinceCheck counts the releases since the last look.
	queueChecked, pauseChecked time.Time
	blocked, paused            bool
	sinceCheck                 int
	// statsFailing is set while asynq's queue stats fail, so that the
	// warning is logged once.
	statsFailing bool
	// failingChecked and slowed are the last look at the wave's outcomes
	// (failing), releasedChecked the releases then; probed is when the
	// slowed wave last released a rotation.
	failingChecked, probed time.Time
	slowed                 bool
	releasedChecked        int64
	// forward asks the next step to bring the rotations an outage left
	// waiting out asynq's back-off forward (bringForward): a run rotated
	// since the outage's mark was set (outageKey). A step that finds the
	// lease lost forgets it: the mark stays for the feeder that leads.
	// broughtForward is when this feeder last brought an outage's
	// rotations forward (forwardEvery).
	forward        bool
	broughtForward time.Time

	released, dropped, unused atomic.Int64
}

// DefaultQueueCheck and DefaultPauseCheck are FeederParams.QueueCheck's and
// PauseCheck's defaults. Whether the queue is backed up is one page of one
// pending task (about four Redis commands); whether it is paused needs
// asynq's queue stats, about 60 commands with their MEMORY USAGE samples:
// every 10 s that was four commands a paced rotation (docs/benchmarks.md).
const (
	DefaultQueueCheck = 10 * time.Second
	DefaultPauseCheck = time.Minute
)

// PausedCheck is how often a feeder that saw the bulk queue paused looks
// whether it still is. Nothing runs on the bulk queue meanwhile, so the 30
// or so commands a second it costs are spent only while a wave waits; a
// minute between looks left up to a minute of budget unused after every
// unpause (the circuit breaker closing, an operator resuming a wave).
const PausedCheck = 2 * time.Second

// backlogFor is how much of the budget may wait in the bulk queue before
// the feeder stops: more than a worker's look for new tasks (half a second)
// lets pile up between two looks at a fast budget, so that a block means
// the workers are busy or gone, not asleep between polls.
const backlogFor = 2 * time.Second

// NewFeeder returns a Feeder. It does nothing until Run.
func NewFeeder(p FeederParams) *Feeder {
	if p.MaxPending <= 0 {
		p.MaxPending = 16
		if b, ok := p.Budget.(interface{ Interval() time.Duration }); ok && b.Interval() > 0 {
			p.MaxPending = max(p.MaxPending, int(backlogFor/b.Interval()))
		}
	}
	if p.Batch <= 0 {
		p.Batch = 2
	}
	if b, ok := p.Budget.(interface{ Burst(ratelimit.Class) int }); ok {
		p.Batch = max(1, min(p.Batch, b.Burst(ratelimit.Background)))
	}
	if p.Idle <= 0 {
		p.Idle = 500 * time.Millisecond
	}
	if p.QueueCheck <= 0 {
		p.QueueCheck = DefaultQueueCheck
	}
	if p.PauseCheck <= 0 {
		p.PauseCheck = DefaultPauseCheck
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	return &Feeder{p: p, id: tasks.NewID("feeder"), now: time.Now}
}

// Stats are a feeder's counters since NewFeeder.
type Stats struct {
	// Released counts tasks made runnable.
	Released int64
	// Dropped counts held ids whose rotation waits for no task any more
	// (finished, cancelled, expired) or whose task exists already (released
	// by a feeder that died before it took the id out, run by an operator).
	Dropped int64
	// Unused counts tokens taken with nothing left to release.
	Unused int64
}

// Stats returns the feeder's counters.
func (f *Feeder) Stats() Stats {
	return Stats{Released: f.released.Load(), Dropped: f.dropped.Load(), Unused: f.unused.Load()}
}

// Run feeds until ctx ends, then gives up its lease.
func (f *Feeder) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		timer.Reset(f.step(ctx))
		select {
		case <-ctx.Done():
			f.resign()
			return
		case <-timer.C:
		}
	}
}

// step releases at most Batch held rotations and returns how long to wait
// before the next step.
func (f *Feeder) step(ctx context.Context) time.Duration {
	if !f.lead(ctx) {
		f.forward = false
		return standbyEvery * f.p.Idle
	}
	// The oldest held ids, and their tasks, read before the tokens are
	// taken: they stay held until their tasks are enqueued. Fewer than
	// lastOnes held are the end of a wave, released one at a time.
	if f.forward && f.now().Sub(f.broughtForward) >= forwardEvery {
		f.bringForward(ctx)
	}
	ids, err := f.p.Redis.ZRange(ctx, heldKey, 0, int64(max(f.p.Batch, lastOnes)-1)).Result()
	if err == nil && len(ids) == 0 {
		// Every rotation of a failing wave may wait out its back-off,
		// none held (released whole before its failures showed, or
		// probed one by one): its outage, and the run that ends it, are
		// still looked for.
		f.failing(ctx)
	}
	if err != nil || len(ids) == 0 || f.queueBlocked() {
		return f.p.Idle
	}
	slowed := f.failing(ctx)
	if wait := ProbeEvery - f.now().Sub(f.probed); slowed && wait > 0 {
		return min(wait, f.p.Idle)
	}
	if slowed || len(ids) < lastOnes {
		ids = ids[:1]
	} else {
		ids = ids[:min(len(ids), f.p.Batch)]
	}
	ready, err := f.tasks(ctx, ids)
	if err != nil {
		f.p.Logger.Warn().Err(err).Msg("pacing_read_failed")
		return f.p.Idle
	}
	if len(ready) == 0 {
		return 0 // all dropped: the next ones at once
	}
	if f.p.Budget != nil {
		err := f.waitLeading(ctx, len(ready))
		if d, ok := ratelimit.IsDelay(err); ok {
			return d // a pause (429, low water) longer than MaxWait
		}
		if err != nil {
			return f.p.Idle // a Redis error, or the lease lost in the wait
		}
		// The lease may have been lost as the tokens came (a renewal that
		// failed): only the feeder that still leads releases these ids.
		if !f.lead(ctx) {
			f.unused.Add(int64(len(ready)))
			return standbyEvery * f.p.Idle
		}
	}
	released := f.released.Load()
	f.release(ctx, ready)
	// Only a rotation released is a probe: one dropped (its task exists
	// already) or that could not be enqueued leaves the next to probe.
	if slowed && f.released.Load() > released {
		f.probed = f.now()
	}
	return 0
}

// failing reports whether the wave's rotations are failing, with none
// rotating (WaveHealth.Failing), by a look at most FailingCheck old and
// failingReleases releases old, and says so when the wave slows down and
// when it goes on. A look that fails keeps the last.
//
// A look that finds the wave failing marks the outage in Redis (outageKey)
// unless it is marked; a look after it that finds a run rotated and the
// wave no longer failing asks the next step for bringForward, which takes
// the mark. The mark outlives the lease and stays until its rotations are
// brought forward: a feeder that leads after the outage (a standby taking
// over from one killed in it, or from one that lost the lease between its
// look and the next step) still brings them forward.
func (f *Feeder) failing(ctx context.Context) bool {
	now, released := f.now(), f.released.Load()
	if now.Sub(f.failingChecked) < FailingCheck && released-f.releasedChecked < failingReleases {
		return f.slowed
	}
	f.failingChecked, f.releasedChecked = now, released
	h, err := ReadWaveHealth(ctx, f.p.Redis, f.p.Now())
	if err != nil {
		return f.slowed
	}
	failing := h.Failing()
	switch {
	case failing && !f.slowed:
		f.p.Logger.Warn().Int64("failed", h.Failed).Int64("rotated", h.Rotated).Int64("failed_in_a_row", h.Streak).
			Dur("window", FailingWindow).Dur("probe_every", ProbeEvery).Msg("pacing_wave_slowed")
	case !failing && f.slowed:
		f.p.Logger.Info().Int64("failed", h.Failed).Int64("rotated", h.Rotated).Msg("pacing_wave_resumed")
	}
	f.slowed = failing
	switch {
	case failing && !h.Outage && f.leaseLeft():
		// A feeder that stalled after its look past what was left of its
		// lease marks nothing: the feeder leading meanwhile may have seen
		// the outage end, and the mark would stay for a later run that
		// rotates (a stall inside the SET itself is not seen).
		_ = f.p.Redis.Set(ctx, outageKey, "1", outageKept).Err()
	case h.Outage && !failing && h.Rotated > 0:
		f.forward = true
	}
	return failing
}

// forwardPages and forwardPage bound what bringForward reads of the bulk
// queue's retry set: 10,000 tasks at most, a page of asynq's at a time.
// forwardEvery is how long a feeder waits between two: a partial outage
// on a quiet fleet (an issuer shard down, a trickle of scheduled
// rotations) may mark an outage and see it end every minute or two, and
// each read of 10,000 tasks costs Redis tens of thousands of commands.
// The mark waits meanwhile.
const (
	forwardPages = 10
	forwardPage  = 1000
	forwardEvery = 5 * time.Minute
)

// bringForward holds again, first in line, the rotations of the bulk queue
// whose tasks wait out asynq's back-off after failures (FastRetries or
// more) and would run later than ProbeEvery from now. It runs once a run
// rotates after the wave was slowed: those rotations failed in the outage
// that slowed it (released before it slowed, or as its probes), and their
// back-off, minutes to hours by then, would make them the wave's tail
// while the budget sat idle. Released at the budget's pace like the rest,
// with a paid token, their tasks run at once (enqueue: RunTask); a task
// that ran meanwhile leaves the held set unreleased. A run so brought
// forward counts as one of the task's retries: a rotation is brought
// forward once in forwardedFor at most (forwardOnce).
//
// It takes the outage's mark (outageKey) first: of feeders that both saw
// the outage end (one that lost the lease in between), only the one whose
// DEL removed it brings forward. A read of the retry set or a hold that
// fails marks the outage again, so that the next look that finds a run
// rotated tries again rather than leaving them to hours of back-off.
func (f *Feeder) bringForward(ctx context.Context) {
	f.forward = false
	if n, err := f.p.Redis.Del(ctx, outageKey).Result(); err != nil || n == 0 {
		return
	}
	if !f.holdRetrying(ctx) {
		_ = f.p.Redis.SetNX(ctx, outageKey, "1", outageKept).Err()
		return
	}
	f.broughtForward = f.now()
}

// holdRetrying holds again the rotations bringForward brings forward, and
// reports whether it read the whole retry set and held them all.
func (f *Feeder) holdRetrying(ctx context.Context) bool {
	after, now := f.now().Add(ProbeEvery), f.p.Now()
	whole := true
	var zs []redis.Z
	for page := 1; page <= forwardPages; page++ {
		infos, err := f.p.Queues.ListRetryTasks(Queue, asynq.Page(page), asynq.PageSize(forwardPage))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			break // no bulk task yet: none waits out a back-off
		}
		if err != nil {
			f.p.Logger.Warn().Err(err).Msg("pacing_read_failed")
			whole = false
			break
		}
		for _, info := range infos {
			if info.Type != tasks.TypeRotate || info.Retried < retry.FastRetries || info.NextProcessAt.Before(after) {
				continue
			}
			// Only rekey's own task of the rotation: another app's rotate
			// task under an id of its choosing is left to asynq (the
			// feeder would enqueue a second task, under rekey's id).
			p, err := tasks.ParseRotate(asynq.NewTask(info.Type, info.Payload))
			if err != nil || info.ID != tasks.RotateTaskID(p.RotationID) {
				continue
			}
			// In line at its request time, which its producer dated: one
			// without it (a task built by hand) or ahead of Redis's clock
			// goes in line now, not before every wave or behind them.
			at := p.RequestedAt
			if at.IsZero() || at.After(now) {
				at = now
			}
			zs = append(zs, redis.Z{Score: float64(at.UnixMilli()), Member: p.RotationID})
		}
		if len(infos) < forwardPage {
			break
		}
	}
	zs, err := f.forwardOnce(ctx, zs)
	if err != nil {
		f.p.Logger.Warn().Err(err).Msg("pacing_read_failed")
		return false
	}
	if len(zs) == 0 {
		return whole
	}
	if err := f.p.Redis.ZAddNX(ctx, heldKey, zs...).Err(); err != nil {
		f.p.Logger.Warn().Err(err).Msg("pacing_read_failed")
		// Not held: their marks would keep the next try from holding them.
		keys := make([]string, len(zs))
		for i, z := range zs {
			keys[i] = forwardedKey + z.Member.(string)
		}
		_ = f.p.Redis.Del(ctx, keys...).Err()
		return false
	}
	f.p.Logger.Info().Int("rotations", len(zs)).Msg("pacing_retries_brought_forward")
	return whole
}

// forwardedFor is how long a rotation bringForward held again is not held
// again by it: longer than a rotate task's retries last (about 4.5 hours of
// asynq's back-off).
const forwardedFor = 6 * time.Hour

// forwardOnce keeps, of the rotations zs, those bringForward did not hold
// again within forwardedFor, and marks them (forwardedKey). An outage that
// lets a run through now and then (an issuer flapping, a partial outage)
// slows and resumes a wave again and again: brought forward at every
// resume, each rotation would spend one of its retries each time, and the
// back-off meant to outlast hours of outage would run out within minutes.
func (f *Feeder) forwardOnce(ctx context.Context, zs []redis.Z) ([]redis.Z, error) {
	if len(zs) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.BoolCmd, len(zs))
	_, err := f.p.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, z := range zs {
			cmds[i] = p.SetNX(ctx, forwardedKey+z.Member.(string), "1", forwardedFor)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []redis.Z
	for i, c := range cmds {
		if c.Val() {
			out = append(out, zs[i])
		}
	}
	return out, nil
}

// waitLeading waits for n background tokens of the budget, renewing the
// lease meanwhile, and gives the wait up when the lease is lost. A wait can
// outlast the lease: a 429's shared pause, or a wave whose rotations take
// tokens of their own (a V1 read-back, the first read of the config Heroku
// holds) one at a time while the feeder needs n at once. Without renewals a
// standby took the lease, read these same ids and waited for tokens too:
// each such take was spent on ids released already, about a tenth of a
// wave's budget where every rotation reads first (docs/benchmarks.md).
func (f *Feeder) waitLeading(ctx context.Context, n int) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		tick := time.NewTicker(renewEvery / 2)
		defer tick.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
				if !f.lead(ctx) {
					cancel()
					return
				}
			}
		}
	}()
	err := f.p.Budget.WaitN(ratelimit.WithClass(wctx, ratelimit.Background), "", n)
	cancel()
	<-renewed // f.leased is the renewals' until here
	return err
}

// lastOnes: while fewer than lastOnes rotations are held, the feeder
// releases them one at a time rather than Batch at a time (the end of a
// wave, a trickle of scheduled rotations). Pairs bring
// pushes two at once and then none for two budget intervals, three when a
// V1 read-back or a retried push takes a token between two pairs; one at a
// time, the last pushes of a wave come one an interval, two when such a
// call comes between. It costs Redis a budget request and a look at the
// held set more for each of those rotations.
const lastOnes = 10

// held is a held rotation and the task its release enqueues.
type held struct {
	id   string
	task *asynq.Task
}

// tasks builds the tasks of the held rotations ids, and drops at once, with
// no token, those that wait for none any more.
func (f *Feeder) tasks(ctx context.Context, ids []string) ([]held, error) {
	var ready []held
	var gone []any
	for _, id := range ids {
		t, err := f.p.Tasks.RotateTask(ctx, id)
		switch {
		case errors.Is(err, ErrUnusable):
			// Held again, it would stop every wave behind it.
			f.p.Logger.Warn().Str("rotation_id", id).Err(err).Msg("pacing_rotation_dropped")
			gone = append(gone, id)
		case err != nil:
			return nil, err
		case t == nil:
			gone = append(gone, id)
		default:
			ready = append(ready, held{id: id, task: t})
		}
	}
	if len(gone) > 0 {
		if err := f.p.Redis.ZRem(ctx, heldKey, gone...).Err(); err != nil {
			return nil, err
		}
		f.dropped.Add(int64(len(gone)))
	}
	return ready, nil
}

// How often the lease is renewed, and how many Idle periods a feeder
// without it waits before it tries to take it: a feeder that was killed is
// replaced within leaseTime plus that, about 7.5 s by default.
const (
	renewEvery   = 2 * time.Second
	standbyEvery = 5
)

// leaseScript renews the lease when KEYS[1] holds ARGV[1], or takes it when
// nobody holds it. ARGV[2] is the lease in ms. It returns 1 when the caller
// holds the lease.
var leaseScript = redis.NewScript(`
local v = redis.call("GET", KEYS[1])
if v == ARGV[1] then
  redis.call("PEXPIRE", KEYS[1], ARGV[2])
  return 1
end
if not v then
  redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
  return 1
end
return 0
`)

// lead reports whether this feeder holds the lease, renewing it at most
// every renewEvery. A renewal is dated from when it was asked, not from
// its reply: Redis set the lease's leaseTime somewhere in between, so the
// lease lasts at least leaseTime from the ask. A reply that comes so late
// that less than renewEvery of that is left (the process stalled after
// Redis answered: a GC pause, a starved CPU; go-redis's 3 s read timeout
// bounds only the wait on the wire) is not trusted even by the call that
// gets it: the lease may run out, and a standby take it, while this
// feeder releases, and two feeders would release the same held rotations.
func (f *Feeder) lead(ctx context.Context) bool {
	if f.now().Sub(f.leased) < renewEvery {
		return true
	}
	asked := f.now()
	ok, err := leaseScript.Run(ctx, f.p.Redis, []string{leaseKey}, f.id, leaseTime.Milliseconds()).Int()
	if err != nil || ok != 1 {
		f.leased = time.Time{}
		return false
	}
	f.leased = asked
	return f.leaseLeft()
}

// leaseLeft reports whether more than renewEvery is left of the lease this
// feeder last renewed, by its own clock: less, and a standby may take the
// lease over before a release that starts now ends.
func (f *Feeder) leaseLeft() bool { return f.now().Sub(f.leased) < leaseTime-renewEvery }

// resign gives the lease up at shutdown, so that another feeder takes over
// at once instead of after the lease runs out. It asks whatever this
// feeder last knew: a renewal cut short by the shutdown may have left the
// lease this feeder's while f.leased says it was lost, and the script
// deletes the lease only when it is this feeder's.
func (f *Feeder) resign() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = resignScript.Run(ctx, f.p.Redis, []string{leaseKey}, f.id).Err()
}

// resignScript deletes the lease KEYS[1] when it holds ARGV[1].
var resignScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0
`)

// queueBlocked reports whether the bulk queue is paused or backed up, by
// looks at most QueueCheck and PauseCheck old. It looks again sooner once
// half of MaxPending was released since the last look (a fast budget, or
// its burst, releases many tasks in QueueCheck), and every Idle while the
// queue is blocked, so that releases resume as soon as the workers catch
// up: a block that outlived its cause left the budget unused. A failed
// cheap look blocks: releasing into a queue nobody can see would spend
// tokens for nothing.
func (f *Feeder) queueBlocked() bool {
	now := time.Now()
	every := f.p.QueueCheck
	if f.blocked {
		every = f.p.Idle
	}
	if now.Sub(f.queueChecked) < every && f.sinceCheck < max(1, f.p.MaxPending/2) {
		return f.blocked
	}
	f.queueChecked, f.sinceCheck = now, 0
	pauseEvery := f.p.PauseCheck
	if f.paused {
		pauseEvery = min(pauseEvery, PausedCheck)
	}
	if now.Sub(f.pauseChecked) >= pauseEvery {
		info, err := f.p.Queues.GetQueueInfo(Queue)
		if err != nil && !f.queueKnown() {
			// No bulk task was ever enqueued, and asynq has no stats of a
			// queue before its first task. It knows the queue from the
			// first release on, and the next step looks again: a pause set
			// before that costs one release's tokens.
			f.queueChecked, f.pauseChecked = time.Time{}, time.Time{}
			f.paused, f.blocked = false, false
			return false
		}
		if err == nil {
			f.pauseChecked, f.paused, f.statsFailing = now, info.Paused, false
			f.blocked = info.Paused || info.Pending >= f.p.MaxPending
			return f.blocked
		}
		// asynq's queue stats can fail where the cheap look works (a Redis
		// that refuses MEMORY USAGE, which they sample): the pause stays as
		// last seen, and the cheap look decides. Blocking on this error
		// would stop every wave for good.
		f.pauseChecked = now
		if !f.statsFailing {
			f.statsFailing = true
			f.p.Logger.Warn().Err(err).Msg("pacing_queue_stats_failed")
		}
	}
	f.blocked = f.paused || f.backedUp()
	return f.blocked
}

// queueKnown reports whether asynq knows the bulk queue, or cannot tell.
// (GetQueueInfo's error for a queue it does not know is not
// asynq.ErrQueueNotFound.)
func (f *Feeder) queueKnown() bool {
	names, err := f.p.Queues.Queues()
	return err != nil || slices.Contains(names, Queue)
}

// backedUp reports whether MaxPending bulk tasks wait to be picked up, by
// asking for the MaxPending-th one only.
func (f *Feeder) backedUp() bool {
	infos, err := f.p.Queues.ListPendingTasks(Queue, asynq.PageSize(1), asynq.Page(f.p.MaxPending))
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return false
	}
	return err != nil || len(infos) > 0
}

// release enqueues the tasks of held rotations, with a token paid for each.
// It takes them out of the held set only once their tasks exist, so a
// feeder that dies in between leaves them held and the next one releases
// them; a task enqueued twice that way is refused by asynq the second
// time while the first waits or runs, and dropped (a finished one asynq
// keeps not, and its claim makes a second run a no-op). A feeder that
// finds at a release that its lease may have run out releases nothing
// more (releaseOne).
func (f *Feeder) release(ctx context.Context, rs []held) {
	var out []any
	for i, r := range rs {
		gone, lost := f.releaseOne(ctx, r)
		if lost {
			f.leased = time.Time{}
			if f.p.Budget != nil {
				f.unused.Add(int64(len(rs) - i))
			}
			break
		}
		if gone {
			out = append(out, r.id)
		}
	}
	if len(out) > 0 {
		if err := f.p.Redis.ZRem(ctx, heldKey, out...).Err(); err != nil {
			// Released, and still held: the next release of them is refused.
			f.p.Logger.Warn().Err(err).Msg("pacing_unhold_failed")
		}
	}
}

// errExists is enqueue's error for a rotation whose task exists already.
var errExists = errors.New("the rotation's task exists already")

// releaseOne marks the token of a held rotation paid and enqueues its task.
// It reports whether the rotation leaves the held set (gone): released, or
// dropped because its task exists already. One that could not be released
// stays held, first in line.
//
// It reports lost, and releases nothing, when the feeder's clock says its
// lease may have run out: the feeder stalled since its last look at the
// lease (a GC pause, a starved CPU), a standby may lead now and have
// released this same rotation, and a rotation whose task ran and finished
// meanwhile (asynq keeps no finished bulk task) would run a second time.
// The clock is read after the paid mark is set, just before the enqueue,
// so that a stall in either Redis call counts; a stall inside the enqueue
// itself is not seen.
func (f *Feeder) releaseOne(ctx context.Context, r held) (gone, lost bool) {
	marked := false
	if f.p.Budget != nil {
		// A mark there already is an earlier release's, for a task that
		// still waits: it stays that task's.
		ok, err := f.p.Redis.SetNX(ctx, paidKey+r.id, "1", paidFor).Result()
		marked = err == nil && ok
	}
	if !f.leaseLeft() {
		if marked {
			_ = f.p.Redis.Del(ctx, paidKey+r.id).Err()
		}
		return false, true
	}
	if f.p.Budget != nil && !marked {
		// Released unpaid, the push waits for a token of its own.
		f.unused.Add(1)
	}
	err := f.enqueue(ctx, r)
	if err == nil {
		f.released.Add(1)
		f.sinceCheck++
		return true, false
	}
	// The token goes unused; a mark left behind expires after paidFor.
	if marked {
		_ = f.p.Redis.Del(ctx, paidKey+r.id).Err()
	}
	if errors.Is(err, errExists) {
		f.dropped.Add(1)
		return true, false
	}
	f.p.Logger.Warn().Str("rotation_id", r.id).Err(err).Msg("pacing_release_failed")
	return false, false
}

// enqueue enqueues r's task on the bulk queue. A task of r that exists
// already and waits in asynq is one an earlier version held, scheduled
// HoldFor ahead, or one waiting out its back-off that bringForward held
// again: it runs now. Any other is one released already (errExists).
func (f *Feeder) enqueue(ctx context.Context, r held) error {
	_, err := f.p.Client.EnqueueContext(ctx, r.task, asynq.Queue(Queue))
	if !errors.Is(err, asynq.ErrTaskIDConflict) {
		return err
	}
	taskID := tasks.RotateTaskID(r.id)
	if !f.waiting(taskID) {
		return errExists
	}
	err = f.p.Queues.RunTask(Queue, taskID)
	// A task that came due and was taken up since the look (asynq refuses
	// to run a pending or active one, an error of its own) was released
	// already: held again, it would cost a warning and a token more.
	if errors.Is(err, asynq.ErrTaskNotFound) || err != nil && !f.waiting(taskID) {
		return errExists
	}
	return err
}

// waiting reports whether the task still waits in asynq to run later
// (scheduled, or retrying), or cannot be looked at (then it is safer to
// hold it again: a second release of a task that already runs fails
// harmlessly).
func (f *Feeder) waiting(taskID string) bool {
	info, err := f.p.Queues.GetTaskInfo(Queue, taskID)
	if errors.Is(err, asynq.ErrTaskNotFound) {
		return false
	}
	return err != nil || info.State == asynq.TaskStateScheduled || info.State == asynq.TaskStateRetry
}
