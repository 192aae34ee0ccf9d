package handlers_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// rig runs the handlers without an asynq server: a real store on a real
// Redis, the fake Heroku over HTTP through rekey's own client, the demo
// issuer in process, and an enqueuer that records follow-up tasks.
type rig struct {
	st    *store.Store
	fake  *herokufake.Fake
	demo  *issuer.Demo
	enq   *recordingEnqueuer
	mux   *asynq.ServeMux
	deps  *handlers.Deps
	reg   *registry.Registry
	later atomic.Int64 // nanoseconds added to the handlers' clock
	rdb   *redis.Client
	seal  *seal.Sealer
}

const grace = time.Hour

func newRig(t *testing.T, demo ...issuer.DemoOption) *rig {
	t.Helper()
	return newRigOn(t, redistest.New(t), nil, demo...)
}

// newRigOn is newRig on r, the handlers' store made with opts.
func newRigOn(t *testing.T, r *redistest.Redis, opts []store.Option, demo ...issuer.DemoOption) *rig {
	t.Helper()
	sealer, err := seal.New(bytes.Repeat([]byte{3}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	g := &rig{st: store.New(r.Client, sealer, opts...), fake: herokufake.New(), demo: issuer.NewDemo(demo...),
		enq: &recordingEnqueuer{tasks: map[string]*asynq.Task{}}, mux: asynq.NewServeMux(), rdb: r.Client, seal: sealer}
	srv := httptest.NewServer(g.fake)
	t.Cleanup(srv.Close)
	hc, err := heroku.NewClient(heroku.WithAPIURL(srv.URL), heroku.WithIDURL(srv.URL),
		heroku.WithTokenStore(g.st), heroku.WithOAuthClientSecret(secret.New(herokufake.DefaultClientSecret)),
		heroku.WithV1Credentials(herokufake.DefaultManifestID, secret.New(herokufake.DefaultManifestPassword)))
	if err != nil {
		t.Fatal(err)
	}
	g.deps = &handlers.Deps{Store: g.st, Heroku: hc, Issuer: g.demo, Enqueuer: g.enq, Grace: grace,
		Now: func() time.Time { return time.Now().Add(time.Duration(g.later.Load())) }}
	if err := handlers.Register(g.mux, g.deps); err != nil {
		t.Fatal(err)
	}
	// The registry runs in the web process: a store of its own, as the
	// worker's caches (the fingerprint key) are not the web's.
	g.reg = registry.New(store.New(r.Client, sealer), hc)
	g.provision(t, "inst-1", g.reg)
	return g
}

// provision creates a V3 add-on on the fake with a credential minted at
// provisioning, and registers it with its OAuth grant and its config (as
// `rekey dev` does: no Heroku read is needed to learn its fingerprint).
func (g *rig) provision(t *testing.T, id string, reg *registry.Registry) {
	t.Helper()
	ctx := context.Background()
	cred, err := g.demo.Mint(ctx, id, "provision")
	if err != nil {
		t.Fatal(err)
	}
	err = g.fake.AddAddon(herokufake.AddonSpec{ID: id, App: "app-" + id, ConfigVars: []string{issuer.DefaultConfigVar},
		InitialConfig: map[string]string{issuer.DefaultConfigVar: cred.Config[issuer.DefaultConfigVar].Reveal()}})
	if err != nil {
		t.Fatal(err)
	}
	err = reg.Put(ctx, registry.Input{ID: id, APIVersion: store.APIv3, ConfigVars: []string{issuer.DefaultConfigVar},
		CurrentCredentialID: cred.ID, CurrentConfig: map[string]secret.String{issuer.DefaultConfigVar: cred.Config[issuer.DefaultConfigVar]},
		OAuthGrant: &registry.Grant{Code: secret.New(g.fake.GrantCode(id))}})
	if err != nil {
		t.Fatal(err)
	}
}

// storeOnClock is the rig's store read on the handlers' clock, later
// included, as another process (the web's, registering) reads it: in
// production every process reads Redis's clock, where g.st keeps the real
// time while the handlers' clock runs ahead.
func (g *rig) storeOnClock() *store.Store {
	return store.New(g.rdb, g.seal, store.WithClock(g.deps.Now))
}

// rotatedPastGrace rotates inst-1 in rotation rot and lets its grace pass:
// it returns the credential the rotation superseded and that credential's
// revoke task, now due.
func (g *rig) rotatedPastGrace(t *testing.T, rot string) (old string, revoke *asynq.Task) {
	t.Helper()
	before, _ := g.st.Instance(context.Background(), "inst-1")
	if err := g.run(rotateTask(t, "inst-1", rot)); err != nil {
		t.Fatal(err)
	}
	revoke = g.enq.get(tasks.RevokeTaskID("inst-1", before.CurrentCredential))
	if revoke == nil {
		t.Fatal("no revoke task")
	}
	g.later.Store(int64(grace + time.Second))
	return before.CurrentCredential, revoke
}

// run processes task the way a worker would, minus asynq's retries.
func (g *rig) run(task *asynq.Task) error {
	return g.mux.ProcessTask(context.Background(), task)
}

func rotateTask(t *testing.T, instanceID, rotationID string) *asynq.Task {
	t.Helper()
	task, err := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: instanceID, RotationID: rotationID})
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// configCredential is the credential the add-on's Heroku config holds now.
func (g *rig) configCredential(t *testing.T, id string) string {
	t.Helper()
	cred, ok := g.demo.Lookup(g.fake.Config(id)[issuer.DefaultConfigVar])
	if !ok {
		t.Fatalf("config of %s holds no credential the issuer minted", id)
	}
	return cred
}

// recordingEnqueuer keeps every task under the deterministic TaskID the
// tasks package gives it, and refuses a repeat the way asynq does.
type recordingEnqueuer struct {
	mu    sync.Mutex
	tasks map[string]*asynq.Task
}

var _ handlers.Enqueuer = (*recordingEnqueuer)(nil)

func (e *recordingEnqueuer) EnqueueContext(_ context.Context, task *asynq.Task, _ ...asynq.Option) (*asynq.TaskInfo, error) {
	id, err := taskID(task)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.tasks[id]; ok {
		return nil, asynq.ErrTaskIDConflict
	}
	e.tasks[id] = task
	return &asynq.TaskInfo{ID: id, Type: task.Type()}, nil
}

func (e *recordingEnqueuer) get(id string) *asynq.Task {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tasks[id]
}

func (e *recordingEnqueuer) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.tasks)
}

// taskID is the TaskID the tasks package attaches to task.
func taskID(task *asynq.Task) (string, error) {
	if task.Type() == tasks.TypeRevoke {
		p, err := tasks.ParseRevoke(task)
		return tasks.RevokeTaskID(p.InstanceID, p.CredentialID), err
	}
	p, err := tasks.ParseRotate(task)
	return tasks.RotateTaskID(p.RotationID), err
}

// isPermanent reports whether err tells asynq to archive the task.
func isPermanent(err error) bool { return errors.Is(err, asynq.SkipRetry) }

// holdFirst puts a front before the fake Heroku that holds the first
// request match accepts until release is closed, and points the handlers'
// Heroku client at it: arrived is closed when that request reaches it.
func (g *rig) holdFirst(t *testing.T, match func(*http.Request) bool) (arrived, release chan struct{}) {
	t.Helper()
	arrived, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if match(r) {
			first := false
			once.Do(func() { first = true; close(arrived) })
			if first {
				<-release
			}
		}
		g.fake.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	g.callThrough(t, front)
	return arrived, release
}

// callThrough has the handlers call Heroku through front, a server before
// the fake.
func (g *rig) callThrough(t *testing.T, front *httptest.Server) {
	t.Helper()
	hc, err := heroku.NewClient(heroku.WithAPIURL(front.URL), heroku.WithIDURL(front.URL),
		heroku.WithTokenStore(g.st), heroku.WithOAuthClientSecret(secret.New(herokufake.DefaultClientSecret)),
		heroku.WithV1Credentials(herokufake.DefaultManifestID, secret.New(herokufake.DefaultManifestPassword)))
	if err != nil {
		t.Fatal(err)
	}
	g.deps.Heroku = hc
}

// isPatch matches a config push.
func isPatch(r *http.Request) bool { return r.Method == http.MethodPatch }
