// Package pgtest gives tests a real PostgreSQL database of their own.
//
// Where PostgreSQL comes from, in order:
//  1. REKEY_TEST_POSTGRES_URL, when set: that server, reached as a superuser
//     (or a role with CREATEDB and CREATEROLE); each test gets a database of
//     its own on it.
//  2. A private server started with initdb and postgres from
//     /usr/lib/postgresql/*/bin on a free loopback port, once per test
//     binary. It dies with the test binary (Pdeathsig); a TestMain that calls
//     Stop also removes its files.
//  3. Nothing: the test is skipped with a loud notice, or fails when
//     REKEY_TEST_POSTGRES_REQUIRED is set (CI sets it), so CI always proves
//     the code against a real server.
//
// Every test gets a database no other test uses, dropped when it ends.
package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DB is one test's database.
type DB struct {
	// Name is the database's name.
	Name string
	// URL reaches Name as the server's admin role (a postgres:// URL with
	// sslmode=disable).
	URL string
	// ServerURL reaches the server's maintenance database as the admin role.
	ServerURL string
	// Host and Port are where the server listens.
	Host string
	Port string
}

var (
	serverOnce sync.Once
	server     *source
	serverErr  error
	nextDB     atomic.Int64
)

// source is the server that hands out databases.
type source struct {
	url  *url.URL
	kind string
	stop func()
}

// New creates a fresh database for t and returns it; it is dropped when t
// ends. It skips t when no PostgreSQL can be had, or fails it when
// REKEY_TEST_POSTGRES_REQUIRED is set.
func New(t testing.TB) *DB {
	t.Helper()
	src := Server(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := fmt.Sprintf("rekeytest_%d_%d", os.Getpid(), nextDB.Add(1))
	if err := Exec(ctx, src.ServerURL, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = Exec(ctx, src.ServerURL, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})
	db := *src
	db.Name = name
	db.URL = server.urlFor(name)
	return &db
}

// Server returns the server without creating a database: Name and URL are
// the maintenance database's. It skips or fails t as New does.
func Server(t testing.TB) *DB {
	t.Helper()
	serverOnce.Do(func() { server, serverErr = start() })
	if serverErr != nil {
		if os.Getenv("REKEY_TEST_POSTGRES_REQUIRED") != "" {
			t.Fatalf("pgtest: REKEY_TEST_POSTGRES_REQUIRED is set and no PostgreSQL is available: %v", serverErr)
		}
		fmt.Fprintf(os.Stderr, "\n*** pgtest: NO POSTGRESQL: %v; skipping (set REKEY_TEST_POSTGRES_URL or install postgresql) ***\n\n", serverErr)
		t.Skipf("pgtest: no PostgreSQL: %v", serverErr)
	}
	u := server.url
	name := strings.TrimPrefix(u.Path, "/")
	return &DB{Name: name, URL: u.String(), ServerURL: u.String(), Host: u.Hostname(), Port: u.Port()}
}

// Another starts a private server for t alone, apart from the one New and
// Server share, and stops it (removing its files) when t ends: for tests of
// more than one server, whose roles, unlike databases, one server cannot
// keep apart. It needs initdb and postgres even when REKEY_TEST_POSTGRES_URL
// is set, and skips or fails t as New does without them. It returns a
// database made on that server for t, dropped with the server.
func Another(t testing.TB) *DB {
	t.Helper()
	src, err := startPrivate()
	if err != nil {
		if os.Getenv("REKEY_TEST_POSTGRES_REQUIRED") != "" {
			t.Fatalf("pgtest: REKEY_TEST_POSTGRES_REQUIRED is set and no second PostgreSQL could be started: %v", err)
		}
		fmt.Fprintf(os.Stderr, "\n*** pgtest: NO SECOND POSTGRESQL: %v; skipping ***\n\n", err)
		t.Skipf("pgtest: no second PostgreSQL: %v", err)
	}
	t.Cleanup(src.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := fmt.Sprintf("rekeytest_%d_%d", os.Getpid(), nextDB.Add(1))
	if err := Exec(ctx, src.url.String(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	u := src.url
	return &DB{Name: name, URL: src.urlFor(name), ServerURL: u.String(), Host: u.Hostname(), Port: u.Port()}
}

// Stop stops the private server, if this binary started one, and removes
// its files. Call it from TestMain after m.Run; without it the server still
// dies with the test binary.
func Stop() {
	if server != nil && server.stop != nil {
		server.stop()
	}
}

// Exec runs one statement on a fresh connection to dsn.
func Exec(ctx context.Context, dsn, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

func start() (*source, error) {
	if raw := os.Getenv("REKEY_TEST_POSTGRES_URL"); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return nil, fmt.Errorf("REKEY_TEST_POSTGRES_URL is not a postgres:// URL")
		}
		if err := ping(u.String(), 10*time.Second); err != nil {
			return nil, fmt.Errorf("REKEY_TEST_POSTGRES_URL does not answer: %w", err)
		}
		return &source{url: u, kind: "REKEY_TEST_POSTGRES_URL"}, nil
	}
	return startPrivate()
}

// urlFor is the source's URL with another database.
func (s *source) urlFor(name string) string {
	u := *s.url
	u.Path = "/" + name
	return u.String()
}

func ping(dsn string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var last error
	for {
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			return conn.Close(ctx)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
