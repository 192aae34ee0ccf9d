package store_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

func sealer(t *testing.T, keys ...byte) *seal.Sealer {
	t.Helper()
	var ks [][]byte
	for _, k := range keys {
		ks = append(ks, bytes.Repeat([]byte{k}, seal.KeySize))
	}
	s, err := seal.New(ks...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sealedWorld stores, under key 1, the tokens of two instances (one sealed
// value each, a string), the config of one pending credential and the
// fingerprint key its save created (a string each): four sealed values.
func sealedWorld(t *testing.T, r *redistest.Redis) {
	t.Helper()
	ctx := context.Background()
	st := store.New(r.Client, sealer(t, 1))
	for _, id := range []string{"inst-1", "inst-2"} {
		if err := st.PutInstance(ctx, store.Registration{ID: id, APIVersion: store.APIv3,
			ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-0"}); err != nil {
			t.Fatal(err)
		}
		if err := st.SaveToken(ctx, id, heroku.Token{AccessToken: secret.New("access-" + id),
			RefreshToken: secret.New("refresh-" + id), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	mustClaim(t, st, "inst-1", "rot-1")
	if err := st.SavePending(ctx, "inst-1", "rot-1", "cred-1",
		map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:pw@db/x")}); err != nil {
		t.Fatal(err)
	}
}

func TestSealedStatusCountsValuesByKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := redistest.New(t)
	sealedWorld(t, r)
	old, rotated, onlyNew := sealer(t, 1), sealer(t, 2, 1), sealer(t, 2)

	st, err := store.New(r.Client, rotated).SealedStatus(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Values != 4 || st.ByKey[0] != 0 || st.ByKey[1] != 4 || st.UnreadableTotal() != 0 || st.Partial {
		t.Fatalf("status with keys (new, old) = %+v; want 4 values under key 2", st)
	}
	st, err = store.New(r.Client, onlyNew).SealedStatus(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Unreadable[old.KeyIDs()[0]] != 4 || st.ByKey[0] != 0 {
		t.Fatalf("status without the old key = %+v; want 4 unreadable under %s", st, old.KeyIDs()[0])
	}
}

func TestSealedStatusStopsAtItsBound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := redistest.New(t)
	s := sealer(t, 1)
	const n = 3000
	_, err := r.Client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range n {
			key := fmt.Sprintf("rekey:instance:inst-%d", i)
			v, err := s.Seal(secret.New("tok"), key+"#oauth_access")
			if err != nil {
				return err
			}
			p.HSet(ctx, key, "oauth_access", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.New(r.Client, s).SealedStatus(ctx, 1)
	if err != nil || !st.Partial || st.Values < 1 || st.Values >= n || st.ByKey[0] != st.Values {
		t.Fatalf("bounded status = %+v, %v; want a partial count", st.Values, err)
	}
	if st, err = store.New(r.Client, s).SealedStatus(ctx, 0); err != nil || st.Partial || st.Values != n {
		t.Fatalf("full status = %d values, partial %v, %v; want all %d", st.Values, st.Partial, err, n)
	}
}

func TestResealMovesEveryValueToTheFirstKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := redistest.New(t)
	sealedWorld(t, r)
	var pages int
	res, err := store.New(r.Client, sealer(t, 2, 1)).Reseal(ctx, func(store.ResealResult) { pages++ })
	if err != nil {
		t.Fatal(err)
	}
	if res.Values != 4 || res.Resealed != 4 || res.Unreadable != 0 || pages == 0 {
		t.Fatalf("Reseal = %+v after %d progress calls; want 4 resealed", res, pages)
	}
	again, err := store.New(r.Client, sealer(t, 2, 1)).Reseal(ctx, nil)
	if err != nil || again.Resealed != 0 || again.Current != 4 {
		t.Fatalf("second Reseal = %+v, %v; want nothing to do", again, err)
	}
	onlyNew := store.New(r.Client, sealer(t, 2))
	for _, id := range []string{"inst-1", "inst-2"} {
		tok, err := onlyNew.LoadToken(ctx, id)
		if err != nil || tok.AccessToken.Reveal() != "access-"+id || tok.RefreshToken.Reveal() != "refresh-"+id {
			t.Fatalf("token of %s after the old key was dropped: %v", id, err)
		}
	}
	cfg, err := onlyNew.PendingConfig(ctx, "inst-1", "cred-1")
	if err != nil || cfg["MYADDON_URL"].Reveal() != "postgres://u:pw@db/x" {
		t.Fatalf("pending config after the old key was dropped: %v", err)
	}
}

func TestResealLeavesUnreadableValues(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := redistest.New(t)
	sealedWorld(t, r)
	before := redistest.Dump(t, r)
	res, err := store.New(r.Client, sealer(t, 3)).Reseal(ctx, nil)
	if err != nil || res.Unreadable != 4 || res.Resealed != 0 {
		t.Fatalf("Reseal without the old key = %+v, %v; want 4 unreadable, none changed", res, err)
	}
	if after := redistest.Dump(t, r); after != before {
		t.Fatal("Reseal changed values it could not open")
	}
}

// TestTokensMoveOutOfTheInstanceHash plants tokens where versions before
// rekey:oauth:<id> kept them, sealed apart in the instance hash: the first
// read opens them there and moves them to their own key, and a save with no
// refresh token keeps the moved one.
func TestTokensMoveOutOfTheInstanceHash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := redistest.New(t)
	s := sealer(t, 1)
	st := store.New(r.Client, s)
	if err := st.PutInstance(ctx, store.Registration{ID: "inst-1", APIVersion: store.APIv3,
		ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-0"}); err != nil {
		t.Fatal(err)
	}
	key := "rekey:instance:inst-1"
	access, _ := s.Seal(secret.New("old-access"), key+"#oauth_access")
	refresh, _ := s.Seal(secret.New("old-refresh"), key+"#oauth_refresh")
	r.Client.HSet(ctx, key, "oauth_access", access, "oauth_refresh", refresh, "oauth_expires_at", "1767398400000")
	if need, err := st.NeedsToken(ctx, "inst-1"); err != nil || need {
		t.Fatalf("NeedsToken with legacy tokens = %v, %v; want false", need, err)
	}
	tok, err := st.LoadToken(ctx, "inst-1")
	if err != nil || tok.AccessToken.Reveal() != "old-access" || tok.RefreshToken.Reveal() != "old-refresh" ||
		tok.ExpiresAt.UnixMilli() != 1767398400000 {
		t.Fatalf("LoadToken of legacy tokens = %v; want them opened", err)
	}
	if n := r.Client.HExists(ctx, key, "oauth_access").Val(); n || r.Client.Exists(ctx, "rekey:oauth:inst-1").Val() != 1 {
		t.Fatal("legacy tokens were not moved to rekey:oauth:inst-1")
	}
	if err := st.SaveToken(ctx, "inst-1", heroku.Token{AccessToken: secret.New("new-access")}); err != nil {
		t.Fatal(err)
	}
	if tok, err = st.LoadToken(ctx, "inst-1"); err != nil || tok.AccessToken.Reveal() != "new-access" ||
		tok.RefreshToken.Reveal() != "old-refresh" {
		t.Fatalf("LoadToken after a save without a refresh token: %v; want the refresh token kept", err)
	}
	if err := st.Deprovision(ctx, "inst-1"); err != nil {
		t.Fatal(err)
	}
	if r.Client.Exists(ctx, "rekey:oauth:inst-1").Val() != 0 {
		t.Fatal("deprovisioning left the tokens")
	}
}
