package pgissuer_test

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rekeyhq/rekey/internal/issuer/pgissuer"
	"github.com/rekeyhq/rekey/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// testKey is the derivation key of the tests that mint no role. A fixture
// draws its own (newFixture).
var testKey = []byte(strings.Repeat("k", 32))

// locations is a Locator over a map, safe for concurrent use.
type locations struct {
	mu sync.Mutex
	m  map[string]pgissuer.Location
}

func (l *locations) Locate(_ context.Context, id string) (pgissuer.Location, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	loc, ok := l.m[id]
	if !ok {
		return pgissuer.Location{}, pgissuer.ErrNoLocation
	}
	return loc, nil
}

var _ pgissuer.Locator = (*locations)(nil)

// fixture is one test's database with its owner role and an issuer.
type fixture struct {
	db   *pgtest.DB
	iss  *pgissuer.Issuer
	locs *locations
	loc  pgissuer.Location
	key  []byte
}

// newFixture creates a database owned by a NOLOGIN group role, registered
// as instance "inst-1" with DATABASE_URL and split vars.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	return fixtureOn(t, pgtest.New(t))
}

// fixtureOn is newFixture on db.
func fixtureOn(t testing.TB, db *pgtest.DB) *fixture {
	t.Helper()
	owner := db.Name + "_owner"
	ctx := context.Background()
	mustExec(t, db.ServerURL, "CREATE ROLE "+pgx.Identifier{owner}.Sanitize()+" NOLOGIN")
	t.Cleanup(func() { _ = pgtest.Exec(ctx, db.ServerURL, "DROP ROLE IF EXISTS "+pgx.Identifier{owner}.Sanitize()) })
	mustExec(t, db.ServerURL, "ALTER DATABASE "+pgx.Identifier{db.Name}.Sanitize()+" OWNER TO "+pgx.Identifier{owner}.Sanitize())
	mustExec(t, db.URL, "ALTER SCHEMA public OWNER TO "+pgx.Identifier{owner}.Sanitize())
	loc := pgissuer.Location{Server: "main", Database: db.Name, Owner: owner,
		ConfigVars: []string{"DATABASE_URL", "DATABASE_USER", "DATABASE_PASSWORD", "DATABASE_HOST", "DATABASE_PORT", "DATABASE_NAME"}}
	locs := &locations{m: map[string]pgissuer.Location{"inst-1": loc}}
	servers, err := pgissuer.ParseServers([]byte(`{"main":"` + db.ServerURL + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	// Roles are the server's, not the database's: a key of the fixture's own
	// keeps a test's role names apart from those an earlier run of it
	// (go test -count) left on the same server.
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	iss, err := pgissuer.New(pgissuer.Params{Servers: servers, Locator: locs, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(iss.Close)
	return &fixture{db: db, iss: iss, locs: locs, loc: loc, key: key}
}

func mustExec(t testing.TB, dsn, sql string, args ...any) {
	t.Helper()
	if err := pgtest.Exec(context.Background(), dsn, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// connect opens a connection with a credential's URL.
func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connect with the credential: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// roleCount counts roles whose name starts with prefix.
func roleCount(t testing.TB, dsn, prefix string) int {
	t.Helper()
	conn := connect(t, dsn)
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_roles WHERE starts_with(rolname, $1)", prefix).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFor polls cond until it holds or five seconds pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
