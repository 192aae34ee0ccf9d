package handlers_test

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/issuer/pgissuer"
	"github.com/rekeyhq/rekey/internal/pgtest"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

type oneLocation struct{ loc pgissuer.Location }

func (l oneLocation) Locate(_ context.Context, id string) (pgissuer.Location, error) {
	if id != "inst-1" {
		return pgissuer.Location{}, pgissuer.ErrNoLocation
	}
	return l.loc, nil
}

// gatedMint holds the first Mint until release is closed: the run that
// makes it is slow to reach the server (a connection that stalls, a pool
// busy with revocations), its mint going on past the task's deadline as
// handlers.Rotate lets it (mintTimeout, under context.WithoutCancel).
type gatedMint struct {
	issuer.Issuer
	once          sync.Once
	held, release chan struct{}
	mu            sync.Mutex
	urls          []string
}

func (g *gatedMint) Mint(ctx context.Context, instanceID, rotationID string) (issuer.Credential, error) {
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.held)
		<-g.release
	}
	c, err := g.Issuer.Mint(ctx, instanceID, rotationID)
	if err == nil {
		g.mu.Lock()
		g.urls = append(g.urls, c.Config[issuer.DefaultConfigVar].Reveal())
		g.mu.Unlock()
	}
	return c, err
}

// gatedPostgres has g's workers mint and revoke with rekey's PostgreSQL
// issuer on a database of their own, its first Mint held (gatedMint).
func gatedPostgres(t *testing.T, g *rig) *gatedMint {
	t.Helper()
	db := pgtest.New(t)
	ctx := context.Background()
	owner := db.Name + "_owner"
	for _, s := range []string{"CREATE ROLE " + pgx.Identifier{owner}.Sanitize() + " NOLOGIN",
		"ALTER DATABASE " + pgx.Identifier{db.Name}.Sanitize() + " OWNER TO " + pgx.Identifier{owner}.Sanitize()} {
		if err := pgtest.Exec(ctx, db.ServerURL, s); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = pgtest.Exec(ctx, db.ServerURL, "DROP ROLE IF EXISTS "+pgx.Identifier{owner}.Sanitize()) })
	servers, err := pgissuer.ParseServers([]byte(`{"main":"` + db.ServerURL + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	pg, err := pgissuer.New(pgissuer.Params{Servers: servers, Key: key, Locator: oneLocation{pgissuer.Location{
		Server: "main", Database: db.Name, Owner: owner, ConfigVars: []string{issuer.DefaultConfigVar}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	gate := &gatedMint{Issuer: pg, held: make(chan struct{}), release: make(chan struct{})}
	g.deps.Issuer = gate
	return gate
}

// lateRunBesideAFailedRetry starts run 1 of rotation rotID, whose mint is
// held (slow to reach the server), then runs run 2 (asynq's retry): it
// mints, Heroku refuses the push (422), and the credential is discarded,
// due for revocation. It returns run 1's outcome, to come once gate is
// released, and the rotation.
func lateRunBesideAFailedRetry(t *testing.T, g *rig, gate *gatedMint, rotID string) (<-chan error, store.Rotation) {
	t.Helper()
	first := make(chan error, 1)
	go func() { first <- g.run(rotateTask(t, "inst-1", rotID)) }()
	select {
	case <-gate.held:
	case <-time.After(10 * time.Second):
		t.Fatal("run 1 never minted")
	}
	g.fake.Script(herokufake.PatchConfig, herokufake.Respond(422))
	if err := g.run(rotateTask(t, "inst-1", rotID)); !isPermanent(err) {
		t.Fatalf("run 2 = %v, want the rotation ended", err)
	}
	rot, _ := g.st.Rotation(context.Background(), rotID)
	return first, rot
}

// finishLateRun lets run 1's held mint reach the server and waits for the
// run to end.
func finishLateRun(t *testing.T, gate *gatedMint, first <-chan error) {
	t.Helper()
	close(gate.release)
	select {
	case err := <-first:
		t.Logf("run 1: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("run 1 never ended")
	}
}

// Two runs of one rotation (I6: a timed-out run's mint goes on; asynq's
// retry runs beside it). The retry mints the role, Heroku refuses the push
// (422), the credential is discarded and revoked: the role is dropped. The
// first run's mint then reaches the server, and rekey's PostgreSQL issuer,
// which mints by rotation, creates the role again under the same name and
// password. The store, answered a credential it recorded revoked, makes it
// due for revocation again at once (savePendingScript), and its revocation
// drops the role again: it was recorded revoked while it worked for good
// (I3).
func TestALateMintOfARevokedCredentialIsRevokedAgain(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	ctx := context.Background()
	gate := gatedPostgres(t, g)

	first, rot := lateRunBesideAFailedRetry(t, g, gate, "rot-late-pg")
	c, err := g.st.Credential(ctx, "inst-1", rot.CredentialID)
	if err != nil || c.State != store.CredentialDiscarded {
		t.Fatalf("credential %+v, %v: want it discarded", c, err)
	}
	revoke := g.enq.get(tasks.RevokeTaskID("inst-1", c.ID))
	if revoke == nil {
		t.Fatal("no revoke task")
	}
	if err := g.run(revoke); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	// Run 1's mint reaches the server now.
	finishLateRun(t, gate, first)
	c, _ = g.st.Credential(ctx, "inst-1", c.ID)
	gate.mu.Lock()
	url := gate.urls[0] // run 2's mint, whose role was revoked
	gate.mu.Unlock()
	if c.State != store.CredentialDiscarded || !c.RevokedAt.IsZero() || c.RevokeAt.IsZero() {
		t.Fatalf("credential %s made again by the late mint: %s, revoked at %v, revoke at %v; want discarded, due again",
			c.ID, c.State, c.RevokedAt, c.RevokeAt)
	}
	due, err := g.st.DueRevocations(ctx, time.Now().Add(time.Minute), 10)
	if err != nil || len(due) != 1 || due[0].CredentialID != c.ID {
		t.Fatalf("revocations due: %+v, %v; want %s's, for the reconcile sweep to enqueue", due, err, c.ID)
	}
	// The sweep enqueues its revoke task again; it runs.
	again, err := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: "inst-1", CredentialID: c.ID}, c.RevokeAt)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.run(again); err != nil {
		t.Fatalf("revoke again: %v", err)
	}
	if conn, err := pgx.Connect(ctx, url); err == nil {
		conn.Close(ctx)
		t.Errorf("credential %s revoked again, and its role still logs in", c.ID)
	}
	if c, _ = g.st.Credential(ctx, "inst-1", c.ID); c.RevokedAt.IsZero() {
		t.Errorf("credential %s is %s, not recorded revoked after its second revocation", c.ID, c.State)
	}
}

// slowMark holds a Revoke's return (the issuer has dropped the role; the
// task has not yet recorded it) until release is closed; dropped is
// closed once the first Revoke returned from the issuer.
type slowMark struct {
	*gatedMint
	dropped, release chan struct{}
	once             sync.Once
}

func (s *slowMark) Revoke(ctx context.Context, instanceID, credID string) error {
	err := s.gatedMint.Revoke(ctx, instanceID, credID)
	s.once.Do(func() { close(s.dropped) })
	<-s.release
	return err
}

// The same late mint, saved between the issuer's DROP ROLE and the revoke
// task's record of it: the mint found the credential still waiting, and
// marked it (reminted_at), so the task's record leaves it due again
// (store.ErrMintedAgain, the task retried) instead of recording revoked a
// role the mint made anew; the next run drops it and records it (I3).
func TestALateMintDuringTheRevocationIsRevokedAgain(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	ctx := context.Background()
	gate := gatedPostgres(t, g)
	iss := &slowMark{gatedMint: gate, dropped: make(chan struct{}), release: make(chan struct{})}
	g.deps.Issuer = iss

	first, rot := lateRunBesideAFailedRetry(t, g, gate, "rot-late-pg-race")
	revoke := g.enq.get(tasks.RevokeTaskID("inst-1", rot.CredentialID))
	revoked := make(chan error, 1)
	go func() { revoked <- g.run(revoke) }()
	<-iss.dropped // the role is dropped, not yet recorded
	finishLateRun(t, gate, first)
	close(iss.release)
	if err := <-revoked; !errors.Is(err, store.ErrMintedAgain) {
		t.Fatalf("revoke = %v, want it retried as minted again", err)
	}
	c, _ := g.st.Credential(ctx, "inst-1", rot.CredentialID)
	due, _ := g.st.DueRevocations(ctx, time.Now().Add(time.Minute), 10)
	if !c.RevokedAt.IsZero() || len(due) != 1 {
		t.Fatalf("credential %s: %s, revoked at %v, %d revocations due; want it due again", c.ID, c.State, c.RevokedAt, len(due))
	}
	if err := g.run(revoke); err != nil {
		t.Fatalf("revoke again: %v", err)
	}
	gate.mu.Lock()
	url := gate.urls[0]
	gate.mu.Unlock()
	if conn, err := pgx.Connect(ctx, url); err == nil {
		conn.Close(ctx)
		t.Errorf("credential %s revoked again, and its role still logs in", c.ID)
	}
	if c, _ = g.st.Credential(ctx, "inst-1", c.ID); c.RevokedAt.IsZero() {
		t.Errorf("credential %s is %s, not recorded revoked after its second revocation", c.ID, c.State)
	}
}
