package handlers_test

import (
	"context"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/store"
)

// reusingIssuer answers every mint with a credential id the instance
// already has (its current one), as a buggy or hostile issuer might.
type reusingIssuer struct {
	issuer.Issuer
	id string
}

func (i *reusingIssuer) Mint(ctx context.Context, instanceID, rotationID string) (issuer.Credential, error) {
	c, err := i.Issuer.Mint(ctx, instanceID, rotationID)
	c.ID = i.id
	return c, err
}

// An issuer that answers a mint with an id the instance already uses must
// end the rotation at mint, rather than leave it requested and in flight
// for ever with every later request joining it; and nothing may be revoked
// by that id, which names the instance's current credential.
func TestIssuerReusingACredentialIDEndsTheRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	before, _ := g.st.Instance(ctx, "inst-1")
	g.deps.Issuer = &reusingIssuer{Issuer: g.demo, id: before.CurrentCredential}
	var err error
	for range 3 { // asynq's retries, then the sweep's hourly reruns
		if err = g.run(rotateTask(t, "inst-1", "rot-r")); isPermanent(err) {
			break
		}
	}
	rot, _ := g.st.Rotation(ctx, "rot-r")
	claim, cerr := g.st.Claim(ctx, store.RotationRequest{InstanceID: "inst-1", RotationID: "rot-next"})
	if cerr != nil {
		t.Fatal(cerr)
	}
	if cur, err := g.st.Credential(ctx, "inst-1", before.CurrentCredential); err != nil || cur.State != store.CredentialCurrent {
		t.Errorf("the current credential %s is %q (%v) after the reused id; want it current", before.CurrentCredential, cur.State, err)
	}
	if rot.State != store.RotationFailed || claim.Status == store.Joined {
		t.Errorf("after 3 runs (last: %v) rotation is %q; a new request is %s (joined %s); want the rotation failed and a new one started",
			err, rot.State, claim.Status, claim.RotationID)
	}
}
