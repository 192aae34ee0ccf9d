package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/secret"
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
	if err := f.st.PutInstance(ctx, withDatabase("inst-1", want)); err != nil {
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
		if err := f.st.PutInstance(ctx, withDatabase("inst-2", tc.db)); err == nil || !strings.Contains(err.Error(), tc.names) {
			t.Errorf("PutInstance with database %+v = %v, want an error naming %s", tc.db, err, tc.names)
		}
	}
}

// withDatabase is a V3 registration of id with its database location d.
func withDatabase(id string, d store.Database) store.Registration {
	return store.Registration{ID: id, APIVersion: store.APIv3, ConfigVars: []string{"MYADDON_URL"}, Database: &d}
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

// Locations registered before the index of live databases existed join it
// when the clock starts (IndexDatabases): a registration naming one is
// refused from then on, naming its instance. A field whose holder was
// deprovisioned since is taken over, and two live instances that already
// share a database or an owner role are reported, the index keeping the
// first.
func TestIndexDatabasesFillsTheIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	locs := map[string]store.Database{
		"inst-1": {Server: "main", Name: "d1", Owner: "o1"},
		"inst-2": {Server: "main", Name: "d2", Owner: "o2"},
		"inst-3": {Server: "main", Name: "d3", Owner: "o2"},  // inst-2's owner role
		"inst-4": {Server: "other", Name: "d1", Owner: "o1"}, // another server
	}
	for _, id := range []string{"inst-1", "inst-2", "inst-3", "inst-4"} {
		if err := f.st.PutInstance(ctx, withDatabase(id, locs[id])); err != nil {
			t.Fatal(err)
		}
		if err := f.r.Client.Del(ctx, "rekey:databases").Err(); err != nil { // as before the index existed
			t.Fatal(err)
		}
	}
	// A field left to an instance deprovisioned since.
	if err := f.r.Client.HSet(ctx, "rekey:databases", "name:main/d1", "ghost").Err(); err != nil {
		t.Fatal(err)
	}
	shared, err := f.st.IndexDatabases(ctx)
	want := store.DatabaseShared{What: "owner role", Instances: [2]string{"inst-2", "inst-3"}}
	if err != nil || len(shared) != 1 || shared[0] != want {
		t.Fatalf("IndexDatabases = %+v, %v; want inst-2 and inst-3 reported sharing an owner role", shared, err)
	}
	err = f.st.CheckDatabase(ctx, "inst-5", store.Database{Server: "main", Name: "d1", Owner: "o9"})
	var taken *store.DatabaseTakenError
	if !errors.As(err, &taken) || taken.Holder != "inst-1" || taken.What != "database" {
		t.Errorf("a location naming inst-1's database after the reindex: %v, want DatabaseTakenError naming inst-1", err)
	}
	if err := f.st.CheckDatabase(ctx, "inst-5", store.Database{Server: "third", Name: "d1", Owner: "o1"}); err != nil {
		t.Errorf("a location on another server: %v, want it free", err)
	}
}

// The registration's own script checks the location as it stores the
// instance and its tokens, in one step: a registration whose location
// another instance took after the web process's check (its oauth_grant
// being exchanged meanwhile) is refused with nothing stored, rather than
// left registered without it.
func TestARegistrationFindingItsDatabaseTakenStoresNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	d := store.Database{Server: "main", Name: "d1", Owner: "o1"}
	if err := f.st.CheckDatabase(ctx, "inst-b", d); err != nil {
		t.Fatalf("the check before inst-a registers: %v", err)
	}
	if err := f.st.PutInstance(ctx, withDatabase("inst-a", d)); err != nil {
		t.Fatal(err)
	}
	before := redistest.Dump(t, f.r)
	err := f.st.Register(ctx, withDatabase("inst-b", d), &heroku.Token{AccessToken: secret.New("a-tok"),
		RefreshToken: secret.New("r-tok"), ExpiresAt: time.Now().Add(time.Hour)})
	var taken *store.DatabaseTakenError
	if !errors.As(err, &taken) || taken.Holder != "inst-a" {
		t.Fatalf("Register of inst-b on inst-a's location = %v, want DatabaseTakenError naming inst-a", err)
	}
	if after := redistest.Dump(t, f.r); after != before {
		t.Errorf("the refused registration changed Redis:\n%s", after)
	}
}

// A location left behind by an instance whose records expired (its side
// keys not given their expiry: a failed write) is not carried over to a
// new instance registered under the same id without one.
func TestANewInstanceDoesNotInheritALeftoverDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	if err := f.r.Client.Set(ctx, "rekey:database:inst-z", `{"server":"main","name":"old","owner_role":"old_owner"}`, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.r.Client.HSet(ctx, "rekey:databases", "owner:main/old_owner", "inst-z", "name:main/old", "inst-z").Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.st.PutInstance(ctx, store.Registration{ID: "inst-z", APIVersion: store.APIv3, ConfigVars: []string{"MYADDON_URL"}}); err != nil {
		t.Fatal(err)
	}
	if d, err := f.st.Database(ctx, "inst-z"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the new inst-z's database: %+v, %v; want none", d, err)
	}
	if n, _ := f.r.Client.HLen(ctx, "rekey:databases").Result(); n != 0 {
		t.Errorf("the index still holds %d fields of the leftover location", n)
	}
}
