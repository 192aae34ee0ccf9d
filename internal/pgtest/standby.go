package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// WithStandby starts a private server for t, as Another does, and a
// streaming hot standby of it on another loopback port, both stopped (and
// their files removed) when t ends: for tests of what a URL that reaches a
// server in recovery does. primary is a database made on the primary before
// the standby was copied from it, so standby is the same database there,
// reached as the same admin role with the same password. The standby
// replays the primary's changes asynchronously: PauseReplay holds it at a
// point, CatchUp waits for it. It skips or fails t as Another does.
func WithStandby(t testing.TB) (primary, standby *DB) {
	t.Helper()
	primary = Another(t)
	src, err := startStandby(primary)
	if err != nil {
		if os.Getenv("REKEY_TEST_POSTGRES_REQUIRED") != "" {
			t.Fatalf("pgtest: REKEY_TEST_POSTGRES_REQUIRED is set and no standby could be started: %v", err)
		}
		fmt.Fprintf(os.Stderr, "\n*** pgtest: NO POSTGRESQL STANDBY: %v; skipping ***\n\n", err)
		t.Skipf("pgtest: no standby: %v", err)
	}
	t.Cleanup(src.stop)
	u := src.url
	return primary, &DB{Name: primary.Name, URL: src.urlFor(primary.Name), ServerURL: u.String(), Host: u.Hostname(), Port: u.Port()}
}

// PauseReplay stops the standby's replay where it is: what the primary
// does from then on is not seen on the standby, as under a long
// replication lag, until CatchUp.
func PauseReplay(t testing.TB, standby *DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Exec(ctx, standby.ServerURL, "SELECT pg_catalog.pg_wal_replay_pause()"); err != nil {
		t.Fatalf("pgtest: pause the standby's replay: %v", err)
	}
}

// CatchUp resumes the standby's replay and waits until it has replayed all
// the primary had committed when CatchUp was called. The private servers
// run with synchronous_commit=off, so a commit may still be in the
// primary's WAL buffers, past pg_current_wal_lsn (what is written): the
// wait is for the insert position.
func CatchUp(t testing.TB, primary, standby *DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var lsn string
	if err := queryRow(ctx, primary.ServerURL, "SELECT pg_catalog.pg_current_wal_insert_lsn()::text", &lsn); err != nil {
		t.Fatalf("pgtest: read the primary's position: %v", err)
	}
	if err := Exec(ctx, standby.ServerURL, "SELECT pg_catalog.pg_wal_replay_resume() WHERE pg_catalog.pg_is_wal_replay_paused()"); err != nil {
		t.Fatalf("pgtest: resume the standby's replay: %v", err)
	}
	for {
		var done bool
		err := queryRow(ctx, standby.ServerURL, "SELECT pg_catalog.pg_last_wal_replay_lsn() >= $1::pg_lsn", &done, lsn)
		if err == nil && done {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("pgtest: the standby did not replay up to %s within 30s (last error: %v)", lsn, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// startStandby copies primary's server with pg_basebackup -R (which writes
// standby.signal and the primary_conninfo to stream from) and runs the
// copy. initdb's pg_hba.conf already lets the admin role, a superuser,
// replicate over loopback TCP with its password, and the private servers'
// defaults (wal_level replica, max_wal_senders 10, hot_standby on) are
// what streaming replication needs.
func startStandby(primary *DB) (*source, error) {
	bin, dir, cred, err := prepare("pgtest-standby-")
	if err != nil {
		return nil, err
	}
	password := parsePassword(primary.ServerURL)
	cmd := exec.Command(filepath.Join(bin, "pg_basebackup"), "-D", filepath.Join(dir, "data"), "-R",
		"-h", primary.Host, "-p", primary.Port, "-U", adminRole, "--checkpoint=fast", "--no-sync", "-X", "stream")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_basebackup: %w: %s", err, out)
	}
	return serve(bin, dir, password, cred)
}

// parsePassword is the password in a URL pgtest made.
func parsePassword(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}

// queryRow scans one row of sql on a fresh connection to dsn into dest.
func queryRow(ctx context.Context, dsn, sql string, dest any, args ...any) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(ctx, sql, args...).Scan(dest)
}
