package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Event is one audit event: a step of a rotation or of an instance's life.
// Detail is a plain sentence or a timestamp; it never holds a secret.
type Event struct {
	ID           string    `json:"id"`
	Type         string    `json:"type"`
	InstanceID   string    `json:"instance_id"`
	RotationID   string    `json:"rotation_id,omitempty"`
	CredentialID string    `json:"credential_id,omitempty"`
	Detail       string    `json:"detail,omitempty"`
	At           time.Time `json:"at"`
}

// AddEvent records an event that is not part of a state change, for
// example a transient failure that will be retried.
func (s *Store) AddEvent(ctx context.Context, e Event) error {
	if e.At.IsZero() {
		e.At = s.now()
	}
	keys := addEventKeys{history: historyKey(e.InstanceID), events: eventsKey()}
	args := []any{e.InstanceID, e.Type, e.RotationID, e.CredentialID, e.Detail, ms(e.At), s.eventsPerInstance, s.eventsGlobal}
	if err := addEventScript.Run(ctx, s.rdb, keys.list(), args...).Err(); err != nil {
		return fmt.Errorf("add event: %w", err)
	}
	return nil
}

// addEventKeys are the KEYS of addEventScript, one field per key, in order.
type addEventKeys struct {
	history string // KEYS[1] -> rekey:history:<instance id>
	events  string // KEYS[2] -> rekey:events
}

func (k addEventKeys) list() []string { return []string{k.history, k.events} }

// addEventScript records one event.
//
// KEYS: addEventKeys. ARGV: instance id, type, rotation id, credential id,
// detail, at ms, instance event cap, fleet event cap. Returns "ok".
var addEventScript = eventScript(`
emit(KEYS[1], KEYS[2], ARGV[7], ARGV[8], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
return 'ok'
`)

// Events returns up to n of an instance's most recent events, newest first.
// An instance whose events are still in the stream of an earlier version
// (legacyEventsKey) has them read from there too, and moved into its
// history (migrateHistory), so the next read finds them there.
func (s *Store) Events(ctx context.Context, instanceID string, n int64) ([]Event, error) {
	pipe := s.rdb.Pipeline()
	history := pipe.Get(ctx, historyKey(instanceID))
	legacy := pipe.XRevRange(ctx, legacyEventsKey(instanceID), "+", "-")
	_, _ = pipe.Exec(ctx) // each command's error is looked at below
	if err := legacy.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read events: %w", err)
	}
	entries, err := s.historyEntries(ctx, instanceID, history)
	if err != nil {
		return nil, err
	}
	// An entry may name the first credential of the one below it ("^"):
	// decode from the oldest. An event's id is its time and its place in
	// its entry; one that an older event of the instance has already (the
	// entries a script writes for several rotations share a time) takes the
	// next free place, so ids are unique in the instance and the same on
	// every read.
	decoded := make([][]Event, len(entries))
	older := ""
	used := map[string]bool{}
	for i := len(entries) - 1; i >= 0; i-- {
		decoded[i] = decodeHistory(instanceID, entries[i], older)
		older = firstCredential(decoded[i])
		for j := range decoded[i] {
			e := &decoded[i][j]
			for n := j + 1; used[e.ID]; n++ {
				e.ID = strconv.FormatInt(ms(e.At), 10) + "-" + strconv.Itoa(n)
			}
			used[e.ID] = true
		}
	}
	if int64(len(decoded)) > n {
		decoded = decoded[:n]
	}
	var out []Event
	for _, events := range decoded {
		out = appendNewestFirst(out, events)
	}
	// An entry may take an event after a newer entry was pushed (a
	// revocation joins its rotation's entry): order by time across entries.
	slices.SortStableFunc(out, func(a, b Event) int { return b.At.Compare(a.At) })
	if old := legacy.Val(); len(old) > 0 {
		for _, m := range old {
			out = append(out, streamEvents(m)...)
		}
		if err := s.migrateHistory(ctx, instanceID, old); err != nil {
			return nil, err
		}
	}
	if int64(len(out)) > n {
		out = out[:n]
	}
	return out, nil
}

// historyEntries returns the entries of an instance's history, newest
// first, from get, the GET of its key: the string, or, when the key still
// holds the LIST an earlier version wrote, the list read anew. A list that
// another process's write turned into the string between the two reads is
// read again as the string.
func (s *Store) historyEntries(ctx context.Context, instanceID string, get *redis.StringCmd) ([]string, error) {
	key := historyKey(instanceID)
	v, err := get.Result()
	for range 3 {
		switch {
		case err == nil:
			return strings.FieldsFunc(v, func(r rune) bool { return r == rune(historySep[0]) }), nil
		case errors.Is(err, redis.Nil):
			return nil, nil
		case !isWrongType(err):
			return nil, fmt.Errorf("read events: %w", err)
		}
		list, lerr := s.rdb.LRange(ctx, key, 0, -1).Result()
		switch {
		case lerr == nil:
			return list, nil
		case !isWrongType(lerr):
			return nil, fmt.Errorf("read events: %w", lerr)
		}
		v, err = s.rdb.Get(ctx, key).Result()
	}
	return nil, fmt.Errorf("read events of %s: its history changed type while read", instanceID)
}

// isWrongType reports whether err is Redis's answer to a command on a key
// of another type.
func isWrongType(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE") }

// appendNewestFirst appends events, given in the order they happened, to
// out newest first.
func appendNewestFirst(out, events []Event) []Event {
	for i := len(events) - 1; i >= 0; i-- {
		out = append(out, events[i])
	}
	return out
}

// FleetEvents returns up to n of the fleet's most recent events, newest first.
func (s *Store) FleetEvents(ctx context.Context, n int64) ([]Event, error) {
	msgs, err := s.rdb.XRevRangeN(ctx, eventsKey(), "+", "-", n).Result()
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	var out []Event
	for _, m := range msgs {
		out = append(out, streamEvents(m)...)
		if int64(len(out)) >= n {
			return out[:n], nil
		}
	}
	return out, nil
}

// streamEvents returns the events of one stream entry, newest first: an
// entry of the fleet stream (history layout), or one event of either
// stream as versions before the history list wrote it.
func streamEvents(m redis.XMessage) []Event {
	str := func(k string) string { v, _ := m.Values[k].(string); return v }
	if entry := str("e"); entry != "" {
		events := decodeHistory(str("i"), entry, "")
		for i := range events {
			events[i].ID = m.ID + "/" + strconv.Itoa(i)
		}
		return appendNewestFirst(nil, events)
	}
	at, _ := strconv.ParseInt(str("at"), 10, 64)
	return []Event{{ID: m.ID, Type: str("type"), InstanceID: str("instance_id"), RotationID: str("rotation_id"),
		CredentialID: str("credential_id"), Detail: str("detail"), At: fromMSInt(at)}}
}

// migrateHistory moves the events of an instance's legacy stream, old
// (newest first, as read), to the end of its history, one entry per
// rotation as flush writes them (an event of no rotation in an entry of its
// own), so the cap keeps as many rotations as it does of new ones; and
// deletes the stream. It does nothing when the stream changed since it was
// read (a process of an earlier version still writing it): the next read
// tries again.
func (s *Store) migrateHistory(ctx context.Context, instanceID string, old []redis.XMessage) error {
	args := []any{len(old), s.eventsPerInstance}
	for _, entry := range legacyEntries(old) {
		args = append(args, encodeHistoryEntry(entry))
	}
	keys := migrateHistoryKeys{legacy: legacyEventsKey(instanceID), history: historyKey(instanceID)}
	if err := migrateHistoryScript.Run(ctx, s.rdb, keys.list(), args...).Err(); err != nil {
		return fmt.Errorf("move events of %s: %w", instanceID, err)
	}
	return nil
}

// legacyEntries groups the events of a legacy stream, old (newest first,
// as read), by rotation: each group's events in the order they happened,
// the groups newest first by their first event.
func legacyEntries(old []redis.XMessage) [][]Event {
	var groups [][]Event
	at := map[string]int{} // rotation id -> its group
	for i := len(old) - 1; i >= 0; i-- {
		events := streamEvents(old[i])
		for j := len(events) - 1; j >= 0; j-- {
			e := events[j]
			g, ok := at[e.RotationID]
			if !ok || e.RotationID == "" {
				g = len(groups)
				at[e.RotationID] = g
				groups = append(groups, nil)
			}
			groups[g] = append(groups[g], e)
		}
	}
	slices.Reverse(groups)
	return groups
}

// migrateHistoryKeys are the KEYS of migrateHistoryScript, one field per
// key, in order.
type migrateHistoryKeys struct {
	legacy  string // KEYS[1] -> rekey:events:<instance id> (a STREAM)
	history string // KEYS[2] -> rekey:history:<instance id>
}

func (k migrateHistoryKeys) list() []string { return []string{k.legacy, k.history} }

// migrateHistoryScript appends a legacy stream's events to the history
// and deletes the stream, keeping the history within its cap and the
// stream's expiry (a retiring instance's) on the history.
//
// KEYS: migrateHistoryKeys. ARGV: the stream's length as read, the cap,
// then the entries, newest first. Returns "moved" or "changed" (the stream
// is not as read: nothing done).
var migrateHistoryScript = redis.NewScript(luaHistory + `
if redis.call('XLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return 'changed' end
local ttl = redis.call('PTTL', KEYS[1])
local entries, old_ttl = history_load(KEYS[2])
for i = 3, #ARGV do entries[#entries + 1] = ARGV[i] end
history_trim(entries, tonumber(ARGV[2]))
if ttl <= 0 then ttl = old_ttl end
history_save(KEYS[2], entries, ttl)
redis.call('DEL', KEYS[1])
return 'moved'
`)

func fromMSInt(n int64) time.Time { return time.UnixMilli(n).UTC() }
