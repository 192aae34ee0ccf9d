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
