package store

import (
	"bytes"
	"context"
	"testing"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
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

// TestResealOneRereadsAfterARace plays rotations that rewrote a sealed
// field between the walk's read and the reseal: emptied, removed, or
// rewritten under the new key. None is overwritten or counted unreadable.
func TestResealOneRereadsAfterARace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := redistest.New(t)
	oldKey, newKey := bytes.Repeat([]byte{1}, seal.KeySize), bytes.Repeat([]byte{2}, seal.KeySize)
	old, _ := seal.New(oldKey)
	both, _ := seal.New(newKey, oldKey)
	st := New(r.Client, both)
	key := instanceKey("inst-1")
	stale, _ := old.Seal(secret.New("old-token"), key+"#oauth_access")
	fresh, _ := both.Seal(secret.New("new-token"), key+"#oauth_access")
	cases := map[string]struct {
		now  *string // nil: the field is removed
		want ResealResult
	}{
		"emptied":   {now: new(string), want: ResealResult{Gone: 1}},
		"removed":   {want: ResealResult{Gone: 1}},
		"rewritten": {now: &fresh, want: ResealResult{Current: 1}},
	}
	for name, c := range cases {
		r.Client.Del(ctx, key)
		if c.now != nil {
			r.Client.HSet(ctx, key, "oauth_access", *c.now)
		}
		var res ResealResult
		if err := st.resealOne(ctx, sealedValue{key: key, field: "oauth_access", value: stale}, &res); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res != c.want {
			t.Errorf("%s: %+v, want %+v", name, res, c.want)
		}
		if c.now != nil && r.Client.HGet(ctx, key, "oauth_access").Val() != *c.now {
			t.Errorf("%s: the rotation's value was overwritten", name)
		}
	}
}
