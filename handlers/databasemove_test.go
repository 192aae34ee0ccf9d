package handlers_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/store"
)

// locatingIssuer is the demo issuer, which mints by rotation id as the
// PostgreSQL issuer does (a second Mint of one rotation answers the
// credential the first made), noting the database location each
// credential was first minted on, as the PostgreSQL issuer's role mark
// does. after runs once the i-th Mint call (from 0) made its credential;
// an error from it is that call's answer (the answer lost).
type locatingIssuer struct {
	*issuer.Demo
	st    *store.Store
	after func(call int) error

	mu     sync.Mutex
	calls  int
	minted map[string]store.Database
}

func (l *locatingIssuer) Mint(ctx context.Context, instanceID, rotationID string) (issuer.Credential, error) {
	l.mu.Lock()
	call := l.calls
	l.calls++
	l.mu.Unlock()
	db, err := l.st.Database(ctx, instanceID) // where a PostgreSQL mint goes
	if err != nil {
		return issuer.Credential{}, err
	}
	cred, err := l.Demo.Mint(ctx, instanceID, rotationID)
	if err != nil {
		return cred, err
	}
	l.mu.Lock()
	if _, ok := l.minted[cred.ID]; !ok {
		l.minted[cred.ID] = db
	}
	l.mu.Unlock()
	if err := l.after(call); err != nil {
		return issuer.Credential{}, err
	}
	return cred, nil
}

func (l *locatingIssuer) mintedOn(id string) store.Database {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.minted[id]
}

// errAnswerLost is a mint whose answer never came back (a timeout, a reset
// connection) after the issuer made the credential: the run is retried.
var errAnswerLost = errors.New("mint: connection reset by peer")

// moveRig registers inst-1 on location a and mints through a
// locatingIssuer calling after; move registers it again on another.
func moveRig(t *testing.T, a store.Database, after func(g *rig, call int) error) (g *rig, iss *locatingIssuer, move func(store.Database)) {
	t.Helper()
	g = newRig(t)
	in := registry.Input{ID: "inst-1", APIVersion: store.APIv3, ConfigVars: []string{issuer.DefaultConfigVar}}
	move = func(d store.Database) {
		in.Database = &d
		if err := g.reg.Put(context.Background(), in); err != nil {
			t.Errorf("registering on %+v: %v", d, err)
		}
	}
	move(a)
	iss = &locatingIssuer{Demo: g.demo, st: g.st, minted: map[string]store.Database{},
		after: func(call int) error { return after(g, call) }}
	g.deps.Issuer = iss
	return g, iss, move
}

// wantNotPushed fails t unless rot-1 failed for its registration change
// with nothing sent to Heroku.
func wantNotPushed(t *testing.T, g *rig, iss *locatingIssuer, err error, to store.Database) {
	t.Helper()
	r, _ := g.st.Rotation(context.Background(), "rot-1")
	if g.pushes() != 0 || r.State != store.RotationFailed || !strings.Contains(r.Error, "database") {
		t.Errorf("run = %v; rotation %s (%s): %d pushes of %s, minted on %+v after the instance moved to %+v; "+
			"want it failed, nothing sent", err, r.State, r.Error, g.pushes(), r.CredentialID, iss.mintedOn(r.CredentialID), to)
	}
}

// A rotation whose first run's mint made the credential on the old
// location but whose answer was lost stays requested; retried after a
// registration moved the instance, the issuer answers the credential it
// made on the old location (it mints by rotation id). The count the
// rotation's first run noted stands: the push is not sent.
func TestARetryAfterALostMintAnswerDoesNotPushTheOldLocationsCredential(t *testing.T) {
	t.Parallel()
	a := store.Database{Server: "main", Name: "db_a", Owner: "owner_a"}
	b := store.Database{Server: "main", Name: "db_a", Owner: "owner_b"}
	g, iss, move := moveRig(t, a, func(_ *rig, call int) error {
		if call == 0 {
			return errAnswerLost
		}
		return nil
	})
	if err := g.run(rotateTask(t, "inst-1", "rot-1")); err == nil || isPermanent(err) {
		t.Fatalf("run 1 = %v, want it retried", err)
	}
	if r, _ := g.st.Rotation(context.Background(), "rot-1"); r.State != store.RotationRequested {
		t.Fatalf("rotation %s after the lost answer, want requested", r.State)
	}
	move(b)
	err := g.run(rotateTask(t, "inst-1", "rot-1")) // asynq's retry
	wantNotPushed(t, g, iss, err, b)
}

// Two runs of one rotation at once (I6): run 1's mint is at the issuer,
// on the old location, when the partner moves the instance; run 2 (the
// retry of a run that seemed lost) claims the rotation, still requested,
// and its own mint fails. Run 1's answer comes back: its push is not sent.
func TestASecondRunsClaimDoesNotLetTheFirstPushTheOldLocationsCredential(t *testing.T) {
	t.Parallel()
	a := store.Database{Server: "main", Name: "db_a", Owner: "owner_a"}
	b := store.Database{Server: "main", Name: "db_b", Owner: "owner_b"}
	var move func(store.Database)
	g, iss, move := moveRig(t, a, func(g *rig, call int) error {
		switch call {
		case 0:
			move(b)
			if err := g.run(rotateTask(t, "inst-1", "rot-1")); err == nil {
				t.Error("run 2 succeeded, want its mint failed")
			}
		case 1:
			return errAnswerLost
		}
		return nil
	})
	err := g.run(rotateTask(t, "inst-1", "rot-1"))
	wantNotPushed(t, g, iss, err, b)
}
