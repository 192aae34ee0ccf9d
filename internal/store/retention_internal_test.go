package store

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
)

// keep_instance, which a registration runs, lifts the expiry
// expire_instance gave a deprovisioned instance's keys, and takes the
// instance out of the retiring set.
func TestKeepInstanceLiftsTheExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := redistest.New(t)
	sealer, _ := seal.New(bytes.Repeat([]byte{3}, seal.KeySize))
	s := New(r.Client, sealer)
	if err := s.PutInstance(ctx, Registration{ID: "inst-k", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: "cred-0"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Deprovision(ctx, "inst-k"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.ExpireRetired(ctx, "inst-k"); !ok || err != nil {
		t.Fatalf("ExpireRetired = %v, %v", ok, err)
	}
	keys := []string{instanceKey("inst-k"), historyKey("inst-k"), credentialKey("inst-k", "cred-0")}
	for _, k := range keys {
		if d := r.Client.TTL(ctx, k).Val(); d <= 0 {
			t.Fatalf("%s has no expiry after ExpireRetired (%s)", k, d)
		}
	}
	r.Client.ZAdd(ctx, retiringKey(), redis.Z{Score: float64(ms(time.Now())), Member: "inst-k"})
	keep := redis.NewScript(luaRetention + `keep_instance(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1]) return 'ok'`)
	keepKeys := []string{keys[0], keys[1], legacyEventsKey("inst-k"), credentialKey("inst-k", ""), retiringKey()}
	if err := keep.Run(ctx, r.Client, keepKeys, "inst-k").Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if d := r.Client.TTL(ctx, k).Val(); d != -1 {
			t.Errorf("%s expires in %s after keep_instance, want no expiry", k, d)
		}
	}
	if n := r.Client.ZCard(ctx, retiringKey()).Val(); n != 0 {
		t.Errorf("retiring set holds %d after keep_instance, want 0", n)
	}
}
