package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/store"
)

func TestDatabaseLocationIsKeptPerInstance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	if _, err := f.st.Database(ctx, "inst-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Database of an instance without one = %v, want ErrNotFound", err)
	}
	want := store.Database{Server: "main", Name: `odd "name"`, Owner: "inst_1_owner"}
	if err := f.st.SetDatabase(ctx, "inst-1", want); err != nil {
		t.Fatal(err)
	}
	if got, err := f.st.Database(ctx, "inst-1"); err != nil || got != want {
		t.Fatalf("Database = %+v, %v; want %+v", got, err, want)
	}
	for _, tc := range []struct {
		db    store.Database
		names string
	}{
		{store.Database{Server: "Main!", Name: "d", Owner: "o"}, "database.server"},
		{store.Database{Server: "main", Name: "", Owner: "o"}, "database.name"},
		{store.Database{Server: "main", Name: "d", Owner: strings.Repeat("o", 64)}, "database.owner_role"},
		{store.Database{Server: "main", Name: "d\x00", Owner: "o"}, "database.name"},
	} {
		if err := f.st.SetDatabase(ctx, "inst-2", tc.db); err == nil || !strings.Contains(err.Error(), tc.names) {
			t.Errorf("SetDatabase(%+v) = %v, want an error naming %s", tc.db, err, tc.names)
		}
	}
}

// A refused database.server is quoted cut short, not echoed whole: a sender
// may put anything of any size there, and the answer goes back to it.
func TestARefusedDatabaseServerIsQuotedCutShort(t *testing.T) {
	t.Parallel()
	err := store.Database{Server: strings.Repeat("Q", 1<<20), Name: "d", Owner: "o"}.Validate()
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("Validate of a 1 MiB server id: %.80v, want an error under 200 bytes", err)
	}
}
