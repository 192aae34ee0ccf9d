package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Hold is a revocation that waits for its credential to stop being used
// (docs/design.md, "Holds"). It is state in Redis, not a sleeping task: it
// survives restarts, and the revoke task that re-checks it is covered by
// the reconcile sweep like any other due revocation, because its revoke-due
// entry stays at the credential's revoke_at. It holds nothing secret.
type Hold struct {
	InstanceID   string    `json:"instance_id"`
	CredentialID string    `json:"credential_id"`
	RevokeAt     time.Time `json:"revoke_at"`     // the fixed grace's end (I2)
	HeldAt       time.Time `json:"held_at"`       // when the hold began
	CapAt        time.Time `json:"cap_at"`        // RevokeAt + REKEY_HOLD_MAX
	LastUsedAt   time.Time `json:"last_used_at"`  // the latest evidence, never after CheckedAt
	LastUsedBy   string    `json:"last_used_by"`  // a short non-secret hint; may be empty
	CheckedAt    time.Time `json:"checked_at"`    // the last re-check
	NextCheckAt  time.Time `json:"next_check_at"` // the next re-check, about
	Checks       int       `json:"checks"`        // how many times it was asked about
	Capped       bool      `json:"capped"`        // it reached its cap and is kept (REKEY_HOLD_AT_CAP=hold)
	ReleasedBy   string    `json:"released_by"`   // an operator asked for its release; the next run revokes
}

// holdKey is a hash of one Hold's fields.
//
//	rekey:hold:<instance id>:<credential id>
func holdKey(instanceID, credID string) string {
	return keyPrefix + "hold:" + instanceID + ":" + credID
}

// holdsKey is a ZSET of every hold, member "<instance id>/<credential id>",
// score the hold's start in milliseconds: its size and lowest score are the
// held count and the oldest hold (metrics, `rekey scheduler status`).
//
//	rekey:holds
func holdsKey() string { return keyPrefix + "holds" }

// HoldOf returns the credential's hold; ok is false when it is not held.
func (s *Store) HoldOf(ctx context.Context, instanceID, credID string) (Hold, bool, error) {
	m, err := s.rdb.HGetAll(ctx, holdKey(instanceID, credID)).Result()
	if err != nil {
		return Hold{}, false, fmt.Errorf("get hold: %w", err)
	}
	if len(m) == 0 {
		return Hold{}, false, nil
	}
	checks, _ := strconv.Atoi(m["checks"])
	return Hold{InstanceID: instanceID, CredentialID: credID, RevokeAt: fromMS(m["revoke_at"]),
		HeldAt: fromMS(m["held_at"]), CapAt: fromMS(m["cap_at"]), LastUsedAt: fromMS(m["last_used_at"]),
		LastUsedBy: m["last_used_by"], CheckedAt: fromMS(m["checked_at"]), NextCheckAt: fromMS(m["next_check_at"]),
		Checks: checks, Capped: m["capped"] == "1", ReleasedBy: m["released_by"]}, true, nil
}

// SaveHold records h, creating the hold or updating it, and appends an
// audit event of type event (EventRevocationHeld, EventHoldRechecked or
// EventHoldCapped) with detail. An operator's pending release is kept. It
// writes nothing, and answers ErrConflict, once the credential waits for
// its revocation no more (another run of its revoke task revoked it, or
// its record is gone): such a hold would be listed for ever; nor once it
// was expedited or an operator asked for the hold's release, which no hold
// outlasts (docs/design.md, "Holds").
func (s *Store) SaveHold(ctx context.Context, h Hold, event, detail string) error {
	keys := saveHoldKeys{hold: holdKey(h.InstanceID, h.CredentialID), holds: holdsKey(),
		credential: credentialKey(h.InstanceID, h.CredentialID)}
	capped := map[bool]string{true: "1", false: "0"}[h.Capped]
	err := saveHoldScript.Run(ctx, s.rdb, keys.list(), holdMember(h.InstanceID, h.CredentialID),
		ms(h.RevokeAt), ms(h.HeldAt), ms(h.CapAt), ms(h.LastUsedAt), h.LastUsedBy, ms(h.CheckedAt),
		ms(h.NextCheckAt), h.Checks, capped).Err()
	if err != nil {
		return scriptError("save hold", err)
	}
	return s.AddEvent(ctx, Event{Type: event, InstanceID: h.InstanceID, CredentialID: h.CredentialID,
		Detail: detail, At: h.CheckedAt})
}

// saveHoldKeys are the KEYS of saveHoldScript, one field per key, in order.
type saveHoldKeys struct {
	hold       string // KEYS[1] -> rekey:hold:<instance id>:<credential id>
	holds      string // KEYS[2] -> rekey:holds
	credential string // KEYS[3] -> rekey:cred:<instance id>:<credential id>
}

func (k saveHoldKeys) list() []string { return []string{k.hold, k.holds, k.credential} }

// saveHoldScript writes a hold while its credential waits for revocation
// (previous or discarded, not revoked), and marks the credential held
// (field "held"), so that markRevokedScript, which reads the credential's
// fields anyway, deletes the hold only when there may be one: a revocation
// never held costs it no command.
//
// KEYS: saveHoldKeys. ARGV[1]: the member "<instance id>/<credential id>";
// ARGV[2..10]: revoke_at, held_at (the member's score), cap_at,
// last_used_at, last_used_by, checked_at, next_check_at, checks, capped.
// Returns "ok"; error "conflict credential is ..." when it waits no more,
// or was expedited, and "conflict hold is released" once an operator asked
// for its release: a "revoke now" or a release that came while the run
// asked the issuer about usage is never held either.
var saveHoldScript = redis.NewScript(`
local c = redis.call('HMGET', KEYS[3], 'state', 'revoked_at', 'expedited_at', 'hold_released_by')
local st = c[1] or 'gone'
if (c[2] or '') ~= '' then st = 'revoked' elseif (c[3] or '') ~= '' then st = 'expedited' end
if st ~= 'previous' and st ~= 'discarded' then return redis.error_reply('conflict credential is ' .. st) end
if (c[4] or '') ~= '' or redis.call('HGET', KEYS[1], 'released_by') then return redis.error_reply('conflict hold is released') end
redis.call('HSET', KEYS[1], 'revoke_at', ARGV[2], 'held_at', ARGV[3], 'cap_at', ARGV[4], 'last_used_at', ARGV[5],
  'last_used_by', ARGV[6], 'checked_at', ARGV[7], 'next_check_at', ARGV[8], 'checks', ARGV[9], 'capped', ARGV[10])
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1])
redis.call('HSET', KEYS[3], 'held', '1')
return 'ok'
`)

// ReleaseHold ends the credential's hold with a hold_released event saying
// why, and reports whether there was one. Releasing twice is harmless. A
// release notes at on the credential (Credential.HoldReleasedAt): the
// revocation that follows is due from then, not from its revoke time, so
// that rekey_revoke_lag_seconds counts a hold's run-time as no lateness,
// also when the revocation is retried after the hold is gone.
func (s *Store) ReleaseHold(ctx context.Context, instanceID, credID, why string, at time.Time) (bool, error) {
	keys := releaseHoldKeys{hold: holdKey(instanceID, credID), holds: holdsKey(),
		credential: credentialKey(instanceID, credID), revokeDue: revokeDueKey()}
	n, err := releaseHoldScript.Run(ctx, s.rdb, keys.list(), holdMember(instanceID, credID), ms(at)).Int()
	if err != nil {
		return false, scriptError("release hold", err)
	}
	if n == 0 {
		return false, nil
	}
	return true, s.AddEvent(ctx, Event{Type: EventHoldReleased, InstanceID: instanceID, CredentialID: credID, Detail: why})
}

// releaseHoldKeys are the KEYS of releaseHoldScript, one field per key, in order.
type releaseHoldKeys struct {
	hold       string // KEYS[1] -> rekey:hold:<instance id>:<credential id>
	holds      string // KEYS[2] -> rekey:holds
	credential string // KEYS[3] -> rekey:cred:<instance id>:<credential id>
	revokeDue  string // KEYS[4] -> rekey:revoke_due
}

func (k releaseHoldKeys) list() []string { return []string{k.hold, k.holds, k.credential, k.revokeDue} }

// releaseHoldScript deletes a hold and, when there was one, notes its end
// on its credential (and that it is held no more, and who released it when
// an operator did: the release outlives the hold, so that a retry after a
// failed DELETE does not hold the credential again), unless the credential
// is gone (a HSET would make a hash of one field that never expires), and
// makes the revocation due
// from its release in the due index: a revocation the issuer then fails
// is late from the release, not by the whole hold
// (rekey_revoke_overdue_seconds, as rekey_revoke_lag_seconds counts).
//
// KEYS: releaseHoldKeys. ARGV[1]: the member "<instance id>/<credential
// id>"; ARGV[2]: the release time in ms. Returns 1 when the credential was
// held, else 0.
var releaseHoldScript = redis.NewScript(`
redis.call('ZREM', KEYS[2], ARGV[1])
local by = redis.call('HGET', KEYS[1], 'released_by')
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[3], 'hold_released_at', ARGV[2])
  if by then redis.call('HSET', KEYS[3], 'hold_released_by', by) end
  redis.call('HDEL', KEYS[3], 'held')
end
local due = redis.call('ZSCORE', KEYS[4], ARGV[1])
if due and tonumber(due) < tonumber(ARGV[2]) then redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1]) end
return 1
`)

// RequestHoldRelease marks the credential's hold as released by by (an
// operator): the next run of its revoke task revokes without asking the
// issuer. It returns ErrNotFound when the credential is not held.
func (s *Store) RequestHoldRelease(ctx context.Context, instanceID, credID, by string) error {
	keys := requestHoldReleaseKeys{hold: holdKey(instanceID, credID)}
	n, err := requestHoldReleaseScript.Run(ctx, s.rdb, keys.list(), by).Int()
	switch {
	case err != nil:
		return fmt.Errorf("release hold: %w", err)
	case n == 0:
		return fmt.Errorf("hold of %s/%s: %w", instanceID, credID, ErrNotFound)
	}
	return nil
}

// requestHoldReleaseKeys are the KEYS of requestHoldReleaseScript.
type requestHoldReleaseKeys struct {
	hold string // KEYS[1] -> rekey:hold:<instance id>:<credential id>
}

func (k requestHoldReleaseKeys) list() []string { return []string{k.hold} }

// requestHoldReleaseScript notes who asked for a hold's release, only
// while the hold exists: a revocation or a release may delete it between a
// check and a write, and the write would then leave a hold of one field,
// listed nowhere and never expiring, that HoldOf reports as held.
var requestHoldReleaseScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'released_by', ARGV[1])
return 1
`)

// Holds returns up to limit holds, fleet-wide, the oldest first. An index
// entry whose hold is gone (released between the two reads, or deleted
// outside rekey) is passed over and the entries after it are read in its
// place: fewer than limit means there are no more.
func (s *Store) Holds(ctx context.Context, limit int64) ([]Hold, error) {
	out := []Hold{}
	for start := int64(0); int64(len(out)) < limit; {
		want := limit - int64(len(out))
		members, err := s.rdb.ZRange(ctx, holdsKey(), start, start+want-1).Result()
		if err != nil {
			return nil, fmt.Errorf("list holds: %w", err)
		}
		for _, m := range members {
			inst, cred, _ := strings.Cut(m, "/")
			h, ok, err := s.HoldOf(ctx, inst, cred)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, h)
			}
		}
		if int64(len(members)) < want {
			break
		}
		start += want
	}
	return out, nil
}

// InstanceHolds returns the holds of an instance's credentials that wait
// for revocation, soonest revoke time first.
func (s *Store) InstanceHolds(ctx context.Context, instanceID string) ([]Hold, error) {
	prev, err := s.Previous(ctx, instanceID)
	if err != nil {
		return nil, err
	}
	out := []Hold{}
	for _, p := range prev {
		h, ok, err := s.HoldOf(ctx, instanceID, p.CredentialID)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, h)
		}
	}
	return out, nil
}

// HoldSummary is the fleet's holds in two figures.
type HoldSummary struct {
	Held   int64     // revocations held now
	Oldest time.Time // when the oldest began; zero when none
}

// HoldStats returns how many revocations are held and since when the
// oldest.
func (s *Store) HoldStats(ctx context.Context) (HoldSummary, error) {
	n, err := s.rdb.ZCard(ctx, holdsKey()).Result()
	if err != nil {
		return HoldSummary{}, fmt.Errorf("hold stats: %w", err)
	}
	if n == 0 {
		return HoldSummary{}, nil
	}
	zs, err := s.rdb.ZRangeWithScores(ctx, holdsKey(), 0, 0).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return HoldSummary{}, fmt.Errorf("hold stats: %w", err)
	}
	sum := HoldSummary{Held: n}
	if len(zs) == 1 {
		sum.Oldest = time.UnixMilli(int64(zs[0].Score)).UTC()
	}
	return sum, nil
}

// maxHeldScan bounds how many due revocations OldestUnheldRevocation looks
// at in one scrape: holds last at most REKEY_HOLD_MAX, so a fleet has few,
// and past this many the answer is an upper bound rather than a long script.
const maxHeldScan = 1000

// OldestUnheldRevocation returns the due revocation (revoke time at or
// before t, not revoked) that has waited longest without a hold, and false
// when every due one is held or none is due. A held revocation keeps its
// entry in the revoke-due index at its revoke time (the sweep relies on it),
// so the index's head alone would report a hold as overdue. At most one
// more entry than there are holds is looked at (one of them cannot be
// held), in one script: O((h+1) log n) for h holds. With more than
// maxHeldScan holds all at the index's head, it returns the entry after
// them, whose revoke time is no later than the answer's: the overdue it
// reports is never less than the real one.
func (s *Store) OldestUnheldRevocation(ctx context.Context, t time.Time) (Revocation, bool, error) {
	keys := oldestUnheldKeys{revokeDue: revokeDueKey(), holds: holdsKey()}
	res, err := oldestUnheldScript.Run(ctx, s.rdb, keys.list(), ms(t), maxHeldScan).StringSlice()
	if err != nil {
		return Revocation{}, false, scriptError("oldest unheld revocation", err)
	}
	if len(res) != 2 {
		return Revocation{}, false, nil
	}
	inst, cred, ok := strings.Cut(res[0], "/")
	score, err := strconv.ParseFloat(res[1], 64)
	if !ok || err != nil {
		return Revocation{}, false, fmt.Errorf("oldest unheld revocation: malformed entry %q", res[0])
	}
	return Revocation{InstanceID: inst, CredentialID: cred, RevokeAt: time.UnixMilli(int64(score)).UTC()}, true, nil
}

// oldestUnheldKeys are the KEYS of oldestUnheldScript, one field per key, in order.
type oldestUnheldKeys struct {
	revokeDue string // KEYS[1] -> rekey:revoke_due
	holds     string // KEYS[2] -> rekey:holds
}

func (k oldestUnheldKeys) list() []string { return []string{k.revokeDue, k.holds} }

// oldestUnheldScript walks the head of the revoke-due index up to the
// first entry the holds set does not name.
//
// KEYS: oldestUnheldKeys. ARGV[1]: now in ms; ARGV[2]: the most holds to
// look past (maxHeldScan). Returns {member, score} of the oldest due entry
// not held; past ARGV[2] held entries, the next one; {} when none is due or
// every due entry is held.
var oldestUnheldScript = redis.NewScript(`
local holds = redis.call('ZCARD', KEYS[2])
local capped = holds > tonumber(ARGV[2])
local n = math.min(holds, tonumber(ARGV[2])) + 1
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, n)
for i = 1, #due, 2 do
  if not redis.call('ZSCORE', KEYS[2], due[i]) then return {due[i], due[i + 1]} end
end
if capped and #due == 2 * n then return {due[#due - 1], due[#due]} end
return {}
`)

func holdMember(instanceID, credID string) string { return instanceID + "/" + credID }

// Sentence says to the customer why the hold's credential is not revoked
// yet: when and by whom it was last used, and the latest revocation time.
// The app's log stream (handlers) and the dashboard (internal/web) carry
// the same words; vars are the instance's config var names.
func (h Hold) Sentence(vars []string, now time.Time) string {
	name := strings.Join(vars, ", ")
	if name == "" {
		name = "add-on"
	}
	return "your old " + name + " credential " + h.UsedText(now) +
		"; it will be revoked once it stops being used, at the latest " + h.CapAt.UTC().Format(time.RFC3339)
}

// UsedText says when and by whom the credential was last used, as of now.
func (h Hold) UsedText(now time.Time) string {
	s := "was used "
	switch d := now.Sub(h.LastUsedAt); {
	case d < time.Minute:
		s += "less than a minute ago"
	case d < 2*time.Minute:
		s += "1 minute ago"
	default:
		s += strconv.Itoa(int(d/time.Minute)) + " minutes ago"
	}
	if h.LastUsedBy != "" {
		s += " by " + h.LastUsedBy
	}
	return s
}
