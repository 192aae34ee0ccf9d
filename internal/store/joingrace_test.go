package store_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// A request that joins a rotation in flight asking a longer grace than the
// rotation's lengthens it: its client runs apps that keep the old
// credential that long. A shorter grace, or none, leaves it as it is (I2:
// no grace is ever shortened), and the grace ceiling bounds what a join
// brings as it bounds what a task brings.
func TestJoinAskingALongerGraceLengthensIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(f.r.Client, sealer, store.WithClock(func() time.Time { return f.now }), store.WithMaxGrace(12*time.Hour))
	for _, tc := range []struct {
		name   string
		joins  []time.Duration
		revoke time.Duration
	}{
		{"longer", []time.Duration{2 * time.Hour, 5 * time.Minute}, 2 * time.Hour},
		{"shorter or none", []time.Duration{5 * time.Minute, 0}, 10 * time.Minute},
		{"past the ceiling", []time.Duration{24 * time.Hour}, 12 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inst := "inst-" + strings.ReplaceAll(tc.name, " ", "-")
			f.register(t, inst, "cred-0")
			if _, err := st.Claim(ctx, store.RotationRequest{InstanceID: inst, RotationID: "rot-" + inst, Grace: 10 * time.Minute}); err != nil {
				t.Fatal(err)
			}
			for i, g := range tc.joins {
				c, err := st.Claim(ctx, store.RotationRequest{InstanceID: inst, RotationID: "join-" + inst + string(rune('a'+i)), Grace: g})
				if err != nil || c.Status != store.Joined {
					t.Fatalf("join asking %s = %+v, %v; want joined", g, c, err)
				}
			}
			cfg := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:cred-1@db/" + inst)}
			if err := st.SavePending(ctx, inst, "rot-"+inst, "cred-1", cfg); err != nil {
				t.Fatal(err)
			}
			prev, err := st.Promote(ctx, inst, "rot-"+inst, "cred-1", 10*time.Minute, "")
			if err != nil || prev == nil {
				t.Fatalf("promote = %+v, %v", prev, err)
			}
			if want := f.now.Add(tc.revoke); !prev.RevokeAt.Equal(want) {
				t.Errorf("old credential due %s, want %s (%s after the push)", prev.RevokeAt, want, tc.revoke)
			}
			c, _ := st.Credential(ctx, inst, "cred-0")
			if want := f.now.Add(tc.revoke); !c.RevokeAt.Equal(want) {
				t.Errorf("stored revoke time %s, want %s", c.RevokeAt, want)
			}
		})
	}
}
