package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/issuer/pgissuer"
	"github.com/rekeyhq/rekey/internal/pgtest"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// pgInstances is how many add-on instances, one database each, the
// PostgreSQL fleet test rotates: 100, or REKEY_E2E_PG_INSTANCES for a
// quicker run on a busy machine.
var pgInstances = func() int {
	if n, err := strconv.Atoi(os.Getenv("REKEY_E2E_PG_INSTANCES")); err == nil && n > 0 {
		return n
	}
	return 100
}()

// pgGrace is the fleet test's grace: ten times the fake's dyno restart, so
// every app runs the new credential long before the old one is revoked.
const pgGrace = 3 * time.Second

// TestPostgresFleet rotates 100 instances of REKEY_ISSUER=postgres twice with
// real `rekey worker` processes, SIGKILLing the worker in the second fleet
// rotation, while each instance's app connects every 100 ms and holds one
// long-lived connection with whatever its dynos run in the fake Heroku:
// no login and no query fails, every old role is dropped after its grace,
// no role is left behind, the new roles keep the data and privileges of
// the old ones, and no password reaches a log, a task or Redis in clear.
// It runs beside the other end-to-end tests: most of its time is waiting
// (for asynq's recoverer after the SIGKILL, for graces), and its apps log
// in a few tens of times a second.
func TestPostgresFleet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, worldParams{fake: []herokufake.Option{herokufake.WithLatency(100 * time.Millisecond)}})
	began := time.Now()
	f := newPGFleet(t, w)
	t.Logf("%d databases created in %s", pgInstances, time.Since(began).Round(time.Millisecond))
	rolesBefore := f.roleCount()
	f.provision()
	t.Logf("provisioned at %s", time.Since(began).Round(time.Millisecond))
	if got := f.roleCount(); got != rolesBefore+pgInstances {
		t.Fatalf("provisioning made %d roles, want %d", got-rolesBefore, pgInstances)
	}
	apps := f.startApps()
	appsStarted := time.Now()

	first := startRekey(t, f.env, "worker")
	res := w.rotate(f.ids...)
	b := w.waitBatch(res.BatchID, 5*time.Minute)
	t.Logf("first rotation done at %s", time.Since(began).Round(time.Millisecond))
	w.waitRevoked(time.Minute)
	f.checkRotation(b, 1)
	t.Logf("first rotation done and revoked at %s", time.Since(began).Round(time.Millisecond))

	// A straggler keeps a session of instance 0's role open through the
	// second rotation: the issuer reports it in use (usage evidence), so
	// its revocation is held past the grace until the straggler leaves.
	straggler, err := pgx.Connect(ctx, w.sb.Fake.Config(f.ids[0])["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer straggler.Close(ctx)
	if u := f.usageOf(f.ids[0], f.rotated[0][f.ids[0]]); time.Since(u.LastUsedAt) > time.Minute {
		t.Errorf("usage of a role with a live session = %+v, want used now", u)
	}
	res = w.rotate(f.ids...)
	waitFor(t, time.Minute, "part of the second rotation", func() (bool, string) {
		b, err := w.store.Batch(ctx, res.BatchID)
		return err == nil && b.Succeeded >= 20, fmt.Sprintf("%+v, %v", b, err)
	})
	first.kill()
	killed := time.Now()
	second := startRekey(t, f.env, "worker")
	b = w.waitBatch(res.BatchID, crashRecoveryDeadline)
	// A revoke task the killed worker held comes back with asynq's
	// recoverer, a minute or two later; instance 0's stays held.
	waitFor(t, crashRecoveryDeadline, "every revocation but the straggler's", func() (bool, string) {
		n, err := w.store.PendingRevocations(ctx)
		holds, herr := w.store.InstanceHolds(ctx, f.ids[0])
		return err == nil && herr == nil && n == 1 && len(holds) == 1, fmt.Sprintf("%d pending, holds %+v, %v %v", n, holds, err, herr)
	})
	if err := straggler.Ping(ctx); err != nil {
		t.Errorf("the straggler's held role stopped working: %v", err)
	}
	t.Logf("second rotation done %s after the worker was killed; instance 0's old role held while its session is open", time.Since(killed).Round(time.Millisecond))
	heldUntil := time.Now()
	_ = straggler.Close(ctx)
	w.waitRevoked(time.Minute)
	t.Logf("the held role was revoked %s after its last session closed", time.Since(heldUntil).Round(time.Millisecond))
	stats := apps.stop()
	appTime := time.Since(appsStarted)
	f.checkRotation(b, 2)

	if stats.failedLogins != 0 || stats.failedQueries != 0 {
		t.Errorf("apps: %d failed logins, %d failed queries; first failures: %s", stats.failedLogins, stats.failedQueries, stats.firstErrors)
	}
	if got := f.roleCount(); got != rolesBefore+pgInstances {
		t.Errorf("%d roles after two rotations, want %d (one current role per instance)", got, rolesBefore+pgInstances)
	}
	f.checkRoles()
	f.checkNoPasswordLeaked(apps.passwords(), first.stderr.String()+second.stderr.String())
	t.Logf("%d instances, 2 fleet rotations in %s: %d logins (%.0f/s), %d queries, %d failed logins, %d failed queries; %d roles before and after",
		pgInstances, appTime.Round(time.Second), stats.logins, float64(stats.logins)/appTime.Seconds(), stats.queries,
		stats.failedLogins, stats.failedQueries, rolesBefore+pgInstances)
}

// pgFleet is the fleet test's instances, each with its own database and
// owner role on one server.
type pgFleet struct {
	t      *testing.T
	w      *world
	server *pgtest.DB
	iss    *pgissuer.Issuer
	prefix string
	ids    []string
	locs   map[string]pgissuer.Location
	env    map[string]string
	// provisioned are the roles minted at provisioning, by instance.
	provisioned map[string]string
	// rotated are the roles each fleet rotation made current, by instance.
	rotated []map[string]string
}

func newPGFleet(t *testing.T, w *world) *pgFleet {
	t.Helper()
	srv := pgtest.Server(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	f := &pgFleet{t: t, w: w, server: srv, prefix: fmt.Sprintf("e2e%d", os.Getpid()),
		locs: map[string]pgissuer.Location{}, provisioned: map[string]string{}}
	servers, err := pgissuer.ParseServers([]byte(`{"main":"` + srv.ServerURL + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	f.iss, err = pgissuer.New(pgissuer.Params{Servers: servers, Key: key,
		Locator: pgissuer.LocatorFunc(func(_ context.Context, id string) (pgissuer.Location, error) { return f.locs[id], nil })})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.iss.Close)
	f.env = w.sb.Env(w.redis.URL)
	for k, v := range map[string]string{"REKEY_ISSUER": "postgres", "REKEY_POSTGRES_SERVERS": `{"main":"` + srv.ServerURL + `"}`,
		"REKEY_POSTGRES_KEY": base64.StdEncoding.EncodeToString(key), "REKEY_GRACE": pgGrace.String(),
		"REKEY_PRIVATE_SPACE_GRACE": pgGrace.String(), "REKEY_HEROKU_RATE": "1000000", "REKEY_LOG_LEVEL": "info",
		"REKEY_CONCURRENCY": "40", "REKEY_HOLD_QUIET": "2s", "REKEY_HOLD_RECHECK": "1s"} {
		f.env[k] = v
	}
	f.createDatabases()
	return f
}

// createDatabases makes each instance's database, owned by a NOLOGIN group
// role, as a partner's provisioning would.
func (f *pgFleet) createDatabases() {
	f.t.Helper()
	ctx := context.Background()
	each(f.t, pgInstances, 4, func(i int) error {
		loc := pgissuer.Location{Server: "main", Database: fmt.Sprintf("%s_db_%03d", f.prefix, i),
			Owner: fmt.Sprintf("%s_owner_%03d", f.prefix, i), ConfigVars: []string{"DATABASE_URL"}}
		db, owner := pgx.Identifier{loc.Database}.Sanitize(), pgx.Identifier{loc.Owner}.Sanitize()
		f.t.Cleanup(func() {
			_ = pgtest.Exec(ctx, f.server.ServerURL, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
			_ = pgtest.Exec(ctx, f.server.ServerURL, "DROP ROLE IF EXISTS "+owner)
		})
		for _, s := range []string{"CREATE ROLE " + owner + " NOLOGIN", "CREATE DATABASE " + db + " OWNER " + owner + " STRATEGY FILE_COPY"} {
			if err := pgtest.Exec(ctx, f.server.ServerURL, s); err != nil {
				return err
			}
		}
		u, _ := url.Parse(f.server.ServerURL)
		u.Path = "/" + loc.Database
		return pgtest.Exec(ctx, u.String(), "ALTER SCHEMA public OWNER TO "+owner)
	})
	for i := range pgInstances {
		id := fmt.Sprintf("pg-%s-%03d", f.prefix, i)
		f.ids = append(f.ids, id)
		f.locs[id] = pgissuer.Location{Server: "main", Database: fmt.Sprintf("%s_db_%03d", f.prefix, i),
			Owner: fmt.Sprintf("%s_owner_%03d", f.prefix, i), ConfigVars: []string{"DATABASE_URL"}}
	}
}

// provision mints each instance's first role with the issuer, creates the
// app's table as that role, adds the add-on to the fake Heroku and
// registers it with its database.
func (f *pgFleet) provision() {
	f.t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	each(f.t, pgInstances, 8, func(i int) error {
		id := f.ids[i]
		cred, err := f.iss.Mint(ctx, id, "provision")
		if err != nil {
			return err
		}
		dsn := cred.Config["DATABASE_URL"].Reveal()
		if err := pgtest.Exec(ctx, dsn, "CREATE TABLE hits (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())"); err != nil {
			return fmt.Errorf("the provisioned role creates a table: %w", err)
		}
		mu.Lock()
		f.provisioned[id] = cred.ID
		mu.Unlock()
		spec := herokufake.AddonSpec{ID: id, Name: "pg-" + fmt.Sprint(i), App: "pgapp-" + fmt.Sprint(i),
			ConfigVars: []string{"DATABASE_URL"}, InitialConfig: map[string]string{"DATABASE_URL": dsn}}
		if err := f.w.sb.Fake.AddAddon(spec); err != nil {
			return err
		}
		loc := f.locs[id]
		return f.w.reg.Put(ctx, registry.Input{ID: id, APIVersion: store.APIv3, ConfigVars: spec.ConfigVars,
			CurrentCredentialID: cred.ID, OAuthGrant: &registry.Grant{Code: secret.New(f.w.sb.Fake.GrantCode(id))},
			Database: &store.Database{Server: loc.Server, Name: loc.Database, Owner: loc.Owner}})
	})
}

// each runs fn(0..n-1) on at most par goroutines and fails t on the first error.
func each(t *testing.T, n, par int, fn func(i int) error) {
	t.Helper()
	errs := make([]error, n)
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() { defer func() { <-sem; wg.Done() }(); errs[i] = fn(i) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
	}
}

// roleCount counts every role on the server.
func (f *pgFleet) roleCount() int {
	f.t.Helper()
	var n int
	err := f.query(func(c *pgx.Conn) error {
		return c.QueryRow(context.Background(), "SELECT count(*) FROM pg_roles").Scan(&n)
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

func (f *pgFleet) query(fn func(*pgx.Conn) error) error {
	c, err := pgx.Connect(context.Background(), f.server.ServerURL)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return fn(c)
}

// checkRotation checks a finished fleet rotation: every instance rotated,
// Heroku holds the store's current role, and that role reads and writes
// the table the provisioned role created.
func (f *pgFleet) checkRotation(b store.Batch, n int) {
	f.t.Helper()
	if b.Succeeded != int64(pgInstances) || b.Failed != 0 {
		f.t.Fatalf("fleet rotation %d: %d succeeded, %d failed (%v); want all %d", n, b.Succeeded, b.Failed, b.Failures, pgInstances)
	}
	ctx := context.Background()
	current := map[string]string{}
	for _, id := range f.ids {
		in, err := f.w.store.Instance(ctx, id)
		if err != nil {
			f.t.Fatal(err)
		}
		dsn := f.w.sb.Fake.Config(id)["DATABASE_URL"]
		u, err := url.Parse(dsn)
		if err != nil || u.User.Username() != in.CurrentCredential {
			f.t.Fatalf("%s: Heroku holds another role than the store's current %s", id, in.CurrentCredential)
		}
		current[id] = in.CurrentCredential
		if err := pgtest.Exec(ctx, dsn, "INSERT INTO hits DEFAULT VALUES; UPDATE hits SET at = at WHERE id = 1"); err != nil {
			f.t.Fatalf("%s: the new role cannot write the provisioned role's table: %v", id, err)
		}
	}
	f.rotated = append(f.rotated, current)
}

// checkRoles checks that the provisioned and first-rotation roles are
// gone and the current ones are rekey's and log in.
func (f *pgFleet) checkRoles() {
	f.t.Helper()
	gone := map[string]bool{}
	for _, id := range f.ids {
		gone[f.provisioned[id]] = true
		gone[f.rotated[0][id]] = true
	}
	err := f.query(func(c *pgx.Conn) error {
		rows, err := c.Query(context.Background(), "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)", pgissuer.RolePrefix)
		if err != nil {
			return err
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, name := range names {
			if gone[name] {
				f.t.Errorf("role %s outlived its revocation", name)
			}
		}
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, id := range f.ids[:5] {
		if err := f.iss.Verify(context.Background(), id, f.rotated[1][id]); err != nil {
			f.t.Errorf("%s: current role does not log in: %v", id, err)
		}
	}
}

// checkNoPasswordLeaked looks for every password the apps saw, and the
// admin password, in the workers' logs, the tasks and Redis.
func (f *pgFleet) checkNoPasswordLeaked(passwords []string, logs string) {
	f.t.Helper()
	admin, _ := url.Parse(f.server.ServerURL)
	adminPassword, _ := admin.User.Password()
	places := map[string]string{"worker logs": logs, "tasks": f.w.taskText(), "Redis": redistest.Dump(f.t, f.w.redis)}
	if !strings.Contains(logs, "revoked") || !strings.Contains(places["tasks"], "instance_id") {
		f.t.Fatal("the capture of logs and tasks is empty: the search would mean nothing")
	}
	for _, p := range append(passwords, adminPassword) {
		for place, text := range places {
			if len(p) >= 16 && strings.Contains(text, p) {
				f.t.Errorf("a password was found in %s", place)
			}
		}
	}
	f.t.Logf("%d passwords searched in %d bytes of logs, tasks and Redis", len(passwords)+1,
		len(places["worker logs"])+len(places["tasks"])+len(places["Redis"]))
}

// Usage evidence: the issuer reports a live session of a role as use now,
// so a revocation that asks (the disuse issue) waits for it.
func (f *pgFleet) usageOf(id, role string) issuer.Usage {
	u, err := f.iss.Usage(context.Background(), id, role)
	if err != nil {
		f.t.Fatal(err)
	}
	return u
}

// appStats are the simulated apps' counts.
type appStats struct {
	logins, queries, failedLogins, failedQueries int64
	firstErrors                                  string
}

// simApps are the simulated apps, one per instance.
type simApps struct {
	f                                            *pgFleet
	cancel                                       context.CancelFunc
	wg                                           sync.WaitGroup
	logins, queries, failedLogins, failedQueries atomic.Int64
	mu                                           sync.Mutex
	errs                                         []string
	seen                                         map[string]bool // passwords seen
	// slots bounds the logins in flight across all apps: 100 apps asking
	// for 10 logins a second each would otherwise starve rekey's own
	// processes on a small machine. Each app still asks every 100 ms; the
	// test logs the rate achieved. Two at once log in as often as eight
	// did on two cores (17 and 18 a second), and leave rekey the CPU that
	// eight took: the first fleet rotation took 32 s instead of 72 s.
	slots chan struct{}
}

// startApps starts one simulated app per instance: a new connection every
// 100 ms that writes a row, and one long-lived connection that queries
// every 100 ms and reconnects when its dynos restart with a new config.
func (f *pgFleet) startApps() *simApps {
	ctx, cancel := context.WithCancel(context.Background())
	a := &simApps{f: f, cancel: cancel, seen: map[string]bool{}, slots: make(chan struct{}, 2)}
	f.t.Cleanup(func() { a.stop() }) // a failed test stops its apps too
	for i, id := range f.ids {
		app := "pgapp-" + fmt.Sprint(i)
		a.wg.Add(2)
		go func() { defer a.wg.Done(); a.shortLived(ctx, app, id) }()
		go func() { defer a.wg.Done(); a.longLived(ctx, app, id) }()
	}
	return a
}

func (a *simApps) running(app, id string) string {
	dsn := a.f.w.sb.Fake.RunningConfig(app, id)["DATABASE_URL"]
	if u, err := url.Parse(dsn); err == nil {
		if p, ok := u.User.Password(); ok {
			a.mu.Lock()
			a.seen[p] = true
			a.mu.Unlock()
		}
	}
	return dsn
}

func (a *simApps) fail(counter *atomic.Int64, what string, err error) {
	counter.Add(1)
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.errs) < 5 {
		a.errs = append(a.errs, what+": "+err.Error())
	}
}

func (a *simApps) shortLived(ctx context.Context, app, id string) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		c, _, err := a.connect(ctx, app, id)
		if err != nil {
			continue
		}
		a.queries.Add(1)
		if _, err := c.Exec(ctx, "INSERT INTO hits DEFAULT VALUES"); err != nil && ctx.Err() == nil {
			a.fail(&a.failedQueries, "insert", err)
		}
		c.Close(context.Background())
	}
}

func (a *simApps) longLived(ctx context.Context, app, id string) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var c *pgx.Conn
	var held string
	defer func() {
		if c != nil {
			c.Close(context.Background())
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// A dyno restart ends the process and its connection.
		if dsn := a.running(app, id); dsn != held && c != nil {
			c.Close(context.Background())
			c = nil
		}
		if c == nil {
			var err error
			if c, held, err = a.connect(ctx, app, id); err != nil {
				c = nil
				continue
			}
		}
		a.queries.Add(1)
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM hits").Scan(&n); err != nil && ctx.Err() == nil {
			a.fail(&a.failedQueries, "long-lived query", err)
		}
	}
}

// connect logs in with the config the app's dynos run once a login slot
// is free: a dyno reads its config when it starts, not seconds before it
// connects, so waiting for a slot must not make the test's app stale.
func (a *simApps) connect(ctx context.Context, app, id string) (*pgx.Conn, string, error) {
	select {
	case a.slots <- struct{}{}:
		defer func() { <-a.slots }()
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
	a.logins.Add(1)
	dsn := a.running(app, id)
	c, err := pgx.Connect(ctx, dsn)
	if err != nil && ctx.Err() == nil {
		a.fail(&a.failedLogins, "login", err)
	}
	return c, dsn, err
}

// stop ends the apps and returns their counts.
func (a *simApps) stop() appStats {
	a.cancel()
	a.wg.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	return appStats{logins: a.logins.Load(), queries: a.queries.Load(), failedLogins: a.failedLogins.Load(),
		failedQueries: a.failedQueries.Load(), firstErrors: strings.Join(a.errs, "; ")}
}

func (a *simApps) passwords() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, len(a.seen))
	for p := range a.seen {
		out = append(out, p)
	}
	return out
}
