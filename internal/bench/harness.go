// Package bench runs rekey's fleet rotation end to end, the way production
// runs it, so tests can check the Heroku budget and a benchmark can measure
// what a rotation costs: the fake Heroku and the demo issuer over real HTTP
// (internal/sandbox), a real Redis, and `rekey worker` processes built from
// cmd/rekey, each with its own rate limiter and asynq server, sharing nothing
// but Redis.
//
// A Harness is the world around the workers: the sandbox, the instances
// provisioned on it, a producer that requests rotations as `rekey rotate`
// does, and an observer that watches progress on a Redis connection of its
// own whose commands are counted, so they can be told apart from rekey's.
package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/logplex"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/store"
)

// Params shape a Harness.
type Params struct {
	// RedisURL is the database rekey and the harness share.
	RedisURL string
	// Fake are options for the fake Heroku (its bucket, faults).
	Fake []herokufake.Option
	// Env is added to the worker environment the sandbox gives
	// (REKEY_HEROKU_RATE, REKEY_GRACE, REKEY_CONCURRENCY, ...).
	Env map[string]string
}

// Harness is a sandbox, the producer side of rekey and an observer. Close
// releases it. Its methods are safe for concurrent use.
type Harness struct {
	Sandbox *sandbox.Sandbox
	// Env is the environment of a worker process.
	Env map[string]string
	// Config is Env as rekey reads it.
	Config *config.Config
	// Producer requests rotations on a connection of its own, as the CLI
	// and the web process do; its commands are rekey's.
	Producer *fleet.Producer
	// Store reads progress on the observer's connection.
	Store *store.Store
	// Inspector looks at asynq's queues on the observer's connection.
	Inspector *asynq.Inspector
	// Observer is the observer's connection; its commands are counted.
	Observer *redis.Client

	producer *store.Store
	prdb     *redis.Client
	queue    *asynq.Client
	observed *commandCounter
}

// Start serves the sandbox and connects the producer and the observer.
func Start(p Params) (*Harness, error) {
	sb, err := sandbox.Start(sandbox.Params{Fake: p.Fake})
	if err != nil {
		return nil, err
	}
	h := &Harness{Sandbox: sb, Env: sb.Env(p.RedisURL), observed: &commandCounter{}}
	h.Env["REKEY_LOG_LEVEL"] = "warn"
	maps.Copy(h.Env, p.Env)
	if err := h.connect(); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

func (h *Harness) connect() error {
	cfg, err := config.Load(sandbox.Lookup(h.Env))
	if err != nil {
		return err
	}
	h.Config = cfg
	opt, err := cfg.RedisOptions()
	if err != nil {
		return err
	}
	sealer, err := cfg.Sealer()
	if err != nil {
		return err
	}
	observer := *opt
	observer.ClientName = ObserverClientName
	h.prdb, h.Observer = redis.NewClient(opt), redis.NewClient(&observer)
	h.Observer.AddHook(h.observed)
	if err := h.prdb.Ping(context.Background()).Err(); err != nil {
		return fmt.Errorf("connect to %s: %w", opt.Addr, err)
	}
	h.producer, h.Store = store.New(h.prdb, sealer), store.New(h.Observer, sealer)
	h.queue = asynq.NewClientFromRedisClient(h.prdb)
	h.Producer = fleet.NewProducer(h.producer, h.queue)
	h.Inspector = asynq.NewInspectorFromRedisClient(h.Observer)
	h.Sandbox.Checker.UseStore(h.Store)
	return nil
}

// Close stops the sandbox and closes the connections.
func (h *Harness) Close() {
	if h.queue != nil {
		_ = h.queue.Close()
	}
	for _, c := range []*redis.Client{h.prdb, h.Observer} {
		if c != nil {
			_ = c.Close()
		}
	}
	h.Sandbox.Close()
}

// Fake is the fake Heroku.
func (h *Harness) Fake() *herokufake.Fake { return h.Sandbox.Fake }

// WorkerClientName names the connections of the worker processes
// StartWorkers runs (client_name in their REDIS_URL), so that CLIENT LIST
// tells them from every other client of the server.
const WorkerClientName = "rekey-bench-worker"

// ObserverClientName names the observer's connections, so that a Monitor
// can leave out the harness's own commands (ObserverAddrs).
const ObserverClientName = "rekey-bench-observer"

// ObserverAddrs is the set of client addresses of the observer's
// connections open now, as CLIENT LIST and MONITOR spell them.
func (h *Harness) ObserverAddrs(ctx context.Context) (map[string]bool, error) {
	list, err := h.Observer.ClientList(ctx).Result()
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for line := range strings.Lines(list) {
		fields := strings.Fields(line)
		if !slices.Contains(fields, "name="+ObserverClientName) {
			continue
		}
		for _, f := range fields {
			if addr, ok := strings.CutPrefix(f, "addr="); ok {
				out[addr] = true
			}
		}
	}
	return out, nil
}

// WorkerConnections counts the connections the worker processes hold to
// the harness's Redis now.
func (h *Harness) WorkerConnections(ctx context.Context) (int, error) {
	list, err := h.Observer.ClientList(ctx).Result()
	if err != nil {
		return 0, err
	}
	return sandbox.ClientsNamed(list, WorkerClientName), nil
}

// WorkerPoolSize is the pool size the worker processes run with: their
// REKEY_REDIS_POOL_SIZE, or REDIS_URL's pool_size.
func (h *Harness) WorkerPoolSize() (int, error) {
	opt, err := h.Config.RedisOptions()
	if err != nil {
		return 0, err
	}
	return opt.PoolSize, nil
}

// ObserverCommands is how many Redis commands the observer has sent, by
// command name as INFO commandstats spells it.
func (h *Harness) ObserverCommands() map[string]int64 { return h.observed.snapshot() }

// Provision creates n sample instances numbered from first, through the OAuth
// grant exchange as the HTTP API registers them.
func (h *Harness) Provision(ctx context.Context, first, n int, mix sandbox.Mix) ([]sandbox.Sample, error) {
	cfg := h.Config
	hc, err := heroku.NewClient(heroku.WithAPIURL(cfg.HerokuAPIURL), heroku.WithIDURL(cfg.HerokuIDURL),
		heroku.WithTokenStore(h.producer), heroku.WithOAuthClientSecret(cfg.OAuthClientSecret),
		heroku.WithV1Credentials(cfg.AddonID, cfg.AddonPassword), heroku.WithUserAgent("rekey-bench"))
	if err != nil {
		return nil, err
	}
	return h.Sandbox.Provision(ctx, registry.New(h.producer, hc, registry.WithLocalStandIn(logplex.LocalStandIn(cfg.HerokuAPIURL))), first, n, mix)
}

// StartWorkers runs n `rekey worker` processes of bin on the harness's
// environment and waits until asynq lists every one of them.
func (h *Harness) StartWorkers(ctx context.Context, bin string, n int, logDir string) (*Workers, error) {
	env := maps.Clone(h.Env)
	env["REDIS_URL"] = sandbox.NamedRedisURL(env["REDIS_URL"], WorkerClientName)
	w, err := StartWorkers(bin, env, n, logDir)
	if err != nil {
		return nil, err
	}
	err = Poll(ctx, 20*time.Second, fmt.Sprintf("%d asynq servers", n), func() (bool, error) {
		if err := w.Exited(); err != nil {
			return false, err
		}
		servers, err := h.Inspector.Servers()
		return len(servers) >= n, err
	})
	if err != nil {
		_, _ = w.Stop(5 * time.Second)
		return nil, err
	}
	return w, nil
}

// WaitBatch polls the batch until done says it is finished, a worker exits,
// or within passes.
func (h *Harness) WaitBatch(ctx context.Context, w *Workers, id string, within time.Duration,
	done func(store.Batch) bool) (store.Batch, error) {
	var b store.Batch
	err := Poll(ctx, within, "batch "+id, func() (bool, error) {
		if err := w.Exited(); err != nil {
			return false, err
		}
		var err error
		b, err = h.Store.Batch(ctx, id)
		return err == nil && done(b), err
	})
	if err != nil {
		return b, fmt.Errorf("%w (last progress: %+v)", err, b)
	}
	return b, nil
}

// errTimeout is what Poll returns when the condition never held.
var errTimeout = errors.New("timed out")

// Poll calls cond every 20 ms until it reports true or an error, ctx ends,
// or within passes.
func Poll(ctx context.Context, within time.Duration, what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		switch {
		case err != nil:
			return fmt.Errorf("waiting for %s: %w", what, err)
		case ok:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w after %s", what, errTimeout, within)
		case <-tick.C:
		}
	}
}

// IDs returns the samples' instance ids.
func IDs(samples []sandbox.Sample) []string {
	ids := make([]string, len(samples))
	for i, s := range samples {
		ids[i] = s.ID
	}
	return ids
}

// commandCounter counts the commands a client sends to Redis, by name.
type commandCounter struct {
	mu     sync.Mutex
	byName map[string]int64
}

var _ redis.Hook = (*commandCounter)(nil)

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.count(cmd)
		return next(ctx, cmd)
	}
}

func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.count(cmds...)
		return next(ctx, cmds)
	}
}

func (c *commandCounter) count(cmds ...redis.Cmder) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byName == nil {
		c.byName = map[string]int64{}
	}
	for _, cmd := range cmds {
		c.byName[statName(cmd)]++
	}
}

// statName is cmd's name as INFO commandstats spells it: "client|list" for
// a command with subcommands.
func statName(cmd redis.Cmder) string {
	name := strings.ToLower(cmd.Name())
	switch name {
	case "acl", "client", "cluster", "command", "config", "function", "latency", "memory", "module", "object",
		"pubsub", "script", "slowlog", "xgroup", "xinfo":
		if args := cmd.Args(); len(args) > 1 {
			if sub, ok := args[1].(string); ok {
				name += "|" + strings.ToLower(sub)
			}
		}
	}
	return name
}

func (c *commandCounter) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.byName)
}
