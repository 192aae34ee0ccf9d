package store

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
)

// realisticHistory registers an instance and rotates it three times as the
// handlers do, with a clock that moves 100 ms at every reading and the
// superseded credential revoked a grace (2h) after its rotation; the
// third rotation's revocation is left waiting. It returns the store, the
// instance's raw history string, its events and the fleet stream's, one
// line each (the fleet's without their stream ids).
func realisticHistory(t *testing.T) (*Store, *redistest.Redis, *time.Time, string, []string, []string) {
	t.Helper()
	ctx := context.Background()
	r := redistest.New(t)
	sealer, err := seal.New(bytes.Repeat([]byte{5}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := New(r.Client, sealer, WithClock(func() time.Time { now = now.Add(100 * time.Millisecond); return now }))
	const id = "0000002a-0000-4000-8000-00000000002a"
	tok := &heroku.Token{AccessToken: secret.New("HRKU-a"), RefreshToken: secret.New("HRKU-r"),
		ExpiresAt: time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)}
	if err := s.Register(ctx, Registration{ID: id, APIVersion: APIv3, ConfigVars: []string{"MYADDON_URL"},
		CurrentCredentialID: "cred_0000002a00000000"}, tok); err != nil {
		t.Fatal(err)
	}
	const grace = 2 * time.Hour
	for k := 1; k <= 3; k++ {
		rot := fmt.Sprintf("rot_%024x", 0x5eed0000+k)
		cred := fmt.Sprintf("cred_0000002a%08x", k)
		if _, err := s.Claim(ctx, RotationRequest{InstanceID: id, RotationID: rot, Reason: ReasonScheduled}); err != nil {
			t.Fatal(err)
		}
		cfg := map[string]secret.String{"MYADDON_URL": secret.New("postgres://u:" + rot + "@db/d1")}
		if err := s.SavePending(ctx, id, rot, cred, cfg); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkPushAttempt(ctx, rot, pushTargetOf(t, s, id)); err != nil {
			t.Fatal(err)
		}
		p, err := s.PromotePushed(ctx, id, rot, cred, grace, "grace "+grace.String(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if k == 3 {
			break
		}
		now = now.Add(grace + 1234*time.Millisecond)
		if err := s.MarkRevoked(ctx, id, p.Previous.CredentialID); err != nil {
			t.Fatal(err)
		}
		now = now.Add(24 * time.Hour)
	}
	events, err := s.Events(ctx, id, 100)
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := s.FleetEvents(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	return s, r, &now, r.Client.Get(ctx, historyKey(id)).Val(), eventLines(events), fleetLines(fleet)
}

func eventLines(events []Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = fmt.Sprintf("%s %s %s %s %s %q %s", e.ID, e.Type, e.InstanceID, e.RotationID, e.CredentialID, e.Detail,
			e.At.UTC().Format(time.RFC3339Nano))
	}
	return out
}

// fleetLines are eventLines less the stream ids, which the server gives.
func fleetLines(events []Event) []string {
	out := eventLines(events)
	for i, l := range out {
		_, out[i], _ = strings.Cut(l, " ")
	}
	return out
}

// firstForm says whether a history entry is of the first form (US after
// its time).
func firstForm(entry string) bool {
	return strings.IndexAny(entry, "\x19\x1a\x1c\x1d\x1f") == strings.IndexByte(entry, 0x1f)
}

// forms counts the entries of a history string of each form.
func forms(raw string) (first, second int) {
	for _, e := range strings.Split(raw, historySep) {
		if firstForm(e) {
			first++
		} else {
			second++
		}
	}
	return first, second
}

// realisticID is the instance realisticHistory registers.
const realisticID = "0000002a-0000-4000-8000-00000000002a"

// previousFormHistory is the history string realisticHistory left before
// entries took the second form (dt from the event before, the revoke time
// by reference to the grace): entries of the first form.
const previousFormHistory = "mjzdysbg\x1f\x1dAAAAAAAAAABe7QAD\x1ec\x1f\x1f\x1f\x1cs\x1eg\x1f2s\x1f\x1dcred_AAAAKgAAAAD\x1eH\x1f8c\x1f\x1cG5k0\x1eI\x1f8c\x1ej\x1f8c\x1f^\x1f\x1dS5k0\x1bmjxu8kra\x1f\x1dAAAAAAAAAABe7QAC\x1ec\x1f\x1f\x1f\x1cs\x1eg\x1f2s\x1f\x1dcred_AAAAKgAAAAC\x1eH\x1f8c\x1f\x1cG5k0\x1eI\x1f8c\x1ej\x1f8c\x1f^\x1f\x1dS5k0\x1eL\x1f4acte\x1f\x1cp\x1bmjwaid74\x1f\x1dAAAAAAAAAABe7QAB\x1ec\x1f\x1f\x1f\x1cs\x1eg\x1f2s\x1f\x1dcred_AAAAKgAAAAB\x1eH\x1f8c\x1f\x1cG5k0\x1eI\x1f8c\x1ej\x1f8c\x1f^\x1f\x1dS5k0\x1eL\x1f4acte\x1f\x1cp\x1bmjwaid4c\x1f\x1ea\x1f\x1f\x1dcred_AAAAKgAAAAA"

// previousFormEvents are the events previousFormHistory reads as, as
// Events returned them before the second form.
var previousFormEvents = []string{
	"1767510248968-4 revoke_scheduled 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0003 cred_0000002a00000002 \"1767517448968\" 2026-01-04T07:04:08.968Z",
	"1767510248968-3 promoted 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0003 cred_0000002a00000003 \"\" 2026-01-04T07:04:08.968Z",
	"1767510248968-2 pushed 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0003 cred_0000002a00000003 \"grace 2h0m0s\" 2026-01-04T07:04:08.968Z",
	"1767510248768-1 minted 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0003 cred_0000002a00000003 \"\" 2026-01-04T07:04:08.768Z",
	"1767510248668-0 requested 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0003  \"scheduled\" 2026-01-04T07:04:08.668Z",
	"1767423848568-5 revoked 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0002 cred_0000002a00000001 \"previous\" 2026-01-03T07:04:08.568Z",
	"1767416647234-4 revoke_scheduled 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0002 cred_0000002a00000001 \"1767423847234\" 2026-01-03T05:04:07.234Z",
	"1767416647234-3 promoted 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0002 cred_0000002a00000002 \"\" 2026-01-03T05:04:07.234Z",
	"1767416647234-2 pushed 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0002 cred_0000002a00000002 \"grace 2h0m0s\" 2026-01-03T05:04:07.234Z",
	"1767416647034-1 minted 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0002 cred_0000002a00000002 \"\" 2026-01-03T05:04:07.034Z",
	"1767416646934-0 requested 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0002  \"scheduled\" 2026-01-03T05:04:06.934Z",
	"1767330246834-5 revoked 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0001 cred_0000002a00000000 \"previous\" 2026-01-02T05:04:06.834Z",
	"1767323045500-4 revoke_scheduled 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0001 cred_0000002a00000000 \"1767330245500\" 2026-01-02T03:04:05.5Z",
	"1767323045500-3 promoted 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0001 cred_0000002a00000001 \"\" 2026-01-02T03:04:05.5Z",
	"1767323045500-2 pushed 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0001 cred_0000002a00000001 \"grace 2h0m0s\" 2026-01-02T03:04:05.5Z",
	"1767323045300-1 minted 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0001 cred_0000002a00000001 \"\" 2026-01-02T03:04:05.3Z",
	"1767323045200-0 requested 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0001  \"scheduled\" 2026-01-02T03:04:05.2Z",
	"1767323045100-0 registered 0000002a-0000-4000-8000-00000000002a  cred_0000002a00000000 \"\" 2026-01-02T03:04:05.1Z",
}

// previousFormFleet are the fleet stream's events after realisticHistory
// before the second form, their stream ids left out.
var previousFormFleet = []string{
	"revoke_scheduled 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0003 cred_0000002a00000002 \"1767517448968\" 2026-01-04T07:04:08.968Z",
	"promoted 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0003 cred_0000002a00000003 \"\" 2026-01-04T07:04:08.968Z",
	"pushed 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0003 cred_0000002a00000003 \"grace 2h0m0s\" 2026-01-04T07:04:08.968Z",
	"revoked 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0002 cred_0000002a00000001 \"previous\" 2026-01-03T07:04:08.568Z",
	"revoke_scheduled 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0002 cred_0000002a00000001 \"1767423847234\" 2026-01-03T05:04:07.234Z",
	"promoted 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0002 cred_0000002a00000002 \"\" 2026-01-03T05:04:07.234Z",
	"pushed 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0002 cred_0000002a00000002 \"grace 2h0m0s\" 2026-01-03T05:04:07.234Z",
	"revoked 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0001 cred_0000002a00000000 \"previous\" 2026-01-02T05:04:06.834Z",
	"revoke_scheduled 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0001 cred_0000002a00000000 \"1767330245500\" 2026-01-02T03:04:05.5Z",
	"promoted 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0001 cred_0000002a00000001 \"\" 2026-01-02T03:04:05.5Z",
	"pushed 0000002a-0000-4000-8000-00000000002a rot_00000000000000005eed0001 cred_0000002a00000001 \"grace 2h0m0s\" 2026-01-02T03:04:05.5Z",
	"registered 0000002a-0000-4000-8000-00000000002a  cred_0000002a00000000 \"\" 2026-01-02T03:04:05.1Z",
}

// A realistic run of rotations (the clock moving, revocations a grace
// later) reads back exactly as it did in the first form, from a history
// of the second form that takes fewer bytes; a history of the first form
// still reads as it did.
func TestHistorySecondFormReadsAsTheFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, r, _, raw, events, fleet := realisticHistory(t)
	if strings.Join(events, "\n") != strings.Join(previousFormEvents, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(events, "\n"), strings.Join(previousFormEvents, "\n"))
	}
	if strings.Join(fleet, "\n") != strings.Join(previousFormFleet, "\n") {
		t.Errorf("fleet events:\n%s\nwant:\n%s", strings.Join(fleet, "\n"), strings.Join(previousFormFleet, "\n"))
	}
	if first, _ := forms(raw); first > 0 || len(raw) > len(previousFormHistory)-3*12 {
		t.Errorf("history of %d bytes (first form %d), want the second form and 12 bytes less a rotation: %q",
			len(raw), len(previousFormHistory), raw)
	}

	// The same history in the first form reads as it did.
	s, _, _, _, _, _ := realisticHistory(t)
	if err := r.Client.Set(ctx, historyKey(realisticID), previousFormHistory, 0).Err(); err != nil {
		t.Fatal(err)
	}
	old, err := s.Events(ctx, realisticID, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := eventLines(old); strings.Join(got, "\n") != strings.Join(previousFormEvents, "\n") {
		t.Errorf("first form events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(previousFormEvents, "\n"))
	}
}

// An event of a rotation whose entry is of the first form joins it in the
// first form, and reads as the same event joining an entry of the second.
func TestHistoryEventJoinsAFirstFormEntry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	revokeAt := time.Date(2026, 1, 4, 9, 5, 0, 0, time.UTC)
	revoke := func(firstForm bool) (string, []string) {
		s, r, now, _, _, _ := realisticHistory(t)
		if firstForm {
			if err := r.Client.Set(ctx, historyKey(realisticID), previousFormHistory, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		*now = revokeAt
		if err := s.MarkRevoked(ctx, realisticID, "cred_0000002a00000002"); err != nil {
			t.Fatal(err)
		}
		events, err := s.Events(ctx, realisticID, 100)
		if err != nil {
			t.Fatal(err)
		}
		return r.Client.Get(ctx, historyKey(realisticID)).Val(), eventLines(events)
	}
	firstRaw, first := revoke(true)
	secondRaw, second := revoke(false)
	if strings.Join(first, "\n") != strings.Join(second, "\n") {
		t.Errorf("events after a revocation joined a first form entry:\n%s\nand a second form one:\n%s",
			strings.Join(first, "\n"), strings.Join(second, "\n"))
	}
	if len(first) != len(previousFormEvents)+1 || !strings.Contains(first[0], " revoked ") ||
		!strings.Contains(first[0], "rot_00000000000000005eed0003 cred_0000002a00000002") {
		t.Errorf("newest event %q of %d", first[0], len(first))
	}
	if first, second := forms(firstRaw); !strings.HasPrefix(firstRaw, previousFormHistory[:strings.IndexByte(previousFormHistory, 0x1b)]) ||
		first != 4 || second != 0 {
		t.Errorf("first form history after the revocation: %q", firstRaw)
	}
	if first, _ := forms(secondRaw); first > 0 {
		t.Errorf("second form history after the revocation: %q", secondRaw)
	}
}

// secondFormHead is how versions before the third form read an entry's
// head (head_of's pattern then): its time in base 36, a separator, the
// rotation.
var secondFormHead = regexp.MustCompile(`^([^\x1c\x1d\x1e\x1f]*)([\x1c\x1d\x1f]?)([^\x1e]*)`)

// Entries flush writes now are of the third form, whose shorthands ("^",
// "+") versions before it do not read. Such a version, still running
// during a deploy or after a rollback, must not merge events into them:
// it would time its event from the wrong one and name the wrong
// credential. Read with its pattern, a third form entry has no time, and
// it merges only into an entry whose time it reads.
func TestPreviousVersionsFindNoEntryOfTheThirdFormToMergeInto(t *testing.T) {
	t.Parallel()
	_, _, _, raw, _, _ := realisticHistory(t)
	for _, entry := range strings.Split(raw, historySep) {
		m := secondFormHead.FindStringSubmatch(entry)
		if _, err := strconv.ParseInt(m[1], 36, 64); err == nil {
			t.Errorf("entry %q: a version before the third form reads its time %q and may merge into it", entry, m[1])
		}
	}
	if !strings.Contains(raw, "\x1e^") || !strings.Contains(raw, "\x1e+") {
		t.Errorf("history without the shorthands this test is about: %q", raw)
	}
}

// A revocation joining an entry of the second form (written before the
// third) is written whole, as that form has it, and reads as the same
// event joining an entry of the third form.
func TestHistoryEventJoinsASecondFormEntry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	revokeAt := time.Date(2026, 1, 4, 9, 5, 0, 0, time.UTC)
	revoke := func(secondForm bool) (string, []string) {
		s, r, now, raw, _, _ := realisticHistory(t)
		if secondForm {
			// The newest entry, rotation 3's, as the second form wrote it.
			newest, rest, _ := strings.Cut(raw, historySep)
			newest = strings.Replace(newest, "\x1a", "\x1d", 1)
			newest = strings.Replace(newest, "\x1e^", "\x1ej\x1f\x1f^", 1)
			if err := r.Client.Set(ctx, historyKey(realisticID), newest+historySep+rest, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		*now = revokeAt
		if err := s.MarkRevoked(ctx, realisticID, "cred_0000002a00000002"); err != nil {
			t.Fatal(err)
		}
		events, err := s.Events(ctx, realisticID, 100)
		if err != nil {
			t.Fatal(err)
		}
		return r.Client.Get(ctx, historyKey(realisticID)).Val(), eventLines(events)
	}
	secondRaw, second := revoke(true)
	thirdRaw, third := revoke(false)
	if strings.Join(second, "\n") != strings.Join(third, "\n") {
		t.Errorf("events after a revocation joined a second form entry:\n%s\nand a third form one:\n%s",
			strings.Join(second, "\n"), strings.Join(third, "\n"))
	}
	newest, _, _ := strings.Cut(secondRaw, historySep)
	if !strings.Contains(newest, "\x1dAAAAAAAAAABe7QAD") || strings.Contains(newest, "\x1e+") || strings.Contains(newest, "\x1e^") ||
		!strings.Contains(newest, "\x1eL\x1f") {
		t.Errorf("second form entry after the revocation: %q", newest)
	}
	if newest, _, _ := strings.Cut(thirdRaw, historySep); !strings.Contains(newest, "\x1e+") {
		t.Errorf("third form entry after the revocation, without its shorthand: %q", newest)
	}
}
