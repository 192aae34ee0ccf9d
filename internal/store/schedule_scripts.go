package store

import "github.com/redis/go-redis/v9"

// luaSchedule is prepended, after luaEmit, to every script that keeps the
// due index current (registration, promote, fail, deprovision, and the
// scripts below). Times are milliseconds since the Unix epoch; every number
// stays below 2^53, so Lua's doubles hold it exactly.
//
// sched_period reads the rotation period the scheduler published in the
// schedule hash, or def when none has been published; 0 means scheduled
// rotation is off and the due index is left alone.
//
// next_slot returns the smallest k*p + (h mod p) at or after t: the
// instance's slot (h is its slot hash, see slotHash) in the first period
// that still has it ahead. NextSlot computes the same in Go.
//
// schedulable reports whether the instance belongs in the due index: it
// exists, is live, has not opted out and is not quarantined.
//
// first_due is when an instance not yet in the index is due: its slot at
// least half a period after its last rotation, or its first slot after
// registration when it never rotated. It may be in the past (overdue).
//
// score formats a time as a ZSET score without an exponent.
const luaSchedule = `
local function sched_period(cfg, def)
  local p = redis.call('HGET', cfg, 'period_ms')
  if p then return tonumber(p) end
  return tonumber(def)
end
local function sched_quarantine_after(cfg, def)
  local n = redis.call('HGET', cfg, 'quarantine_after')
  if n then return tonumber(n) end
  return tonumber(def)
end
local function next_slot(h, p, t)
  local s = math.fmod(h, p)
  local n = math.ceil((t - s) / p) * p + s
  if n < t then n = n + p elseif n - p >= t then n = n - p end
  return n
end
local function schedulable(ikey)
  return redis.call('EXISTS', ikey) == 1 and get(ikey, 'deprovisioned_at') == '' and
    get(ikey, 'sched_opt_out') ~= '1' and get(ikey, 'quarantined_at') == ''
end
local function first_due(ikey, h, p)
  local last = tonumber(get(ikey, 'last_rotated_at'))
  if last and last > 0 then return next_slot(h, p, last + math.floor(p / 2)) end
  return next_slot(h, p, tonumber(get(ikey, 'registered_at')) or 0)
end
local function score(t) return string.format('%.0f', t) end
`

// moveDueScript moves a due entry to a new time, unless it moved since it
// was read: the compare-and-set by which a sweep takes an entry (to its
// lease time, so that no other sweep takes it while its rotation runs) or
// defers it (to the instance's maintenance window). Of two sweeps that read
// the same entry, only one moves it; that is what lets two schedulers run
// at once.
//
// KEYS: moveDueKeys (due.go), one field per key, in order.
// ARGV: instance id, due ms (as read), new due ms, now ms, instance event
// cap, fleet event cap, event type ("" for none), event detail.
// Returns 1 when moved, 0 when the entry had moved already (or is gone).
var moveDueScript = eventScript(`
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not cur or tonumber(cur) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
if ARGV[7] ~= '' then
  emit(KEYS[2], KEYS[3], ARGV[5], ARGV[6], ARGV[1], ARGV[7], '', '', ARGV[8], ARGV[4])
end
return 1
`)

// noteScheduledScript records a scheduled rotation about to be enqueued:
// the instance joins the scheduled backlog (left again when the rotation
// is promoted or fails) and a "scheduled" audit event names the rotation.
//
// KEYS: noteScheduledKeys (due.go), one field per key, in order. ARGV: instance id, rotation id, now ms, instance event cap, fleet
// event cap, event detail. Returns "ok".
var noteScheduledScript = eventScript(`
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
emit(KEYS[2], KEYS[3], ARGV[4], ARGV[5], ARGV[1], 'scheduled', ARGV[2], '', ARGV[6], ARGV[3])
return 'ok'
`)

// setScheduleScript sets an instance's opt-out and maintenance window and
// brings its due entry in line: removed on opt-out, added when it opts
// back in, at first_due but no earlier than now (an overdue entry's time
// may be one an earlier scheduled rotation already used as its id).
//
// KEYS: setScheduleKeys (schedule.go), one field per key, in order.
// ARGV: instance id, opt-out ("1" or ""), window ("HH-HH" or ""), slot
// hash, default period ms, now ms, instance event cap, fleet event cap,
// event detail.
// Returns "ok". Errors: "not_found", "deprovisioned".
var setScheduleScript = eventScript(luaSchedule, `
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('not_found') end
if get(KEYS[1], 'deprovisioned_at') ~= '' then return redis.error_reply('deprovisioned') end
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'sched_opt_out', '1')
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('HDEL', KEYS[1], 'sched_opt_out')
end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], 'window') else redis.call('HSET', KEYS[1], 'window', ARGV[3]) end
local p = sched_period(KEYS[3], ARGV[5])
if p > 0 and schedulable(KEYS[1]) and not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('ZADD', KEYS[2], score(math.max(first_due(KEYS[1], tonumber(ARGV[4]), p), tonumber(ARGV[6]))), ARGV[1])
end
emit(KEYS[4], KEYS[5], ARGV[7], ARGV[8], ARGV[1], 'schedule_changed', '', '', ARGV[9], ARGV[6])
return 'ok'
`)

// unquarantineScript ends an instance's quarantine: its failure streak is
// reset and it is due again at first_due but no earlier than now (usually
// now, so the scheduler tries it at its next sweep, under a rotation id
// that none of its failed attempts used).
//
// KEYS: unquarantineKeys (schedule.go), one field per key, in order.
// ARGV: instance id, slot hash, default period ms, now ms, instance event
// cap, fleet event cap, who asked.
// Returns "ok", or "not_quarantined". Error: "not_found".
var unquarantineScript = eventScript(luaSchedule, `
-- An entry of the quarantined set with no instance, or one not
-- quarantined, is stale: it goes, so that a walk of the set moves on.
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[4], ARGV[1])
  return redis.error_reply('not_found')
end
if get(KEYS[1], 'quarantined_at') == '' then
  redis.call('ZREM', KEYS[4], ARGV[1])
  return 'not_quarantined'
end
redis.call('HDEL', KEYS[1], 'quarantined_at', 'quarantine_reason', 'fail_streak')
redis.call('ZREM', KEYS[4], ARGV[1])
local p = sched_period(KEYS[3], ARGV[3])
if p > 0 and schedulable(KEYS[1]) then
  redis.call('ZADD', KEYS[2], score(math.max(first_due(KEYS[1], tonumber(ARGV[2]), p), tonumber(ARGV[4]))), ARGV[1])
end
emit(KEYS[5], KEYS[6], ARGV[5], ARGV[6], ARGV[1], 'unquarantined', '', '', ARGV[7], ARGV[4])
return 'ok'
`)

// reindexScript puts one instance's due entry right: removed when the
// instance is not schedulable, otherwise set to first_due. With mode
// "missing" an existing entry is kept (backfill); with "all" it is
// recomputed (the period changed).
//
// KEYS: reindexKeys (due.go), one field per key, in order.
// ARGV: instance id, slot hash, default period ms, mode.
// Returns 1 when the entry was written or removed, 0 when left alone.
var reindexScript = eventScript(luaSchedule, `
if not schedulable(KEYS[1]) then return redis.call('ZREM', KEYS[2], ARGV[1]) end
local p = sched_period(KEYS[3], ARGV[3])
if p <= 0 then return 0 end
if ARGV[4] == 'missing' and redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[2], score(first_due(KEYS[1], tonumber(ARGV[2]), p)), ARGV[1])
return 1
`)

// publishPolicyScript publishes a clock's schedule policy (period_ms,
// quarantine_after) in the schedule hash, unless another period is
// published by a clock that still runs (the last sweep planned the next,
// sweep_next, less than the slack ago, or a clock said in rekey:clocks
// that it would say so again less than the slack ago) and the caller did
// not ask to replace it.
//
// KEYS: publishPolicyKeys (schedule.go). ARGV: period ms, quarantine
// limit, replace ("1": publish over a different period), now ms, slack ms.
// The quarantine limit is guarded the same way: a clock whose limit differs
// from the published one is refused while another runs, since the scripts
// that fail scheduled rotations read the published limit long after the
// clock that published it stopped.
// Returns {published before (1 or 0), the period ms published before (0
// when none), written (1, or 0 when refused), the quarantine limit
// published before (-1 when none)}.
var publishPolicyScript = redis.NewScript(`
local old = redis.call('HGET', KEYS[1], 'period_ms')
local oldq = tonumber(redis.call('HGET', KEYS[1], 'quarantine_after')) or -1
local published = 0
if old then published = 1 end
old = tonumber(old) or 0
local differs = old ~= tonumber(ARGV[1]) or (oldq >= 0 and oldq ~= tonumber(ARGV[2]))
if published == 1 and differs and ARGV[3] ~= '1' then
  local since = tonumber(ARGV[4]) - tonumber(ARGV[5])
  local nxt = tonumber(redis.call('HGET', KEYS[1], 'sweep_next')) or 0
  if nxt > 0 and since < nxt then return {published, old, 0, oldq} end
  if redis.call('ZCOUNT', KEYS[2], '(' .. since, '+inf') > 0 then return {published, old, 0, oldq} end
end
redis.call('HSET', KEYS[1], 'period_ms', ARGV[1], 'quarantine_after', ARGV[2])
return {published, old, 1, oldq}
`)

// clockStoppedScript takes a clock that stopped cleanly off the clocks
// that run, forgets those silent for a day, and, when no other clock
// runs, forgets the next sweep planned, so that a clock started with
// another period may publish it.
//
// KEYS: clockStoppedKeys (schedule.go). ARGV: the clock's token, now ms,
// slack ms.
var clockStoppedScript = redis.NewScript(`
local now, slack = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - 86400000))
if redis.call('ZCOUNT', KEYS[1], '(' .. (now - slack), '+inf') == 0 then
  redis.call('HDEL', KEYS[2], 'sweep_next')
end
return 1
`)

// unlockScript releases the sweep lock if this sweep still holds it.
//
// KEYS: unlockKeys (due.go). ARGV: the holder's token. Returns 1 when released.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)
