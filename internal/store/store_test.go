package store_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

type fixture struct {
	st  *store.Store
	r   *redistest.Redis
	now time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	r := redistest.New(t)
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{r: r, now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	f.st = store.New(r.Client, sealer, store.WithClock(func() time.Time { return f.now }))
	return f
}

func (f *fixture) register(t *testing.T, id, current string) {
	t.Helper()
	err := f.st.PutInstance(context.Background(), store.Registration{ID: id, APIVersion: store.APIv3,
		ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: current})
	if err != nil {
		t.Fatal(err)
	}
}

func mustClaim(t *testing.T, st *store.Store, inst, rot string) store.Claim {
	t.Helper()
	c, err := st.Claim(context.Background(), store.RotationRequest{InstanceID: inst, RotationID: rot})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRotationLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-1", "cred-0")

	c := mustClaim(t, f.st, "inst-1", "rot-1")
	if c.Status != store.Claimed || c.Instance.CurrentCredential != "cred-0" {
		t.Fatalf("claim = %+v", c)
	}
	if again := mustClaim(t, f.st, "inst-1", "rot-1"); again.Status != store.Resumed {
		t.Fatalf("second claim of the same rotation = %s, want resumed", again.Status)
	}
	if other := mustClaim(t, f.st, "inst-1", "rot-2"); other.Status != store.Joined || other.RotationID != "rot-1" {
		t.Fatalf("claim of another rotation = %s %s, want joined rot-1", other.Status, other.RotationID)
	}
	cfg := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:s3cr3t@db/1")}
	for range 2 {
		if err := f.st.SavePending(ctx, "inst-1", "rot-1", "cred-1", cfg); err != nil {
			t.Fatal(err)
		}
	}
	other := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:0th3r@db/1")}
	if err := f.st.SavePending(ctx, "inst-1", "rot-1", "cred-x", other); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second credential for one rotation: %v, want ErrConflict", err)
	}
	// The second credential is kept only to be revoked.
	if c, _ := f.st.Credential(ctx, "inst-1", "cred-x"); c.State != store.CredentialDiscarded {
		t.Fatalf("second credential is %q, want discarded", c.State)
	}
	if err := f.st.MarkRevoked(ctx, "inst-1", "cred-x"); err != nil {
		t.Fatal(err)
	}
	got, err := f.st.PendingConfig(ctx, "inst-1", "cred-1")
	if err != nil || got["MYADDON_URL"].Reveal() != "postgres://u:s3cr3t@db/1" {
		t.Fatalf("PendingConfig = %v, %v", got, err)
	}
	prev, err := f.st.Promote(ctx, "inst-1", "rot-1", "cred-1", 2*time.Hour, "")
	if err != nil || prev == nil || prev.CredentialID != "cred-0" || !prev.RevokeAt.Equal(f.now.Add(2*time.Hour)) {
		t.Fatalf("Promote = %+v, %v", prev, err)
	}
	again, err := f.st.Promote(ctx, "inst-1", "rot-1", "cred-1", 2*time.Hour, "")
	if err != nil || *again != *prev {
		t.Fatalf("second Promote = %+v, %v; want %+v", again, err, prev)
	}
	if _, err := f.st.PendingConfig(ctx, "inst-1", "cred-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("config still stored after promotion: %v", err)
	}
	in, _ := f.st.Instance(ctx, "inst-1")
	if in.CurrentCredential != "cred-1" || in.InFlight != "" {
		t.Fatalf("instance after promotion = %+v", in)
	}
	if err := f.st.MarkRevoked(ctx, "inst-1", "cred-1"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("revoking the current credential: %v, want ErrConflict", err)
	}
	if due, _ := f.st.DueRevocations(ctx, f.now.Add(time.Hour), 10); len(due) != 0 {
		t.Fatalf("due before revoke_at: %v", due)
	}
	if due, _ := f.st.DueRevocations(ctx, f.now.Add(3*time.Hour), 10); len(due) != 1 || due[0].CredentialID != "cred-0" {
		t.Fatalf("due after revoke_at: %v", due)
	}
	for range 2 {
		if err := f.st.MarkRevoked(ctx, "inst-1", "cred-0"); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := f.st.PendingRevocations(ctx); n != 0 {
		t.Fatalf("%d revocations pending after revoke", n)
	}
	if done := mustClaim(t, f.st, "inst-1", "rot-1"); done.Status != store.Done || done.Previous.CredentialID != "cred-0" {
		t.Fatalf("claim of a finished rotation = %+v", done)
	}
	events, _ := f.st.Events(ctx, "inst-1", 50)
	var kinds []string
	for _, e := range events {
		kinds = append([]string{e.Type}, kinds...)
	}
	want := "registered requested joined minted discarded revoked pushed promoted revoke_scheduled revoked"
	if strings.Join(kinds, " ") != want {
		t.Errorf("events = %v, want %s", kinds, want)
	}
}

func TestFailDiscardsPendingAndKeepsCurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-2", "cred-0")
	mustClaim(t, f.st, "inst-2", "rot-1")
	cfg := map[string]secret.String{"MYADDON_URL": secret.New("v")}
	if err := f.st.SavePending(ctx, "inst-2", "rot-1", "cred-1", cfg); err != nil {
		t.Fatal(err)
	}
	disc, err := f.st.Fail(ctx, "inst-2", "rot-1", "push:not_found", "heroku: add-on gone")
	if err != nil || disc == nil || disc.CredentialID != "cred-1" {
		t.Fatalf("Fail = %+v, %v", disc, err)
	}
	in, _ := f.st.Instance(ctx, "inst-2")
	if in.CurrentCredential != "cred-0" || in.InFlight != "" || in.LastError != "heroku: add-on gone" {
		t.Fatalf("instance after failure = %+v", in)
	}
	c, _ := f.st.Credential(ctx, "inst-2", "cred-1")
	if c.State != store.CredentialDiscarded {
		t.Fatalf("pending credential state = %s, want discarded", c.State)
	}
	if _, err := f.st.Promote(ctx, "inst-2", "rot-1", "cred-1", time.Hour, ""); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("promoting a failed rotation: %v, want ErrConflict", err)
	}
	if err := f.st.MarkRevoked(ctx, "inst-2", "cred-1"); err != nil {
		t.Fatal(err)
	}
	if next := mustClaim(t, f.st, "inst-2", "rot-2"); next.Status != store.Claimed {
		t.Fatalf("new rotation after a failure = %s, want claimed", next.Status)
	}
}

func TestClaimRefusesUnknownAndDeprovisioned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	if _, err := f.st.Claim(ctx, store.RotationRequest{InstanceID: "nope", RotationID: "r"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown instance: %v", err)
	}
	f.register(t, "inst-3", "")
	if err := f.st.Deprovision(ctx, "inst-3"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-3", RotationID: "r"}); !errors.Is(err, store.ErrDeprovisioned) {
		t.Fatalf("deprovisioned instance: %v", err)
	}
	if n, _ := f.st.CountInstances(ctx); n != 0 {
		t.Fatalf("deprovisioned instance still listed: %d", n)
	}
}

func TestSecretsAreSealedAtRest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "inst-4", "")
	tok := heroku.Token{AccessToken: secret.New("HRKU-access-AAAA"), RefreshToken: secret.New("refresh-BBBB"),
		ExpiresAt: f.now.Add(8 * time.Hour)}
	if err := f.st.SaveToken(ctx, "inst-4", tok); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, f.st, "inst-4", "rot-1")
	cfg := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:CCCC@db")}
	if err := f.st.SavePending(ctx, "inst-4", "rot-1", "cred-1", cfg); err != nil {
		t.Fatal(err)
	}
	dump := redistest.Dump(t, f.r)
	for _, s := range []string{"HRKU-access-AAAA", "refresh-BBBB", "CCCC"} {
		if strings.Contains(dump, s) {
			t.Errorf("Redis holds %q in clear", s)
		}
	}
	got, err := f.st.LoadToken(ctx, "inst-4")
	if err != nil || got.AccessToken.Reveal() != "HRKU-access-AAAA" || got.RefreshToken.Reveal() != "refresh-BBBB" {
		t.Fatalf("LoadToken = %v", err)
	}
	if _, err := f.st.LoadToken(ctx, "unknown"); !errors.Is(err, heroku.ErrNoToken) {
		t.Fatalf("LoadToken of unknown = %v, want ErrNoToken", err)
	}
}

func TestRegistrationValidation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		r    store.Registration
		want string
	}{
		{"bad id", store.Registration{ID: "a/b", APIVersion: "v3", ConfigVars: []string{"A_URL"}}, "instance id"},
		{"bad version", store.Registration{ID: "a", APIVersion: "v2", ConfigVars: []string{"A_URL"}}, "api_version"},
		{"v1 without heroku id", store.Registration{ID: "a", APIVersion: "v1", ConfigVars: []string{"A_URL"}}, "heroku_id"},
		{"no vars", store.Registration{ID: "a", APIVersion: "v3"}, "config_vars"},
		{"bad var", store.Registration{ID: "a", APIVersion: "v3", ConfigVars: []string{"a-url"}}, "config var name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.r.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate() = %v, want it to name %s", err, c.want)
			}
		})
	}
}

// ConfigVars reads the names a registration gave, alone; an unknown
// instance is not found.
func TestConfigVars(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	if err := f.st.PutInstance(ctx, store.Registration{ID: "inst-v", APIVersion: store.APIv3,
		ConfigVars: []string{"A_URL", "B_URL"}, CurrentCredentialID: "cred-0"}); err != nil {
		t.Fatal(err)
	}
	if got, err := f.st.ConfigVars(ctx, "inst-v"); err != nil || !slices.Equal(got, []string{"A_URL", "B_URL"}) {
		t.Errorf("ConfigVars = %v, %v; want [A_URL B_URL]", got, err)
	}
	if _, err := f.st.ConfigVars(ctx, "inst-unknown"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ConfigVars of an unknown instance: %v, want ErrNotFound", err)
	}
}

// pushTarget is the registration a run that claimed a rotation of id now
// would push under.
func pushTarget(t testing.TB, st *store.Store, id string) store.PushTarget {
	t.Helper()
	in, err := st.Instance(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return in.Target()
}
