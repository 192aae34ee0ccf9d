package store

import (
	"context"
)

// Quarantine sets an instance aside with a reason people can read: out of
// the due index, in the quarantined zset, with a "quarantined" event, like
// a scheduled-failure quarantine (schedule.go). The instance stays
// registered, keeps its tokens and can still be rotated on request; a
// successful rotation or Unquarantine ends the quarantine, and so does a
// registration storing new tokens when reason ends with RegisterAgain
// (registerScript). It reports
// whether the instance was newly quarantined: false when it already was, or
// is deprovisioned (nothing to set aside). Error: ErrNotFound.
func (s *Store) Quarantine(ctx context.Context, id, reason string) (bool, error) {
	keys := newQuarantineKeys(id)
	args := []any{id, ms(s.now()), reason, s.eventsPerInstance, s.eventsGlobal}
	res, err := quarantineScript.Run(ctx, s.rdb, keys.list(), args...).Text()
	if err != nil {
		return false, scriptError("quarantine "+id, err)
	}
	return res == "quarantined", nil
}

// quarantineKeys are the KEYS of quarantineScript, one field per key, in order.
type quarantineKeys struct {
	instance       string // KEYS[1] -> rekey:instance:<id>
	due            string // KEYS[2] -> rekey:due
	quarantined    string // KEYS[3] -> rekey:quarantined
	instanceEvents string // KEYS[4] -> rekey:history:<id>
	events         string // KEYS[5] -> rekey:events
}

func newQuarantineKeys(id string) quarantineKeys {
	return quarantineKeys{instance: instanceKey(id), due: dueKey(), quarantined: quarantinedKey(),
		instanceEvents: historyKey(id), events: eventsKey()}
}

func (k quarantineKeys) list() []string {
	return []string{k.instance, k.due, k.quarantined, k.instanceEvents, k.events}
}

// quarantineScript quarantines one instance.
//
// KEYS: quarantineKeys, one field per key, in order.
// ARGV: instance id, now ms, reason, instance event cap, fleet event cap.
// Returns "quarantined", "already" or "deprovisioned". Error: "not_found".
var quarantineScript = eventScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('not_found') end
if get(KEYS[1], 'deprovisioned_at') ~= '' then return 'deprovisioned' end
if get(KEYS[1], 'quarantined_at') ~= '' then return 'already' end
redis.call('HSET', KEYS[1], 'quarantined_at', ARGV[2], 'quarantine_reason', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
emit(KEYS[4], KEYS[5], ARGV[4], ARGV[5], ARGV[1], 'quarantined', '', '', ARGV[3], ARGV[2])
return 'quarantined'
`)
