package store

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
)

func TestAdvPre1970(t *testing.T) {
	ctx := context.Background()
	s, r, now := newHistoryStore(t)
	*now = time.Date(1969, 12, 31, 22, 0, 0, 0, time.UTC)
	inst := "inst-neg"
	if err := s.PutInstance(ctx, Registration{ID: inst, APIVersion: APIv3, ConfigVars: []string{"A_URL"}, CurrentCredentialID: "k-0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, RotationRequest{InstanceID: inst, RotationID: "rot-1", Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePending(ctx, inst, "rot-1", "k-1", map[string]secret.String{"A_URL": secret.New("u")}); err != nil {
		t.Fatal(err)
	}
	p, err := s.PromoteRotation(ctx, inst, "rot-1", "k-1", time.Hour, "grace 1h0m0s")
	if err != nil {
		t.Fatal(err)
	}
	*now = p.Previous.RevokeAt
	if err := s.MarkRevoked(ctx, inst, "k-0"); err != nil {
		t.Fatal(err)
	}
	ev, _ := s.Events(ctx, inst, 100)
	fl, _ := s.FleetEvents(ctx, 100)
	t.Logf("raw %q", r.Client.Get(ctx, historyKey(inst)).Val())
	for _, e := range ev {
		t.Logf("hist  %s %s %s %d", e.Type, e.RotationID, e.CredentialID, ms(e.At))
	}
	for _, e := range fl {
		t.Logf("fleet %s %s %s %d", e.Type, e.RotationID, e.CredentialID, ms(e.At))
	}
}
