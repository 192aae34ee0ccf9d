package handlers_test

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/store"
)

// slowAnswer mints, then answers only after delay: the issuer minted, and
// its answer is on the way when the task's deadline passes.
type slowAnswer struct {
	issuer.Issuer
	delay time.Duration
}

func (s slowAnswer) Mint(ctx context.Context, instanceID, rotationID string) (issuer.Credential, error) {
	c, err := s.Issuer.Mint(ctx, instanceID, rotationID)
	select {
	case <-ctx.Done():
		return issuer.Credential{}, ctx.Err()
	case <-time.After(s.delay):
		return c, err
	}
}

// A rotate task whose deadline passes while the issuer's answer is on the
// way (a tasks/ caller's short asynq.Timeout, a slow issuer) still records
// the credential the issuer minted, so that it is revoked if the rotation
// ends without it (I3) rather than stay valid, unknown to rekey, when the
// caller's options leave no later run to mint it again.
func TestAMintAnsweredPastTheTaskDeadlineIsRecorded(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	g.deps.Issuer = slowAnswer{Issuer: g.demo, delay: 300 * time.Millisecond}
	ctx := context.Background()
	if _, err := g.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-slow"}); err != nil {
		t.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := g.mux.ProcessTask(tctx, rotateTask(t, "inst-1", "rot-slow")); err == nil {
		t.Fatal("the rotation succeeded past its deadline; want its run to fail")
	}
	rot, err := g.st.Rotation(ctx, "rot-slow")
	if err != nil {
		t.Fatal(err)
	}
	if rot.CredentialID == "" {
		t.Fatalf("rotation %+v records no credential; the issuer minted one", rot)
	}
	c, err := g.st.Credential(ctx, "inst-1", rot.CredentialID)
	if err != nil || c.State != store.CredentialPending || !g.demo.Valid(c.ID) {
		t.Errorf("credential %+v (%v): want it recorded as pending", c, err)
	}
}
