package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

func TestNewGivesEachTestItsOwnDatabase(t *testing.T) {
	a, b := New(t), New(t)
	if a.Name == b.Name {
		t.Fatalf("two tests share database %s", a.Name)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, a.URL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var name string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
		t.Fatalf("query: %v", err)
	}
	if name != a.Name {
		t.Fatalf("connected to %s, want %s", name, a.Name)
	}
}

func TestPasswordsAreChecked(t *testing.T) {
	if os.Getenv("REKEY_TEST_POSTGRES_URL") != "" {
		t.Skip("the server's authentication is not ours to know")
	}
	db := New(t)
	cfg, err := pgx.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = "wrong"
	if conn, err := pgx.ConnectConfig(context.Background(), cfg); err == nil {
		conn.Close(context.Background())
		t.Fatal("a wrong password logged in: the private server must check passwords")
	}
}

func TestWithStandbyReplaysThePrimaryUntilPaused(t *testing.T) {
	primary, standby := WithStandby(t)
	ctx := context.Background()
	var inRecovery bool
	if err := queryRow(ctx, standby.URL, "SELECT pg_is_in_recovery()", &inRecovery); err != nil || !inRecovery {
		t.Fatalf("the standby is in recovery: %v (%v), want true", inRecovery, err)
	}
	if err := Exec(ctx, primary.URL, "CREATE TABLE replayed (x int)"); err != nil {
		t.Fatal(err)
	}
	CatchUp(t, primary, standby)
	PauseReplay(t, standby)
	if err := Exec(ctx, primary.URL, "CREATE TABLE unseen (x int)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := queryRow(ctx, standby.URL, "SELECT count(*) FROM pg_tables WHERE tablename IN ('replayed', 'unseen')", &n); err != nil || n != 1 {
		t.Fatalf("the paused standby has %d of the two tables (%v), want the one made before the pause", n, err)
	}
	CatchUp(t, primary, standby)
	if err := queryRow(ctx, standby.URL, "SELECT count(*) FROM pg_tables WHERE tablename IN ('replayed', 'unseen')", &n); err != nil || n != 2 {
		t.Fatalf("the caught-up standby has %d of the two tables (%v), want both", n, err)
	}
}

// The private servers commit without waiting for the WAL to be written
// (synchronous_commit=off): a commit just made may still be in the
// primary's WAL buffers, behind pg_current_wal_lsn(), and CatchUp must wait
// for it all the same.
func TestCatchUpWaitsForACommitNotYetWritten(t *testing.T) {
	primary, standby := WithStandby(t)
	ctx := context.Background()
	PauseReplay(t, standby)
	if err := Exec(ctx, primary.URL, "CREATE TABLE written (x int)"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if i > 0 {
			if err := Exec(ctx, primary.URL, "INSERT INTO written SELECT $1", i); err != nil {
				t.Fatal(err)
			}
		}
		CatchUp(t, primary, standby)
		var n int
		if err := queryRow(ctx, standby.URL, "SELECT count(*) FROM written", &n); err != nil || n != i {
			t.Fatalf("after CatchUp the standby has %d of the %d rows committed (%v)", n, i, err)
		}
	}
}
