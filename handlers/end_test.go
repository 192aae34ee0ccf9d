package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// checkDiscarded checks a rotation that ended before any push: failed,
// its credential discarded and queued for revocation, the instance's
// current credential kept and nothing written to Heroku.
func (g *rig) checkDiscarded(t *testing.T, rotationID, current string) store.Rotation {
	t.Helper()
	ctx := context.Background()
	rot, _ := g.st.Rotation(ctx, rotationID)
	c, err := g.st.Credential(ctx, "inst-1", rot.CredentialID)
	if rot.State != store.RotationFailed || err != nil || c.State != store.CredentialDiscarded {
		t.Fatalf("rotation %s, credential %+v (%v); want failed and discarded", rot.State, c, err)
	}
	if g.enq.get(tasks.RevokeTaskID("inst-1", c.ID)) == nil {
		t.Error("discarded credential not queued for revocation")
	}
	if in, _ := g.st.Instance(context.Background(), "inst-1"); in.CurrentCredential != current {
		t.Errorf("current credential %s, want %s kept", in.CurrentCredential, current)
	}
	if n := g.fake.ConfigWrites("inst-1"); n != 0 {
		t.Errorf("Heroku config writes: %d, want none", n)
	}
	return rot
}

// Issue 8, case 1: a credential that does not name exactly the registered
// config vars is never pushed; the failure names the difference.
func TestRotateRefusesAConfigThatDoesNotMatchTheRegisteredVars(t *testing.T) {
	t.Parallel()
	extra := issuer.WithConfigVars(func(string) []string { return []string{issuer.DefaultConfigVar, "MYADDON_EXTRA"} })
	for _, tc := range []struct {
		name string
		demo []issuer.DemoOption
		vars []string // registered again with these, when set
		want string
	}{
		{"missing", nil, []string{issuer.DefaultConfigVar, "MYADDON_PASSWORD"}, "missing MYADDON_PASSWORD"},
		{"extra", []issuer.DemoOption{extra}, nil, `extra "MYADDON_EXTRA"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			g := newRig(t, tc.demo...)
			before, _ := g.st.Instance(ctx, "inst-1")
			if tc.vars != nil {
				if err := g.st.PutInstance(ctx, store.Registration{ID: "inst-1", APIVersion: store.APIv3, ConfigVars: tc.vars}); err != nil {
					t.Fatal(err)
				}
			}
			err := g.run(rotateTask(t, "inst-1", "rot-m"))
			if !isPermanent(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want permanent, naming %s", err, tc.want)
			}
			rot := g.checkDiscarded(t, "rot-m", before.CurrentCredential)
			if !strings.Contains(rot.Error, tc.want) {
				t.Errorf("recorded failure %q does not name %s", rot.Error, tc.want)
			}
			if n := len(g.fake.Calls(herokufake.PatchConfig)); n != 0 {
				t.Errorf("%d PATCH calls, want none", n)
			}
		})
	}
}

// leakyHeroku plays a Heroku client that lets a value it was sent into its
// error text, as an echoing error body would without the client's own
// scrubbing: the handlers must scrub it themselves (defence in depth).
type leakyHeroku struct {
	handlers.Heroku
	status int
}

func (h *leakyHeroku) UpdateConfig(_ context.Context, _ heroku.Target, vars []heroku.ConfigVar) error {
	var echoed []string
	for _, v := range vars {
		echoed = append(echoed, v.Value.Reveal())
	}
	return &heroku.APIError{Status: h.status, ID: "invalid_params", Endpoint: heroku.EndpointPatchConfig,
		Message: "Config rejected: " + strings.Join(echoed, ", ") + strings.Repeat(" padding", 100)}
}

// Issue 8, case 2: error text echoing the pushed values is scrubbed and
// capped before it reaches the task's error, the rotation, the instance's
// last error or an event.
func TestRotateScrubsEchoedValues(t *testing.T) {
	t.Parallel()
	for _, status := range []int{422, 503} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			g := newRig(t)
			g.deps.Heroku = &leakyHeroku{Heroku: g.deps.Heroku, status: status}
			err := g.run(rotateTask(t, "inst-1", "rot-s"))
			if err == nil {
				t.Fatal("rotation succeeded, want the echoing error")
			}
			rot, _ := g.st.Rotation(ctx, "rot-s")
			cfg, _ := g.demo.Mint(ctx, "inst-1", "rot-s") // the same credential again
			value := cfg.Config[issuer.DefaultConfigVar].Reveal()
			in, _ := g.st.Instance(ctx, "inst-1")
			events, _ := g.st.Events(ctx, "inst-1", 100)
			texts := map[string]string{"task error": err.Error(), "rotation error": rot.Error,
				"last error": in.LastError, "events": fmt.Sprintf("%+v", events)}
			for place, text := range texts {
				if strings.Contains(text, value) || strings.Contains(text, passwordOf(value)) {
					t.Errorf("%s holds the pushed value: %s", place, text)
				}
			}
			if !strings.Contains(texts["events"], secret.Redacted) {
				t.Errorf("events lack the redaction, so the capture is broken: %s", texts["events"])
			}
			if len(err.Error()) > 600 || len(rot.Error) > 310 {
				t.Errorf("texts not capped: task error %d bytes, rotation error %d", len(err.Error()), len(rot.Error))
			}
		})
	}
}

// passwordOf is the password of a demo credential's URL.
func passwordOf(v string) string {
	_, rest, _ := strings.Cut(strings.TrimPrefix(v, "postgres://"), ":")
	pw, _, _ := strings.Cut(rest, "@")
	return pw
}

// Issue 8, case 3: a 403 fails the rotation but never deprovisions or
// quarantines an instance whose add-on Heroku still has: tokens and
// registration stay, and the next rotation succeeds.
func TestRotateForbiddenKeepsTheInstanceRotatable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	before, _ := g.st.Instance(ctx, "inst-1")
	g.fake.Script(herokufake.PatchConfig, herokufake.Respond(403))
	if err := g.run(rotateTask(t, "inst-1", "rot-1")); !isPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	g.checkDiscarded(t, "rot-1", before.CurrentCredential) // the config, read back, lacks it
	in, _ := g.st.Instance(ctx, "inst-1")
	if _, err := g.st.LoadToken(ctx, "inst-1"); err != nil || in.Deprovisioned() || in.Quarantined() {
		t.Fatalf("after a 403: tokens %v, deprovisioned %v, quarantined %v; want kept, live, not set aside", err, in.Deprovisioned(), in.Quarantined())
	}
	if err := g.run(rotateTask(t, "inst-1", "rot-2")); err != nil {
		t.Fatalf("next rotation: %v", err)
	}
}

// When neither the push nor the read-back nor the add-on's state can be
// had (an account-wide 403), nobody can tell whether Heroku holds the
// credential: it is kept unconfirmed and unrevoked (I1), and the next
// successful rotation makes it previous, to be revoked after its grace.
func TestRotateForbiddenEverywhereKeepsThePushUnconfirmed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	g.fake.Script(herokufake.PatchConfig, herokufake.Respond(403))
	g.fake.Script(herokufake.GetConfig, herokufake.Respond(403))
	g.fake.Script(herokufake.GetAddon, herokufake.Respond(403))
	if err := g.run(rotateTask(t, "inst-1", "rot-1")); !isPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	rot, _ := g.st.Rotation(ctx, "rot-1")
	c, _ := g.st.Credential(ctx, "inst-1", rot.CredentialID)
	if rot.State != store.RotationFailed || c.State != store.CredentialUnconfirmed || !g.demo.Valid(c.ID) {
		t.Fatalf("rotation %s, credential %s (valid %v); want failed, unconfirmed and valid", rot.State, c.State, g.demo.Valid(c.ID))
	}
	if g.enq.get(tasks.RevokeTaskID("inst-1", c.ID)) != nil {
		t.Error("a credential Heroku may hold was queued for revocation")
	}
	if in, _ := g.st.Instance(ctx, "inst-1"); in.Quarantined() || in.Deprovisioned() {
		t.Errorf("instance quarantined %v, deprovisioned %v; want neither on an unconfirmed 403", in.Quarantined(), in.Deprovisioned())
	}
	if err := g.run(rotateTask(t, "inst-1", "rot-2")); err != nil {
		t.Fatalf("next rotation: %v", err)
	}
	if c, _ = g.st.Credential(ctx, "inst-1", c.ID); c.State != store.CredentialPrevious {
		t.Errorf("unconfirmed credential after the next rotation: %s, want previous", c.State)
	}
	if g.enq.get(tasks.RevokeTaskID("inst-1", c.ID)) == nil {
		t.Error("no revoke task scheduled for the superseded unconfirmed credential")
	}
}

// Issue 8, case 6: a rotation that can never push (its token cannot be
// opened) ends: no push attempt recorded, the pending credential discarded
// and revoked, the instance quarantined with the reason, and a new request
// starts a new rotation instead of joining the dead one.
func TestDeadRotationEnds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	before, _ := g.st.Instance(ctx, "inst-1")
	// Sealed under a key this process does not have.
	if err := g.st.Redis().Set(ctx, "rekey:oauth:inst-1", "v1.garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := g.run(rotateTask(t, "inst-1", "rot-d")); !isPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	if rot := g.checkDiscarded(t, "rot-d", before.CurrentCredential); rot.PushAttempted {
		t.Error("a push that never left was recorded as attempted")
	}
	in, _ := g.st.Instance(ctx, "inst-1")
	if !in.Quarantined() || !strings.Contains(in.QuarantineReason, "REKEY_ENCRYPTION_KEYS") {
		t.Errorf("quarantined %v for %q; want quarantined naming REKEY_ENCRYPTION_KEYS", in.Quarantined(), in.QuarantineReason)
	}
	if c, err := g.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-new"}); err != nil || c.Status != store.Claimed {
		t.Errorf("new request: %+v, %v; want a new rotation claimed", c.Status, err)
	}
}

// deprovisioningIssuer deprovisions the instance (the partner's DELETE)
// between the claim and the push.
type deprovisioningIssuer struct {
	issuer.Issuer
	st *store.Store
}

func (i *deprovisioningIssuer) Mint(ctx context.Context, instanceID, rotationID string) (issuer.Credential, error) {
	c, err := i.Issuer.Mint(ctx, instanceID, rotationID)
	if err == nil {
		err = i.st.Deprovision(ctx, instanceID)
	}
	return c, err
}

func TestRotationOfAnInstanceDeprovisionedMeanwhileEnds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	before, _ := g.st.Instance(ctx, "inst-1")
	g.deps.Issuer = &deprovisioningIssuer{Issuer: g.demo, st: g.st}
	if err := g.run(rotateTask(t, "inst-1", "rot-x")); !isPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	g.checkDiscarded(t, "rot-x", before.CurrentCredential)
	if _, err := g.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-new"}); !errors.Is(err, store.ErrDeprovisioned) {
		t.Errorf("new request: %v, want ErrDeprovisioned", err)
	}
}

// endedMeanwhile fails the rotation, as another run of it would, just
// before this run records its push attempt.
type endedMeanwhile struct{ *store.Store }

func (s *endedMeanwhile) MarkPushAttempt(ctx context.Context, rotationID string, to store.PushTarget) error {
	if _, err := s.Store.Fail(ctx, "inst-1", rotationID, "verify:issuer_422", "verify: refused"); err != nil {
		return err
	}
	return s.Store.MarkPushAttempt(ctx, rotationID, to)
}

// A push whose rotation another run ended meanwhile is never sent: the
// credential may have been discarded (and revoked) already.
func TestPushOfARotationEndedMeanwhileIsNotSent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	before, _ := g.st.Instance(ctx, "inst-1")
	g.deps.Store = &endedMeanwhile{Store: g.st}
	if err := g.run(rotateTask(t, "inst-1", "rot-e")); err != nil {
		t.Fatalf("run = %v, want nil: the rotation was finished by another run", err)
	}
	g.checkDiscarded(t, "rot-e", before.CurrentCredential)
	if n := len(g.fake.Calls(herokufake.PatchConfig)); n != 0 {
		t.Errorf("%d PATCH calls reached Heroku, want none", n)
	}
}

// unsettled never records that a push got its answer, as when another run
// of the rotation has a push still on its way.
type unsettled struct{ *store.Store }

func (s *unsettled) SettlePush(context.Context, string, int) error { return errors.New("redis away") }

// A read-back while a push is unanswered proves nothing: the push may land
// after it. The refused credential is kept unconfirmed, not discarded.
func TestReadBackDuringAnUnansweredPushProvesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	g.deps.Store = &unsettled{Store: g.st}
	g.fake.Script(herokufake.PatchConfig, herokufake.Respond(422))
	if err := g.run(rotateTask(t, "inst-1", "rot-u")); !isPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	rot, _ := g.st.Rotation(ctx, "rot-u")
	c, _ := g.st.Credential(ctx, "inst-1", rot.CredentialID)
	if c.State != store.CredentialUnconfirmed || rot.Unconfirmed != c.ID || !g.demo.Valid(c.ID) {
		t.Fatalf("credential %s (valid %v), rotation keeps %q; want unconfirmed, valid, named", c.State, g.demo.Valid(c.ID), rot.Unconfirmed)
	}
}
