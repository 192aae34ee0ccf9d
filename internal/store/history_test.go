package store

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
)

func newHistoryStore(t *testing.T, opts ...Option) (*Store, *redistest.Redis, *time.Time) {
	t.Helper()
	r := redistest.New(t)
	sealer, err := seal.New(bytes.Repeat([]byte{5}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	s := New(r.Client, sealer, append([]Option{WithClock(func() time.Time { return now })}, opts...)...)
	return s, r, &now
}

// rotateOnce runs one rotation of inst to cred through the store, a
// second apart per step, and revokes the credential it superseded.
func rotateOnce(t *testing.T, s *Store, now *time.Time, inst, rot, cred string) {
	t.Helper()
	ctx := context.Background()
	step := func() { *now = now.Add(time.Second) }
	if _, err := s.Claim(ctx, RotationRequest{InstanceID: inst, RotationID: rot, Reason: "incident 7"}); err != nil {
		t.Fatal(err)
	}
	step()
	cfg := map[string]secret.String{"A_URL": secret.New("postgres://u:pw-" + rot + "@db/1")}
	if err := s.SavePending(ctx, inst, rot, cred, cfg); err != nil {
		t.Fatal(err)
	}
	step()
	p, err := s.PromoteRotation(ctx, inst, rot, cred, time.Hour, "grace 1h0m0s")
	if err != nil {
		t.Fatal(err)
	}
	step()
	if p.Previous != nil {
		if err := s.MarkRevoked(ctx, inst, p.Previous.CredentialID); err != nil {
			t.Fatal(err)
		}
	}
	step()
}

// A rotation's events come back one by one, newest first, with their
// rotation, credential, detail and time, from one list entry: the
// revocation of the credential it superseded joins it.
func TestHistoryKeepsEveryEventInFewEntries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, r, now := newHistoryStore(t)
	if err := s.PutInstance(ctx, Registration{ID: "inst-h", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: "cred-0"}); err != nil {
		t.Fatal(err)
	}
	start := *now
	rotateOnce(t, s, now, "inst-h", "rot-1", "cred-1")
	rotateOnce(t, s, now, "inst-h", "rot-2", "cred-2")
	events, err := s.Events(ctx, "inst-h", 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		got = append(got, strings.Join([]string{e.Type, e.RotationID, e.CredentialID, e.Detail,
			e.At.Sub(start).String()}, " "))
	}
	want := []string{
		"revoked rot-2 cred-1 previous 7s",
		"revoke_scheduled rot-2 cred-1 " + itoaMS(start.Add(6*time.Second+time.Hour)) + " 6s",
		"promoted rot-2 cred-2  6s",
		"pushed rot-2 cred-2 grace 1h0m0s 6s",
		"minted rot-2 cred-2  5s",
		"requested rot-2  incident 7 4s",
		"revoked rot-1 cred-0 previous 3s",
		"revoke_scheduled rot-1 cred-0 " + itoaMS(start.Add(2*time.Second+time.Hour)) + " 2s",
		"promoted rot-1 cred-1  2s",
		"pushed rot-1 cred-1 grace 1h0m0s 2s",
		"minted rot-1 cred-1  1s",
		"requested rot-1  incident 7 0s",
		"registered  cred-0  0s",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// registered and rot-1 share no rotation: entries are "", rot-1 (with
	// cred-0's revocation), rot-2 (with cred-1's).
	if n := historyLen(t, r, "inst-h"); n != 3 {
		t.Errorf("history holds %d entries, want 3", n)
	}
	fleet, err := s.FleetEvents(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	// The fleet stream leaves out each rotation's requested and minted.
	if len(fleet) != len(want)-4 || fleet[0].Type != EventRevoked || fleet[0].InstanceID != "inst-h" {
		t.Errorf("fleet events = %d, first %+v; want %d, first revoked of inst-h", len(fleet), fleet[0], len(want)-4)
	}
	for _, e := range fleet {
		if e.Type == EventRequested || e.Type == EventMinted {
			t.Errorf("fleet stream holds %+v", e)
		}
	}
	if head, _ := s.Events(ctx, "inst-h", 3); len(head) != 3 || head[2].Type != EventPromoted {
		t.Errorf("Events(3) = %+v, want the three newest", head)
	}
}

// historyLen is how many entries an instance's history string holds.
func historyLen(t *testing.T, r *redistest.Redis, inst string) int {
	t.Helper()
	v, err := r.Client.Get(context.Background(), historyKey(inst)).Result()
	if err != nil {
		t.Fatalf("history of %s: %v", inst, err)
	}
	return len(strings.Split(v, historySep))
}

func itoaMS(t time.Time) string { return strconv.FormatInt(ms(t), 10) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// The list keeps its cap, oldest entries dropped first, and details with
// the separators come back with spaces.
func TestHistoryCapAndSeparators(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, r, now := newHistoryStore(t, WithEventCaps(4, 1000))
	for i := range 10 {
		*now = now.Add(time.Minute)
		e := Event{Type: EventRetrying, InstanceID: "inst-c", RotationID: "rot-" + itoa(int64(i)), Detail: "a\x1eb\x1fc"}
		if err := s.AddEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if n := historyLen(t, r, "inst-c"); n != 4 {
		t.Fatalf("history holds %d entries, want the cap, 4", n)
	}
	events, err := s.Events(ctx, "inst-c", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 4 || events[0].RotationID != "rot-9" || events[3].RotationID != "rot-6" || events[0].Detail != "a b c" {
		t.Fatalf("events = %+v, want rot-9 to rot-6 with detail %q", events, "a b c")
	}
	if !events[0].At.Equal(*now) {
		t.Errorf("newest event at %s, want %s", events[0].At, *now)
	}
}

// An instance whose events are in the stream earlier versions wrote reads
// them, after its new ones, and the read moves them into the history list
// and deletes the stream, keeping the stream's expiry.
func TestLegacyEventStreamIsReadAndMoved(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, r, now := newHistoryStore(t)
	legacy := legacyEventsKey("inst-l")
	for i, typ := range []string{EventRegistered, EventRequested, EventMinted} {
		at := now.Add(time.Duration(i-10) * time.Minute)
		r.Client.XAdd(ctx, &redis.XAddArgs{Stream: legacy, Values: []any{"type", typ, "instance_id", "inst-l",
			"rotation_id", "rot-old", "credential_id", "cred-old", "detail", "d" + itoa(int64(i)), "at", ms(at)}})
	}
	r.Client.Expire(ctx, legacy, time.Hour)
	if err := s.AddEvent(ctx, Event{Type: EventRetrying, InstanceID: "inst-l", RotationID: "rot-new"}); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		events, err := s.Events(ctx, "inst-l", 100)
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, e := range events {
			types = append(types, e.Type)
		}
		if strings.Join(types, ",") != "retrying,minted,requested,registered" {
			t.Fatalf("read %d: types %v", round, types)
		}
		if e := events[1]; e.RotationID != "rot-old" || e.CredentialID != "cred-old" || e.Detail != "d2" ||
			!e.At.Equal(now.Add(-8*time.Minute)) {
			t.Fatalf("read %d: moved event = %+v", round, e)
		}
	}
	if n := r.Client.Exists(ctx, legacy).Val(); n != 0 {
		t.Error("the legacy stream is still there after a read")
	}
	if d := r.Client.TTL(ctx, historyKey("inst-l")).Val(); d <= 0 || d > time.Hour {
		t.Errorf("history expires in %s, want the legacy stream's hour", d)
	}
}

// A pending credential's sealed config lives in its own key, which the
// promotion deletes; the credential hash stays small (listpack). A config
// stored by an earlier version in the credential hash is still read and
// dropped.
func TestConfigHasItsOwnKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, r, _ := newHistoryStore(t)
	if err := s.PutInstance(ctx, Registration{ID: "inst-k", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: "cred-0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-k", RotationID: "rot-1"}); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]secret.String{"A_URL": secret.New(strings.Repeat("x", 200))}
	if err := s.SavePending(ctx, "inst-k", "rot-1", "cred-1", cfg); err != nil {
		t.Fatal(err)
	}
	if enc := r.Client.ObjectEncoding(ctx, credentialKey("inst-k", "cred-1")).Val(); enc != "listpack" {
		t.Errorf("credential hash encoding %q, want listpack", enc)
	}
	if d := r.Client.TTL(ctx, configKey("inst-k", "cred-1")).Val(); d <= 0 {
		t.Errorf("config key expires in %s, want an expiry", d)
	}
	got, err := s.PendingConfig(ctx, "inst-k", "cred-1")
	if err != nil || got["A_URL"].Reveal() != strings.Repeat("x", 200) {
		t.Fatalf("PendingConfig = %v, %v", len(got), err)
	}
	if _, err := s.PromoteRotation(ctx, "inst-k", "rot-1", "cred-1", time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	if n := r.Client.Exists(ctx, configKey("inst-k", "cred-1")).Val(); n != 0 {
		t.Error("config key still there after the promotion")
	}

	// An earlier version's layout: the config in the credential hash.
	if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-k", RotationID: "rot-2"}); err != nil {
		t.Fatal(err)
	}
	cfg2 := map[string]secret.String{"A_URL": secret.New(strings.Repeat("y", 200))}
	if err := s.SavePending(ctx, "inst-k", "rot-2", "cred-2", cfg2); err != nil {
		t.Fatal(err)
	}
	old, err := s.sealer.Seal(secret.New(`{"A_URL":"old-layout"}`), credentialKey("inst-k", "cred-2")+"#config")
	if err != nil {
		t.Fatal(err)
	}
	r.Client.Del(ctx, configKey("inst-k", "cred-2"))
	r.Client.HSet(ctx, credentialKey("inst-k", "cred-2"), "config", old)
	if got, err := s.PendingConfig(ctx, "inst-k", "cred-2"); err != nil || got["A_URL"].Reveal() != "old-layout" {
		t.Fatalf("PendingConfig of the old layout = %v, %v", got, err)
	}
	if _, err := s.PromoteRotation(ctx, "inst-k", "rot-2", "cred-2", time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	if v := r.Client.HGet(ctx, credentialKey("inst-k", "cred-2"), "config").Val(); v != "" {
		t.Error("the old layout's config field is still there after the promotion")
	}
}

// A revocation that comes after a later rotation started still joins the
// entry of the rotation that superseded its credential, and the events come
// back in time order; rekey's own rotation ids are stored packed and read
// back whole.
func TestHistoryRevocationJoinsItsRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, r, now := newHistoryStore(t)
	if err := s.PutInstance(ctx, Registration{ID: "inst-j", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: "cred-0"}); err != nil {
		t.Fatal(err)
	}
	rot1, rot2 := "rot_0123456789abcdef01234567", "rot_fedcba9876543210fedcba98"
	if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-j", RotationID: rot1, Reason: ReasonScheduled}); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePending(ctx, "inst-j", rot1, "cred-1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PromoteRotation(ctx, "inst-j", rot1, "cred-1", time.Hour, "grace 1h0m0s"); err != nil {
		t.Fatal(err)
	}
	*now = now.Add(time.Minute)
	if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-j", RotationID: rot2, Reason: ReasonScheduled}); err != nil {
		t.Fatal(err)
	}
	*now = now.Add(time.Minute)
	if err := s.MarkRevoked(ctx, "inst-j", "cred-0"); err != nil {
		t.Fatal(err)
	}
	events, err := s.Events(ctx, "inst-j", 100)
	if err != nil {
		t.Fatal(err)
	}
	if e := events[0]; e.Type != EventRevoked || e.RotationID != rot1 || e.CredentialID != "cred-0" ||
		e.Detail != CredentialPrevious {
		t.Errorf("newest event = %+v; want cred-0 revoked in %s", e, rot1)
	}
	if e := events[1]; e.Type != EventRequested || e.RotationID != rot2 || e.Detail != ReasonScheduled {
		t.Errorf("second event = %+v; want %s requested", e, rot2)
	}
	for _, e := range events {
		if e.Type == EventRevokeScheduled && e.Detail != itoaMS(e.At.Add(time.Hour)) {
			t.Errorf("revoke_scheduled detail %q, want the revoke time in ms", e.Detail)
		}
	}
	if n := historyLen(t, r, "inst-j"); n != 3 {
		t.Errorf("history holds %d entries, want 3 (registration, %s, %s)", n, rot1, rot2)
	}
}

// A history that an earlier version kept as a LIST under the same key is
// read as it is, and the next event turns it into the string, expiry kept.
func TestHistoryListOfEarlierVersionsIsReadAndConverted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, r, now := newHistoryStore(t, WithEventCaps(3, 1000))
	key := historyKey("inst-o")
	for i := range 3 {
		e := Event{Type: EventRetrying, InstanceID: "inst-o", RotationID: "rot-" + itoa(int64(i)),
			Detail: "try\x1b" + itoa(int64(i)), At: now.Add(time.Duration(i) * time.Minute)}
		r.Client.LPush(ctx, key, encodeHistory(e))
	}
	r.Client.Expire(ctx, key, time.Hour)
	types := func() string {
		events, err := s.Events(ctx, "inst-o", 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range events {
			got = append(got, e.RotationID+" "+e.Detail)
		}
		return strings.Join(got, ",")
	}
	if got := types(); got != "rot-2 try 2,rot-1 try 1,rot-0 try 0" {
		t.Fatalf("events of the list = %s", got)
	}
	*now = now.Add(time.Hour)
	if err := s.AddEvent(ctx, Event{Type: EventRetrying, InstanceID: "inst-o", RotationID: "rot-3"}); err != nil {
		t.Fatal(err)
	}
	if typ := r.Client.Type(ctx, key).Val(); typ != "string" {
		t.Fatalf("history is a %s after a write, want a string", typ)
	}
	if got := types(); got != "rot-3 ,rot-2 try 2,rot-1 try 1" {
		t.Fatalf("events after the write = %s, want rot-3 then the list's newest two (cap 3)", got)
	}
	if d := r.Client.TTL(ctx, key).Val(); d <= 0 || d > time.Hour {
		t.Errorf("history expires in %s, want the list's hour", d)
	}
}

// rekey's own ids and details come back whole from their packed forms:
// credential ids as base 64, a rotation's superseded credential as "^"
// (written out when the entry below it goes at the cap), a grace in
// seconds, a revoke time in seconds from its event.
func TestHistoryPackedFormsReadBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, r, now := newHistoryStore(t, WithEventCaps(2, 1000))
	cred := func(i int) string { return "cred_" + strings.Repeat("0", 15) + itoa(int64(i)) }
	rot := func(i int) string { return "rot_" + strings.Repeat("a", 23) + itoa(int64(i)) }
	if err := s.PutInstance(ctx, Registration{ID: "inst-p", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: cred(0)}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		rotateOnce(t, s, now, "inst-p", rot(i), cred(i))
		events, err := s.Events(ctx, "inst-p", 100)
		if err != nil {
			t.Fatal(err)
		}
		if e := events[0]; e.Type != EventRevoked || e.RotationID != rot(i) || e.CredentialID != cred(i-1) {
			t.Fatalf("after rotation %d, newest event %+v", i, e)
		}
		for _, e := range events {
			switch e.Type {
			case EventPushed:
				if e.Detail != "grace 1h0m0s" || e.CredentialID == "" {
					t.Errorf("pushed %+v, want detail grace 1h0m0s and its credential", e)
				}
			case EventRevokeScheduled:
				if e.Detail != itoaMS(e.At.Add(time.Hour)) {
					t.Errorf("revoke_scheduled detail %q, want %s", e.Detail, itoaMS(e.At.Add(time.Hour)))
				}
				if want := "cred_" + strings.Repeat("0", 15); !strings.HasPrefix(e.CredentialID, want) {
					t.Errorf("revoke_scheduled of %q", e.CredentialID)
				}
			}
		}
	}
	// The cap (2) keeps rotations 2 and 3; rotation 2 still names cred 1,
	// the first credential of the entry that went.
	events, err := s.Events(ctx, "inst-p", 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		got = append(got, e.Type+" "+e.RotationID[len(e.RotationID)-1:]+" "+e.CredentialID)
	}
	want := []string{
		"revoked 3 " + cred(2), "revoke_scheduled 3 " + cred(2), "promoted 3 " + cred(3), "pushed 3 " + cred(3),
		"minted 3 " + cred(3), "requested 3 ",
		"revoked 2 " + cred(1), "revoke_scheduled 2 " + cred(1), "promoted 2 " + cred(2), "pushed 2 " + cred(2),
		"minted 2 " + cred(2), "requested 2 ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	raw := r.Client.Get(ctx, historyKey("inst-p")).Val()
	if strings.Contains(raw, "cred_0") || strings.Contains(raw, "grace") || !strings.Contains(raw, "\x1e^") {
		t.Errorf("history holds ids or details unpacked, or no superseded credential as ^: %q", raw)
	}
}

// Credential ids of every form come back as they were given: packed when
// they end in lowercase hex of a packable length or in a lowercase UUID,
// as they are otherwise.
func TestHistoryCredentialIDsReadBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, r, now := newHistoryStore(t, WithEventCaps(100, 1000))
	// Packed: UUIDs, and hex of every length from 6 digits on; PostgreSQL
	// roles (pgissuer) have 20.
	packed := []string{"8b1a9953-c461-4a3d-8f5e-1c7a42d0b6a1", "cred-ffffffff-ffff-ffff-ffff-ffffffffffff",
		"k_00000000-0000-0000-0000-000000000000", "_0123abcd-4567-89ef-0123-456789abcdef",
		"rekey_0123456789abcdef0123", "x_0123456789abcdef0123456789abcdef", "c_00a1b2c3d4e5f6f7"}
	ids := append([]string{"c_0a1b2c", "c_0a1b2c3", "c_0a1b2c3d", "c_0a1b2c3d4e", "key_ffffffffffffffff", "a_b_000000",
		"c_0A1B2C", "c_0a1b2", "cred-7", "_123456", "c_0a1b2c_",
		// Not UUIDs: upper case, a digit short, a dash astray.
		"8B1A9953-C461-4A3D-8F5E-1C7A42D0B6A1", "8b1a9953-c461-4a3d-8f5e-1c7a42d0b6a", "8b1a9953c-461-4a3d-8f5e-1c7a42d0b6a1",
	}, packed...)
	for i, id := range ids {
		*now = now.Add(time.Minute)
		if err := s.AddEvent(ctx, Event{Type: EventRetrying, InstanceID: "inst-i", RotationID: "rot-" + itoa(int64(i)),
			CredentialID: id, Detail: "grace 90m"}); err != nil {
			t.Fatal(err)
		}
	}
	events, err := s.Events(ctx, "inst-i", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != len(ids) {
		t.Fatalf("%d events, want %d", len(events), len(ids))
	}
	for i, e := range events {
		if want := ids[len(ids)-1-i]; e.CredentialID != want || e.Detail != "grace 90m" {
			t.Errorf("event %d: credential %q detail %q, want %q and %q", i, e.CredentialID, e.Detail, want, "grace 90m")
		}
	}
	raw := r.Client.Get(ctx, historyKey("inst-i")).Val()
	for _, id := range packed {
		if strings.Contains(raw, "\x1f"+id+"\x1f") {
			t.Errorf("history holds %s unpacked: %q", id, raw)
		}
	}
}

// The instance hash leaves out api_version at v3 and current_since when it
// repeats registered_at or last_rotated_at; both read the same, and a hash
// an earlier version wrote with them reads as written.
func TestInstanceDefaultsReadBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, r, now := newHistoryStore(t)
	registered := *now
	if err := s.PutInstance(ctx, Registration{ID: "inst-d", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: "cred-0"}); err != nil {
		t.Fatal(err)
	}
	check := func(step string, since time.Time) {
		t.Helper()
		in, err := s.Instance(ctx, "inst-d")
		if err != nil {
			t.Fatal(err)
		}
		if in.APIVersion != APIv3 || !in.CurrentSince.Equal(since) {
			t.Errorf("%s: api version %q, current since %s; want %q, %s", step, in.APIVersion, in.CurrentSince, APIv3, since)
		}
	}
	if n := r.Client.HExists(ctx, instanceKey("inst-d"), "current_since").Val(); n {
		t.Error("a registration wrote current_since")
	}
	check("registered", registered)
	*now = now.Add(time.Hour)
	rotateOnce(t, s, now, "inst-d", "rot-1", "cred-1")
	check("rotated", registered.Add(time.Hour+2*time.Second))
	if vals := r.Client.HMGet(ctx, instanceKey("inst-d"), "current_since", "api_version").Val(); vals[0] != nil || vals[1] != nil {
		t.Errorf("instance hash holds %v, want neither current_since nor api_version", vals)
	}
	old := registered.Add(time.Minute)
	r.Client.HSet(ctx, instanceKey("inst-d"), "current_since", ms(old), "api_version", APIv3)
	check("earlier layout", old)
}

// The second form's shorthands, RS "^" for a rotation's revoke_scheduled
// and RS "+" for a revocation of a previous credential at or after its
// revoke time, read back as the events they stand for, with their times:
// after a revocation exactly on time, one later, an event merged after
// that, an expedited revocation (before its revoke time: written whole),
// and the cap dropping the entry that "^" pointed into.
func TestHistoryShorthandsReadBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, r, now := newHistoryStore(t, WithEventCaps(4, 1000))
	step := func(d time.Duration) { *now = now.Add(d) }
	if err := s.PutInstance(ctx, Registration{ID: "inst-s", APIVersion: APIv3, ConfigVars: []string{"A_URL"},
		CurrentCredentialID: "k-0"}); err != nil {
		t.Fatal(err)
	}
	var want []string // newest last
	add := func(typ, rot, cred, detail string) {
		want = append(want, typ+" "+rot+" "+cred+" "+detail+" "+itoaMS(*now))
	}
	for i := 1; i <= 3; i++ {
		rot, cred, old := "rot-"+itoa(int64(i)), "k-"+itoa(int64(i)), "k-"+itoa(int64(i-1))
		if _, err := s.Claim(ctx, RotationRequest{InstanceID: "inst-s", RotationID: rot, Reason: ReasonScheduled}); err != nil {
			t.Fatal(err)
		}
		add(EventRequested, rot, "", ReasonScheduled)
		step(1500 * time.Millisecond)
		cfg := map[string]secret.String{"A_URL": secret.New("postgres://u:pw-" + rot + "@db/1")}
		if err := s.SavePending(ctx, "inst-s", rot, cred, cfg); err != nil {
			t.Fatal(err)
		}
		add(EventMinted, rot, cred, "")
		step(700 * time.Millisecond)
		if _, err := s.PromoteRotation(ctx, "inst-s", rot, cred, time.Hour, "grace 1h0m0s"); err != nil {
			t.Fatal(err)
		}
		revokeAt := now.Add(time.Hour)
		add(EventPushed, rot, cred, "grace 1h0m0s")
		add(EventPromoted, rot, cred, "")
		add(EventRevokeScheduled, rot, old, itoaMS(revokeAt))
		switch i {
		case 1: // on time
			*now = revokeAt
		case 2: // late, and an event of the rotation after it
			*now = revokeAt.Add(5250 * time.Millisecond)
		case 3: // expedited
			step(time.Minute)
			if _, err := s.ExpediteRevocation(ctx, "inst-s", old, "operator"); err != nil {
				t.Fatal(err)
			}
			add(EventRevokeExpedited, "", old, "operator")
			step(300 * time.Millisecond)
		}
		if err := s.MarkRevoked(ctx, "inst-s", old); err != nil {
			t.Fatal(err)
		}
		add(EventRevoked, rot, old, CredentialPrevious)
		if i == 2 {
			step(40 * time.Second)
			if err := s.AddEvent(ctx, Event{Type: EventRetrying, InstanceID: "inst-s", RotationID: rot,
				CredentialID: old, Detail: "noted"}); err != nil {
				t.Fatal(err)
			}
			add(EventRetrying, rot, old, "noted")
		}
		step(24 * time.Hour)
	}
	raw := r.Client.Get(ctx, historyKey("inst-s")).Val()
	// Rotation 1's revocation was on time, 2's late, 3's early.
	for _, form := range []string{`\x1e\^\x1e`, `\x1e\+$`, `\x1e\+\x1f[0-9a-z]+\x1e`, `\x1eL\x1f[0-9a-z]+\x1f\x1cp\x1b`} {
		if !regexp.MustCompile(form).MatchString(raw) {
			t.Errorf("history has no %s: %q", form, raw)
		}
	}
	events, err := s.Events(ctx, "inst-s", 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(events) - 1; i >= 0; i-- {
		e := events[i]
		got = append(got, e.Type+" "+e.RotationID+" "+e.CredentialID+" "+e.Detail+" "+itoaMS(e.At))
	}
	// The cap (4) keeps the entries of the three rotations and of the
	// expedition (no rotation): the registration's went, and rotation 1's
	// "^" was written out.
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events, oldest first:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
