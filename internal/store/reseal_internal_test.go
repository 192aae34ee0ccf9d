package store

import (
	"context"
	"testing"

	"github.com/rekeyhq/rekey/internal/redistest"
)

// TestSwapFieldNeverOverwritesANewerValue plays a rotation that rewrites a
// sealed field between the reseal's read and its write.
func TestSwapFieldNeverOverwritesANewerValue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := redistest.New(t)
	key := instanceKey("inst-1")
	r.Client.HSet(ctx, key, "oauth_access", "read-value")
	v := sealedValue{key: key, field: "oauth_access", value: "read-value"}

	r.Client.HSet(ctx, key, "oauth_access", "rotation-wrote-this")
	if ok, err := swapField(ctx, r.Client, v, "stale-reseal"); err != nil || ok {
		t.Fatalf("swapField over a newer value = %v, %v; want refused", ok, err)
	}
	if got := r.Client.HGet(ctx, key, "oauth_access").Val(); got != "rotation-wrote-this" {
		t.Fatalf("field = %q; the rotation's value was overwritten", got)
	}
	r.Client.HDel(ctx, key, "oauth_access")
	if ok, err := swapField(ctx, r.Client, v, "stale-reseal"); err != nil || ok || r.Client.HExists(ctx, key, "oauth_access").Val() {
		t.Fatalf("swapField on a removed field = %v, %v; want refused and nothing written", ok, err)
	}
	v.value = "rotation-wrote-this"
	r.Client.HSet(ctx, key, "oauth_access", "rotation-wrote-this")
	if ok, err := swapField(ctx, r.Client, v, "resealed"); err != nil || !ok {
		t.Fatalf("swapField on an unchanged field = %v, %v; want replaced", ok, err)
	}
}
