package scheduler_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/scheduler"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// world is a scheduler's surroundings on simulated time: a real store on a
// real Redis, a queue that refuses a repeated TaskID the way asynq does,
// and the real rotate handler over a Heroku that records pushes and an
// issuer that can be told to refuse.
type world struct {
	st     *store.Store
	queue  *queue
	heroku *pushes
	iss    *scriptedIssuer
	mux    *asynq.ServeMux
	clock  atomic.Int64 // simulated now, Unix milliseconds
}

func newWorld(t *testing.T, start time.Time) *world {
	t.Helper()
	r := redistest.New(t)
	sealer, err := seal.New(bytes.Repeat([]byte{5}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	w := &world{queue: &queue{seen: map[string]bool{}}, heroku: &pushes{at: map[string][]time.Time{}},
		iss: &scriptedIssuer{}, mux: asynq.NewServeMux()}
	w.clock.Store(start.UnixMilli())
	w.heroku.now = w.now
	w.st = store.New(r.Client, sealer, store.WithClock(w.now))
	deps := &handlers.Deps{Store: w.st, Heroku: w.heroku, Issuer: w.iss, Enqueuer: w.queue,
		Grace: time.Minute, Now: w.now}
	if err := handlers.Register(w.mux, deps); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) now() time.Time          { return time.UnixMilli(w.clock.Load()).UTC() }
func (w *world) set(t time.Time)         { w.clock.Store(t.UnixMilli()) }
func (w *world) advance(d time.Duration) { w.clock.Add(d.Milliseconds()) }

func (w *world) register(t *testing.T, id string) {
	t.Helper()
	err := w.st.PutInstance(context.Background(), store.Registration{ID: id, APIVersion: store.APIv3,
		ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "c0-" + id})
	if err != nil {
		t.Fatal(err)
	}
}

func (w *world) scheduler(t *testing.T, p scheduler.Params) *scheduler.Scheduler {
	t.Helper()
	p.Store, p.Enqueuer, p.Logger = w.st, w.queue, zerolog.Nop()
	if p.Now == nil {
		p.Now = w.now
	}
	s, err := scheduler.New(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// work runs every rotate task waiting in the queue through the real
// handler, parallel goroutines at once, as a worker would, minus retries.
// It returns how many tasks ran.
func (w *world) work(t *testing.T, parallel int) int {
	t.Helper()
	batch := w.queue.take()
	next := make(chan *asynq.Task)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for task := range next {
				err := w.mux.ProcessTask(context.Background(), task)
				if err != nil && !errors.Is(err, asynq.SkipRetry) {
					t.Errorf("rotate task: %v", err)
				}
			}
		})
	}
	for _, task := range batch {
		next <- task
	}
	close(next)
	wg.Wait()
	return len(batch)
}

// queue keeps rotate tasks until work takes them, and refuses a TaskID it
// has seen, as asynq does while it retains the task.
type queue struct {
	mu      sync.Mutex
	seen    map[string]bool
	pending []*asynq.Task
	// conflicts counts refused repeats.
	conflicts int
}

var _ fleet.Enqueuer = (*queue)(nil)

func (q *queue) EnqueueContext(_ context.Context, task *asynq.Task, _ ...asynq.Option) (*asynq.TaskInfo, error) {
	if task.Type() != tasks.TypeRotate {
		return &asynq.TaskInfo{Type: task.Type()}, nil // revocations are not part of these tests
	}
	p, err := tasks.ParseRotate(task)
	if err != nil {
		return nil, err
	}
	id := tasks.RotateTaskID(p.RotationID)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.seen[id] {
		q.conflicts++
		return nil, asynq.ErrTaskIDConflict
	}
	q.seen[id] = true
	q.pending = append(q.pending, task)
	return &asynq.TaskInfo{ID: id, Type: task.Type()}, nil
}

func (q *queue) count() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.seen)
}

func (q *queue) take() []*asynq.Task {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.pending
	q.pending = nil
	return out
}

// pushes is a Heroku that accepts every config update and records when
// each instance's config changed: one push is one rotation.
type pushes struct {
	mu  sync.Mutex
	at  map[string][]time.Time
	now func() time.Time
}

var _ handlers.Heroku = (*pushes)(nil)

func (h *pushes) UpdateConfig(_ context.Context, t heroku.Target, _ []heroku.ConfigVar) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.at[t.AddonID] = append(h.at[t.AddonID], h.now())
	return nil
}

// GetConfig answers what an instance's first rotation reads (its
// registration carried no current_config): the provisioning credential's
// config, as Heroku holds it until the first push. No push is refused, so
// no read-back asks.
func (h *pushes) GetConfig(_ context.Context, t heroku.Target) (map[string]secret.String, error) {
	return map[string]secret.String{"MYADDON_URL": secret.New("postgres://c0-" + t.AddonID + "@db.example")}, nil
}

// AddonState is never needed: no push is refused.
func (h *pushes) AddonState(context.Context, heroku.Target) (string, error) {
	return heroku.AddonProvisioned, nil
}

func (h *pushes) times(id string) []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Time(nil), h.at[id]...)
}

// scriptedIssuer mints a credential per rotation, or refuses every mint
// for the instances marked with refuse, with a 422, as a partner's issuer
// does for an account it has suspended.
type scriptedIssuer struct{ refused sync.Map }

var _ issuer.Issuer = (*scriptedIssuer)(nil)

func (i *scriptedIssuer) refuse(id string, on bool) {
	if on {
		i.refused.Store(id, true)
	} else {
		i.refused.Delete(id)
	}
}

func (i *scriptedIssuer) Mint(_ context.Context, instanceID, rotationID string) (issuer.Credential, error) {
	if _, ok := i.refused.Load(instanceID); ok {
		return issuer.Credential{}, &issuer.Error{Op: "mint", Status: 422, Code: "account_suspended"}
	}
	return issuer.Credential{ID: "c-" + rotationID,
		Config: map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:p@db/" + rotationID)}}, nil
}

func (i *scriptedIssuer) Verify(context.Context, string, string) error {
	return issuer.ErrVerifyUnsupported
}

func (i *scriptedIssuer) Revoke(context.Context, string, string) error { return nil }
