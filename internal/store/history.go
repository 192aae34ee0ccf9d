package store

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// An instance's audit history is one STRING of compact entries, newest
// first, separated by ESC (\x1b) (historyKey). Not a stream: Redis gives
// every stream a preallocated node of about 4 KB however few entries it
// holds, which made the audit trail the largest part of a registered
// instance (docs/benchmarks.md, "Redis memory"). Not a list either: a
// list's quicklist node and listpack headers cost about 200 B over its
// entries, a string a few bytes and its allocation's size class.
//
// One entry holds the events of one rotation (or of none): a script's
// events are gathered and written at its end (flush), which reads the
// string once, merges them into the rotation's entry when it is among the
// newest few (historyMergeDepth) or puts a new entry in front, drops the
// entries past the cap and writes the string back, its expiry kept. The
// revocation of a superseded credential is recorded in the entry of the
// rotation that superseded it (its superseded_by), beside the
// revoke_scheduled event, so a rotation takes one entry. An entry reads
//
//	<at, base 36 ms> US <rotation id> { RS <type code> US <dt> US <credential> US <detail> }
//
// with US = \x1f and RS = \x1e; trailing empty fields are left out. dt is
// the event's time less the entry's, in base 36 ms ("" for 0); credential
// "=" repeats the last credential named before it in the entry; a type
// code is one letter of eventCodes, or the whole type when it has none. An
// event with a one-letter code whose credential would be "=" is written
// RS <code in upper case> US <dt> US <detail>, without the field.
//
// More forms keep entries short (entries written before them read as they
// are):
//
//   - a rotation id rot_<24 lowercase hex> is written GS (\x1d) and 16
//     base64url characters (packID);
//   - a credential id <prefix>_<lowercase hex>, 6 hex digits or more, is
//     written GS, the prefix and the hex in base 64, two digits for each
//     three hex digits and one for each left over (pack_cred,
//     unpackCredential); FS instead of GS when two are left over, which
//     would otherwise read as a group of three (PostgreSQL roles,
//     rekey_<20 hex>: 26 bytes to 21);
//   - a credential id <prefix><lowercase UUID> (8-4-4-4-12 hex digits) is
//     written GS, the prefix, "~" and the UUID's 32 hex digits in base 64:
//     24 bytes and the prefix, where the UUID takes 36. No id has a "~"
//     (ValidID), so the "~" 23 bytes from the end tells this form apart;
//   - credential "^" is the first credential named in the entry below
//     (older): a rotation's superseded credential is the one the rotation
//     before it minted. Before the entry below goes (the cap), flush writes
//     out the "^" of the one above it, so the oldest entry has none;
//   - a detail that is a time, Unix ms (revoke_scheduled's revoke time), is
//     written GS and the time less the event's, in base 36, or GS "S" and
//     that in whole seconds;
//   - a detail of detailCodes is written FS (\x1c) and its code; a detail
//     "grace <d>", d whole seconds as Go writes a time.Duration, FS "G" and
//     the seconds in base 36.
//
// Entries of a second form are told apart by the byte after the entry's
// time: GS and the 16 characters of a packed rotation id, or FS and the
// rotation id as it is (including ""), where the first form has US.
// Merging into an entry keeps its form. In the second form (and the
// third):
//
//   - dt is the event's time less the previous event's in the entry (the
//     first event's: less the entry's), so events of one script, which
//     share their time (pushed, promoted, revoke_scheduled), write none;
//   - the upper-case form is also written when neither the event nor any
//     before it in the entry names a credential (a rotation's requested):
//     "=" then stands for "";
//   - revoke_scheduled without a detail field (or with one left empty) has
//     its event's time plus the last grace coded FS "G" before it in the
//     entry as its revoke time; an empty detail of its own is written FS.
//
// Entries flush puts in front now are of a third form: the second form
// with SUB (\x1a) in place of GS before a packed rotation, and EM (\x19)
// in place of FS before one as it is. Only entries of the third form take
// these shorthands (merging into one of the second form writes events as
// the second form has them):
//
//   - a rotation's revoke_scheduled of credential "^" at the time of the
//     event before it, its revoke time so implied, is RS "^" alone;
//   - revoked of credential "=" with detail "previous", at or after the
//     revoke time of the last revoke_scheduled before it in the entry, is
//     RS "+", then US and its time less that revoke time unless 0 (a
//     revocation comes a grace after the rotation: dt from the event before
//     would take four or five base-36 digits, this one one or two).
//     Event types are words, so no code of a type is "^" or "+".
//
// A rotation of the memory benchmark (docs/benchmarks.md, "Redis memory")
// takes 74 bytes in the third form, 99 in the first (ESC not counted):
//
//	<at> SUB <16> RS C US US FS s RS g US <dt> US GS cred_<11> RS H US <dt> US FS G5k0 RS I RS ^ RS + US <dt>
//
// Versions before the third form read its head as no time, so one still
// running (a deploy, a rollback) never merges an event into such an entry,
// which it would time and attribute wrongly: it puts its event in an entry
// of its own. It shows third form entries, and credentials packed in the
// forms above it does not know, wrongly; its records and indexes are not
// affected.
//
// Free-text details never hold ESC, FS, GS, RS or US (flush turns them
// into spaces).
//
// Earlier versions kept the same entries in a LIST under the same key.
// Readers take either type (historyEntries); the first script that
// writes an instance's history turns its list into the string, expiry
// kept (history_load).
//
// The fleet-wide stream (eventsKey) stays a capped stream; each of its
// entries holds one script's events but historyOnly's as fields "i" (the
// instance) and "e" (an entry as above). Entries written before this layout, with fields
// "type", "instance_id", ..., are read as they are.

// historyKey is the STRING of one instance's audit entries, newest first
// (the layout above), or the LIST of them that earlier versions wrote. Its
// cap is the store's per-instance event cap.
func historyKey(instanceID string) string { return keyPrefix + "history:" + instanceID }

// legacyEventsKey is the STREAM of one instance's audit events that
// versions before the history list wrote. Nothing writes it any more:
// Events reads it and moves it into the history (migrateHistory), and
// a retiring instance's expiry covers it.
func legacyEventsKey(instanceID string) string { return keyPrefix + "events:" + instanceID }

// eventCodes are the one-letter codes of the audit event types in history
// entries. A code never changes or moves to another type once released:
// stored entries keep it. A type without a code is stored whole.
var eventCodes = map[string]string{
	EventRegistered: "a", EventDeprovisioned: "b", EventRequested: "c", EventJoined: "d",
	EventCancelled: "e", EventRefused: "f", EventMinted: "g", EventPushed: "h", EventPromoted: "i",
	EventRevokeScheduled: "j", EventRevokeExpedited: "k", EventRevoked: "l", EventRevokeFailed: "m",
	EventRevocationDead: "n", EventRevocationRetried: "o", EventFailed: "p", EventDiscarded: "q",
	EventPushUnknown: "r", EventRetrying: "s", EventScheduled: "t", EventDeferred: "u",
	EventScheduleChanged: "v", EventQuarantined: "w", EventUnquarantined: "x", EventExpiring: "y",
}

// eventTypes is eventCodes the other way round.
var eventTypes = func() map[string]string {
	m := make(map[string]string, len(eventCodes))
	for typ, code := range eventCodes {
		m[code] = typ
	}
	return m
}()

// detailCodes are the one-letter codes of details that recur in every
// rotation (a scheduled request, a previous credential revoked). A code
// never changes once released.
var detailCodes = map[string]string{ReasonScheduled: "s", CredentialPrevious: "p", CredentialDiscarded: "d"}

// detailWords is detailCodes the other way round.
var detailWords = func() map[string]string {
	m := make(map[string]string, len(detailCodes))
	for word, code := range detailCodes {
		m[code] = word
	}
	return m
}()

// DefaultHistoryEntries is how many entries an instance's history
// keeps: a rotation takes one (its revocation included), so this holds the
// last 16 rotations, about 100 events, more than the dashboard's timeline
// and `rekey instances show` show.
const DefaultHistoryEntries = 16

// historyMergeBelow is the length under which a history entry takes more
// events of its rotation; a longer one is left as it is.
const historyMergeBelow = 400

// historyMergeDepth is how many of the newest entries flush looks through
// for the entry of an event's rotation: a revocation comes a grace after
// its rotation, when a rotation or two may have come in between.
const historyMergeDepth = 4

// maxGraceSecs is the longest grace, in seconds, that a history entry
// codes ("grace 24h0m0s" as G and its seconds): the longest a
// time.Duration holds, so that detailOf writes it back as it was.
const maxGraceSecs = math.MaxInt64 / int64(time.Second)

// historySep separates the entries of an instance's history string.
const historySep = "\x1b"

// b64 is the alphabet of packed rotation ids (base64url).
const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// credB64 is the alphabet of packed credential ids: base64url with "."
// for "_", so that the last "_" of a packed id ends its prefix.
const credB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-."

// luaHistory reads, trims and writes an instance's history string.
// history_load returns its entries, newest first, and, when the key still
// held the LIST of an earlier version, deletes it and returns its expiry
// (ms) for history_save to put back on the string. history_save writes the
// entries, keeping the key's expiry.
var luaHistory = `
local function history_load(key)
  local v = redis.pcall('GET', key)
  if type(v) == 'table' and v.err then
    local list = redis.call('LRANGE', key, 0, -1)
    local ttl = redis.call('PTTL', key)
    redis.call('DEL', key)
    for i, e in ipairs(list) do list[i] = (string.gsub(e, '\27', ' ')) end
    return list, ttl
  end
  local out = {}
  if v then
    for e in string.gmatch(v, '[^\27]+') do out[#out + 1] = e end
  end
  return out, nil
end
-- creds returns the credential fields of an entry's events, in order,
-- those of upper-case codes (no field) and empty ones left out.
local function creds(entry)
  local out = {}
  for ev in string.gmatch(entry, '\30([^\30]*)') do
    if ev == '^' then
      out[#out + 1] = '^'
    elseif not string.match(ev, '^[%u+]') then
      local c = string.match(ev, '^[^\31]*\31[^\31]*\31([^\31]*)')
      if c and c ~= '' then out[#out + 1] = c end
    end
  end
  return out
end
-- first_cred is the first credential entries[i] names, as written ("^"
-- resolved through the entry below it), or nil.
local function first_cred(entries, i)
  if i > #entries then return nil end
  local c = creds(entries[i])[1]
  if c == '^' then return first_cred(entries, i + 1) end
  return c
end
-- expand_older writes out the "^" of an entry as older, before the entry
-- below it goes.
local function expand_older(entry, older)
  local out = {string.match(entry, '^[^\30]*')}
  for ev in string.gmatch(entry, '\30([^\30]*)') do
    if ev == '^' then
      ev = '` + eventCodes[EventRevokeScheduled] + `\31\31' .. (older or '')
    elseif not string.match(ev, '^[%u+]') then
      local pre, c, post = string.match(ev, '^([^\31]*\31[^\31]*\31)([^\31]*)(.*)$')
      if c == '^' then ev = pre .. (older or '') .. post end
    end
    out[#out + 1] = ev
  end
  return table.concat(out, '\30')
end
-- history_trim drops the oldest entries past cap.
local function history_trim(entries, cap)
  while #entries > cap do
    local older = first_cred(entries, #entries)
    table.remove(entries)
    if #entries > 0 then entries[#entries] = expand_older(entries[#entries], older) end
  end
end
local function history_save(key, entries, ttl)
  if #entries == 0 then return end
  redis.call('SET', key, table.concat(entries, '\27'), 'KEEPTTL')
  if ttl and ttl > 0 then redis.call('PEXPIRE', key, ttl) end
end
`

// luaEmit is the audit trail every script that records events includes.
// emit gathers one event; flush, which eventScript runs once the script's
// body returned (a body may run it sooner, and what it gathers after goes
// in the last flush), writes what emit gathered: per rotation, one entry
// merged into the instance's newest one or pushed in front (trimmed to the
// cap only when the push made the list longer than it), and one entry of
// the fleet-wide stream, capped approximately (MAXLEN ~). Each instance's
// history is read once and written once per flush.
//
// Scripts build no key names except credential keys from KEYS-derived
// prefixes (see promote), so each script runs on a single Redis.
var luaEmit = luaHistory + `
local codes = {` + luaCodes() + `}
local dcodes = {` + luaDetailCodes() + `}
local history_only = {` + luaHistoryOnly() + `}
local groups = {}
-- fresh holds the rotations a script just created: no entry to merge into.
local fresh = {}
local function emit(ikey, gkey, icap, gcap, instance, kind, rot, cred, detail, now)
  local g = groups[#groups]
  if not g or g.rot ~= rot or g.ikey ~= ikey or g.gkey ~= gkey then
    g = {ikey = ikey, gkey = gkey, icap = tonumber(icap), gcap = gcap, instance = instance, rot = rot,
      at = tonumber(now), ev = {}}
    groups[#groups + 1] = g
  end
  g.ev[#g.ev + 1] = {codes[kind] or kind, tonumber(now), cred, detail}
end
local function b36(n)
  local neg, s = n < 0, ''
  if neg then n = -n end
  repeat
    local d = n % 36
    s = string.sub('0123456789abcdefghijklmnopqrstuvwxyz', d + 1, d + 1) .. s
    n = math.floor(n / 36)
  until n == 0
  if neg then s = '-' .. s end
  return s
end
local b64 = '` + b64 + `'
local function pack_id(id)
  local hex = string.match(id, '^rot_([0-9a-f]+)$')
  if not hex or #hex ~= 24 then return id end
  local out = {'\29'}
  for i = 1, 24, 6 do
    local n = tonumber(string.sub(hex, i, i + 5), 16)
    for sh = 3, 0, -1 do
      local d = math.floor(n / 64 ^ sh) % 64
      out[#out + 1] = string.sub(b64, d + 1, d + 1)
    end
  end
  return table.concat(out)
end
-- grace_secs returns the seconds of a detail "grace <d>" whose d is a
-- whole number of seconds written as Go's time.Duration writes it, and
-- that a time.Duration holds (maxGraceSecs): a longer one is free text.
local maxGraceSecs = ` + strconv.FormatInt(maxGraceSecs, 10) + `
local function grace_secs(detail)
  local d = string.match(detail, '^grace (%w+)$')
  if not d then return nil end
  local h, m, sec = string.match(d, '^(%d+)h(%d+)m(%d+)s$')
  if not h then h, m, sec = '0', string.match(d, '^(%d+)m(%d+)s$') end
  if not m then h, m, sec = '0', '0', string.match(d, '^(%d+)s$') end
  if not sec then return nil end
  local n = tonumber(h) * 3600 + tonumber(m) * 60 + tonumber(sec)
  if n > maxGraceSecs then return nil end
  local want = (n % 60) .. 's'
  if n >= 60 then want = (math.floor(n / 60) % 60) .. 'm' .. want end
  if n >= 3600 then want = math.floor(n / 3600) .. 'h' .. want end
  if want ~= d then return nil end
  return n
end
-- unb36 reads a base 36 number, "-" before it for a negative one.
local function unb36(s)
  if string.sub(s, 1, 1) == '-' then return -tonumber(string.sub(s, 2), 36) end
  return tonumber(s, 36)
end
-- revoke_time returns the revoke time that a revoke_scheduled event at ms
-- at names, from its detail as written (detail_text; "" when the grace
-- coded before it implies it), or nil when its detail is no time.
local function revoke_time(detail, at, grace)
  if detail == '' then
    if grace then return at + grace * 1000 end
    return nil
  end
  if string.sub(detail, 1, 2) == '\29S' then return at + unb36(string.sub(detail, 3)) * 1000 end
  if string.sub(detail, 1, 1) == '\29' then return at + unb36(string.sub(detail, 2)) end
  return nil
end
-- fields splits an event of an entry at US.
local function fields(ev)
  local out = {}
  for f in string.gmatch(ev .. '\31', '([^\31]*)\31') do out[#out + 1] = f end
  return out
end
local function detail_text(code, detail, at, st)
  if st and code == codes.revoke_scheduled then
    if detail == '' then return '\28' end
    if st.grace and string.match(detail, '^%d+$') and tonumber(detail) == at + st.grace * 1000 then return '' end
  end
  if code == codes.revoke_scheduled and string.match(detail, '^%d+$') then
    local dt = tonumber(detail) - at
    if dt % 1000 == 0 then return '\29S' .. b36(dt / 1000) end
    return '\29' .. b36(dt)
  end
  if dcodes[detail] then return '\28' .. dcodes[detail] end
  local g = grace_secs(detail)
  if g then return '\28G' .. b36(g) end
  return (string.gsub(detail, '[\27-\31]', ' '))
end
local b64c = '` + credB64 + `'
-- hex64 appends hex in base 64 (credB64) to out: two digits for each
-- three hex digits, then one for each hex digit left over.
local function hex64(hex, out)
  for i = 1, #hex - 2, 3 do
    local n = tonumber(string.sub(hex, i, i + 2), 16)
    local a, b = math.floor(n / 64), n % 64
    out[#out + 1] = string.sub(b64c, a + 1, a + 1) .. string.sub(b64c, b + 1, b + 1)
  end
  for i = #hex - #hex % 3 + 1, #hex do
    local n = tonumber(string.sub(hex, i, i), 16)
    out[#out + 1] = string.sub(b64c, n + 1, n + 1)
  end
end
local hx = '[0-9a-f]'
local uuid_id = '^([^~]*)(' .. string.rep(hx, 8) .. ')%-(' .. string.rep(hx, 4) .. ')%-(' .. string.rep(hx, 4) ..
  ')%-(' .. string.rep(hx, 4) .. ')%-(' .. string.rep(hx, 12) .. ')$'
-- pack_cred writes a credential id <prefix>_<lowercase hex> as GS (FS
-- when two hex digits are left over after the groups of three), the
-- prefix and the hex in base 64, and one <prefix><lowercase UUID> as GS,
-- the prefix, "~" and the UUID's hex digits in base 64 (22 digits); other
-- ids as they are.
local function pack_cred(id)
  local pre, a, b, c, d, e = string.match(id, uuid_id)
  if pre then
    local out = {'\29', pre, '~'}
    hex64(a .. b .. c .. d .. e, out)
    return table.concat(out)
  end
  local hex
  pre, hex = string.match(id, '^(.*_)([0-9a-f]+)$')
  if not hex or #hex < 6 then return id end
  local out = {'\29', pre}
  if #hex % 3 == 2 then out[1] = '\28' end
  hex64(hex, out)
  return table.concat(out)
end
-- events_text writes events for an entry whose time is base, after the
-- credential last named in it (last, as written) and below the entry
-- whose first credential is older (as written; nil for none). st is nil
-- for an entry of the first form; for one of the second, st.t is the time
-- of its last event, st.grace the last grace (seconds) coded in it and
-- st.revoke_at the revoke time its last revoke_scheduled named (nil for
-- none, or none coded as a time), all moved on as events are written.
-- In the second form, a revoke_scheduled of credential "^" at the time of
-- the event before it, its revoke time implied by the grace, is written
-- RS "^"; a revoked of credential "=" with detail "previous", at or after
-- st.revoke_at, RS "+" US and its time less st.revoke_at.
local function events_text(ev, base, last, older, st)
  local out = {}
  for i, e in ipairs(ev) do
    local cred, dt = pack_cred(e[3]), ''
    local named = cred
    if cred ~= '' and cred == last then cred = '='
    elseif cred ~= '' and cred == older then cred = '^' end
    local upper = cred == '=' or (st and cred == '' and last == nil)
    if named ~= '' then last = named end
    local from = base
    if st then from = st.t; st.t = e[2] end
    if e[2] ~= from then dt = b36(e[2] - from) end
    local detail = detail_text(e[1], e[4], e[2], st)
    if st and string.sub(detail, 1, 2) == '\28G' then st.grace = unb36(string.sub(detail, 3)) end
    local head = '\30' .. e[1] .. '\31' .. dt .. '\31' .. cred
    if upper and #e[1] == 1 then head = '\30' .. string.upper(e[1]) .. '\31' .. dt end
    out[i] = (string.gsub(head .. '\31' .. detail, '\31+$', ''))
    if st and e[1] == codes.revoke_scheduled then
      if st.third and cred == '^' and dt == '' and detail == '' then out[i] = '\30^' end
      st.revoke_at = revoke_time(detail, e[2], st.grace)
    elseif st and st.third and e[1] == codes.revoked and cred == '=' and e[4] == 'previous' and st.revoke_at and
        e[2] >= st.revoke_at then
      out[i] = '\30+'
      if e[2] > st.revoke_at then out[i] = out[i] .. '\31' .. b36(e[2] - st.revoke_at) end
    end
  end
  return table.concat(out)
end
-- entry_head writes the head of an entry of the third form: its time,
-- then its rotation packed (SUB and 16 characters) or EM and the id.
local function entry_head(at, rot)
  if string.sub(rot, 1, 1) == '\29' then return b36(at) .. '\26' .. string.sub(rot, 2) end
  return b36(at) .. '\25' .. rot
end
-- head_of returns an entry's time, its rotation (as pack_id writes it),
-- the credential last named in it, as written, "^" resolved to older, and
-- for an entry of the second or third form its state for events_text (nil
-- for the first form; st.third for the third).
local function head_of(entry, older)
  local at, sep, rot = string.match(entry, '^([^\25\26\28\29\30\31]*)([\25\26\28\29\31]?)([^\30]*)')
  if not at then return nil end
  local last = nil
  for _, c in ipairs(creds(entry)) do
    if c == '^' then last = older elseif c ~= '=' then last = c end
  end
  local base = tonumber(at, 36)
  if sep == '\31' or sep == '' then return base, rot, last, nil end
  if sep == '\29' or sep == '\26' then rot = '\29' .. rot end
  local st = {t = base, third = sep == '\25' or sep == '\26'}
  for ev in string.gmatch(entry, '\30([^\30]*)') do
    local f = fields(ev)
    local dt = 0
    if f[2] and f[2] ~= '' then dt = unb36(f[2]) end
    if f[1] == '+' then
      st.t = (st.revoke_at or st.t) + dt
    else
      st.t = st.t + dt
      local detail = f[4]
      if string.match(f[1], '^%u$') then detail = f[3] end
      if f[1] == '^' then detail = '' end
      if detail and string.sub(detail, 1, 2) == '\28G' then st.grace = unb36(string.sub(detail, 3)) end
      if f[1] == '^' or string.lower(f[1]) == codes.revoke_scheduled then
        st.revoke_at = revoke_time(detail or '', st.t, st.grace)
      end
    end
  end
  return base, rot, last, st
end
-- merge appends g's events to the entry of its rotation among the newest
-- of entries (only the newest for events of no rotation) and says whether
-- it did.
local function merge(entries, g, rot)
  if fresh[g.rot] then return false end
  local depth = ` + strconv.Itoa(historyMergeDepth) + `
  if rot == '' then depth = 1 end
  for i = 1, math.min(depth, #entries) do
    local entry = entries[i]
    if #entry < ` + strconv.Itoa(historyMergeBelow) + ` then
      local older = first_cred(entries, i + 1)
      local base, erot, last, st = head_of(entry, older)
      if base and erot == rot then
        entries[i] = entry .. events_text(g.ev, base, last, older, st)
        return true
      end
    end
  end
  return false
end
local function flush()
  local hist, order = {}, {}
  for _, g in ipairs(groups) do
    local h = hist[g.ikey]
    if not h then
      local entries, ttl = history_load(g.ikey)
      h = {entries = entries, ttl = ttl}
      hist[g.ikey] = h
      order[#order + 1] = g.ikey
    end
    local rot = pack_id(g.rot)
    if not merge(h.entries, g, rot) then
      local text = entry_head(g.at, rot) .. events_text(g.ev, g.at, nil, first_cred(h.entries, 1), {t = g.at, third = true})
      table.insert(h.entries, 1, text)
      history_trim(h.entries, g.icap)
    end
    local fleet = {}
    for _, e in ipairs(g.ev) do
      if not history_only[e[1]] then fleet[#fleet + 1] = e end
    end
    -- An event emitted with no stream key ('') stays in its instance's history.
    if #fleet > 0 and g.gkey ~= '' then
      redis.call('XADD', g.gkey, 'MAXLEN', '~', g.gcap, '*', 'i', g.instance, 'e',
        entry_head(g.at, rot) .. events_text(fleet, g.at, nil, nil, {t = g.at, third = true}))
    end
  end
  for _, key in ipairs(order) do history_save(key, hist[key].entries, hist[key].ttl) end
  groups = {}
end
-- batch_id_ok: whether b can name a batch rekey created (ValidID's
-- characters, at most 128 bytes). A rotate task of another app may carry
-- any batch id: one like "bat_x:failures" would count into batch bat_x's
-- failures, and one of a kilobyte would fill a rotation's joined_by.
local function batch_id_ok(b)
  return b ~= nil and b ~= '' and #b <= 128 and not string.find(b, '[^%w%-_%.@]')
end
-- bump counts into a batch that exists. HINCRBY creates a missing one
-- without the expiry CreateBatch gives a batch (one a rotate task of
-- another app names without rekey having created it, or one expired
-- before a revocation it waited for), and it would stay for good: the
-- first count of a field looks for the expiry, and deletes a hash that has
-- none. The other counts of a wave cost no second command. Returns whether
-- the batch exists (the count stands).
local function bump(bprefix, batch, field)
  if not batch_id_ok(batch) then return false end
  local key = bprefix .. batch
  if redis.call('HINCRBY', key, field, 1) == 1 and redis.call('TTL', key) == -1 then
    redis.call('DEL', key)
    return false
  end
  return true
end
-- bump_joined counts a finished rotation into each batch that joined it
-- (its joined_by: batch ids, comma separated), which waits for it (Batch).
local function bump_joined(bprefix, by)
  for b in string.gmatch(by or '', '[^,]+') do bump(bprefix, b, 'joined_finished') end
end
local function get(key, field)
  local v = redis.call('HGET', key, field)
  if not v then return '' end
  return v
end
`

// luaCodes is eventCodes as the fields of a Lua table constructor.
func luaCodes() string {
	types := make([]string, 0, len(eventCodes))
	for typ := range eventCodes {
		types = append(types, typ)
	}
	sort.Strings(types)
	var b strings.Builder
	for _, typ := range types {
		fmt.Fprintf(&b, "%s = '%s', ", typ, eventCodes[typ])
	}
	return b.String()
}

// historyOnly are the event types the fleet-wide stream leaves out: the
// steps every rotation takes on its way to an outcome. An instance's
// history keeps them; the fleet stream keeps what ended somewhere
// (pushed, promoted, failed, revoked, ...).
var historyOnly = []string{EventRequested, EventMinted}

// luaHistoryOnly is historyOnly as the fields of a Lua table constructor,
// keyed by type code.
func luaHistoryOnly() string {
	var b strings.Builder
	for _, typ := range historyOnly {
		fmt.Fprintf(&b, "['%s'] = true, ", eventCodes[typ])
	}
	return b.String()
}

// luaDetailCodes is detailCodes as the fields of a Lua table constructor.
func luaDetailCodes() string {
	words := make([]string, 0, len(detailCodes))
	for word := range detailCodes {
		words = append(words, word)
	}
	sort.Strings(words)
	var b strings.Builder
	for _, word := range words {
		fmt.Fprintf(&b, "['%s'] = '%s', ", word, detailCodes[word])
	}
	return b.String()
}

// eventScript is a script that records audit events: luaEmit, the Lua
// libraries it uses (luaSchedule, ...), then its body run as a function,
// so that flush writes the events whichever way the body returns.
func eventScript(parts ...string) *redis.Script {
	libs, body := parts[:len(parts)-1], parts[len(parts)-1]
	return redis.NewScript(luaEmit + strings.Join(libs, "") +
		"local function run()\n" + body + "\nend\nlocal res = run()\nflush()\nreturn res\n")
}

// decodeHistory returns the events of one history entry of instanceID, in
// the order they happened. older is the first credential named in the
// entry below it ("" for none), which "^" stands for.
func decodeHistory(instanceID, entry, older string) []Event {
	parts := strings.Split(entry, "\x1e")
	cut := strings.IndexAny(parts[0], "\x19\x1a\x1c\x1d\x1f")
	at36, rot, second, third := parts[0], "", false, false
	if cut >= 0 {
		at36, rot = parts[0][:cut], parts[0][cut+1:]
		switch parts[0][cut] {
		case '\x1d': // the second form, its rotation packed
			rot, second = "\x1d"+rot, true
		case '\x1c': // the second form
			second = true
		case '\x1a': // the third form, its rotation packed
			rot, second, third = "\x1d"+rot, true, true
		case '\x19': // the third form
			second, third = true, true
		}
	}
	rot = unpackID(rot)
	base, _ := strconv.ParseInt(at36, 36, 64)
	out := make([]Event, 0, len(parts)-1)
	last := ""
	prev := base          // the second form: the time of the event before
	grace := int64(-1)    // the second form: the last grace coded, seconds
	revokeAt := int64(-1) // the second form: the revoke time the last revoke_scheduled named
	for i, p := range parts[1:] {
		f := append(strings.SplitN(p, "\x1f", 4), "", "", "")
		fromRevokeAt := false
		switch {
		case third && p == "^":
			// A revoke_scheduled of the older credential, its times implied.
			f = []string{eventCodes[EventRevokeScheduled], "", "^", ""}
		case third && f[0] == "+":
			// A revoked of the last credential, previous, timed from revokeAt.
			f = []string{eventCodes[EventRevoked], f[1], "=", CredentialPrevious}
			fromRevokeAt = revokeAt >= 0
		case len(f[0]) == 1 && f[0][0] >= 'A' && f[0][0] <= 'Z':
			// An upper-case code repeats the last credential and has no field for it.
			f = append(strings.SplitN(p, "\x1f", 3), "", "")
			f = []string{strings.ToLower(f[0]), f[1], "=", f[2]}
		}
		typ, ok := eventTypes[f[0]]
		if !ok {
			typ = f[0]
		}
		at := base
		switch {
		case fromRevokeAt:
			at = revokeAt
		case second:
			at = prev
		}
		if f[1] != "" {
			dt, _ := strconv.ParseInt(f[1], 36, 64)
			at += dt
		}
		prev = at
		cred := f[2]
		switch cred {
		case "=":
			cred = last
		case "^":
			cred = older
		default:
			cred = unpackCredential(cred)
		}
		if cred != "" {
			last = cred
		}
		detail := detailOf(f[3], at)
		if second {
			switch {
			case strings.HasPrefix(f[3], "\x1cG"):
				grace, _ = strconv.ParseInt(f[3][2:], 36, 64)
			case typ == EventRevokeScheduled && f[3] == "" && grace >= 0:
				// The revoke time is the event's time and the grace coded before it.
				detail = strconv.FormatInt(at+grace*1000, 10)
			}
			if typ == EventRevokeScheduled {
				// As revoke_time in luaEmit: a time coded, or implied by the grace.
				revokeAt = -1
				if f[3] == "" && grace >= 0 || strings.HasPrefix(f[3], "\x1d") {
					revokeAt, _ = strconv.ParseInt(detail, 10, 64)
				}
			}
		}
		out = append(out, Event{ID: strconv.FormatInt(at, 10) + "-" + strconv.Itoa(i), Type: typ,
			InstanceID: instanceID, RotationID: rot, CredentialID: cred, Detail: detail, At: fromMSInt(at)})
	}
	return out
}

// firstCredential is the first credential events name, "" for none.
func firstCredential(events []Event) string {
	for _, e := range events {
		if e.CredentialID != "" {
			return e.CredentialID
		}
	}
	return ""
}

// detailOf reads a detail as flush wrote it for an event at ms.
func detailOf(d string, at int64) string {
	switch {
	case strings.HasPrefix(d, "\x1dS"):
		dt, _ := strconv.ParseInt(d[2:], 36, 64)
		return strconv.FormatInt(at+dt*1000, 10)
	case strings.HasPrefix(d, "\x1d"):
		dt, _ := strconv.ParseInt(d[1:], 36, 64)
		return strconv.FormatInt(at+dt, 10)
	case strings.HasPrefix(d, "\x1cG"):
		n, _ := strconv.ParseInt(d[2:], 36, 64)
		return "grace " + (time.Duration(n) * time.Second).String()
	case strings.HasPrefix(d, "\x1c"):
		return detailWords[d[1:]]
	}
	return d
}

// packedUUIDLen is the length of a packed UUID: "~" and 22 base-64 digits.
const packedUUIDLen = 23

// unpackCredential reads a credential id as flush wrote it (pack_cred).
func unpackCredential(id string) string {
	if strings.HasPrefix(id, "\x1c") {
		cut := strings.LastIndexByte(id, '_')
		if cut < 0 {
			return id
		}
		hex, ok := unhex64(id[cut+1:], 2)
		if !ok {
			return id
		}
		return id[1:cut+1] + hex
	}
	if !strings.HasPrefix(id, "\x1d") {
		return id
	}
	if n := len(id); n > packedUUIDLen && id[n-packedUUIDLen] == '~' {
		hex, ok := unhex64(id[n-packedUUIDLen+1:], 2)
		if !ok || len(hex) != 32 {
			return id
		}
		return id[1:n-packedUUIDLen] + hex[:8] + "-" + hex[8:12] + "-" + hex[12:16] + "-" + hex[16:20] + "-" + hex[20:]
	}
	cut := strings.LastIndexByte(id, '_')
	if cut < 0 {
		return id
	}
	hex, ok := unhex64(id[cut+1:], len(id[cut+1:])%2)
	if !ok {
		return id
	}
	return id[1:cut+1] + hex
}

// unhex64 reads hex digits written in base 64 (hex64 in pack_cred): pairs
// of digits for three hex digits each, then the last single digits (how
// many: single) for one each. ok is false when a digit is not one of
// credB64's, or a single one is above 15.
func unhex64(digits string, single int) (hex string, ok bool) {
	const hexDigits = "0123456789abcdef"
	if single > len(digits) || (len(digits)-single)%2 != 0 {
		return "", false
	}
	out := make([]byte, 0, len(digits)*3/2)
	pairs := len(digits) - single
	for i := 0; i < pairs; i += 2 {
		a, b := strings.IndexByte(credB64, digits[i]), strings.IndexByte(credB64, digits[i+1])
		if a < 0 || b < 0 {
			return "", false
		}
		n := a*64 + b
		out = append(out, hexDigits[n>>8&15], hexDigits[n>>4&15], hexDigits[n&15])
	}
	for i := pairs; i < len(digits); i++ {
		n := strings.IndexByte(credB64, digits[i])
		if n < 0 || n > 15 {
			return "", false
		}
		out = append(out, hexDigits[n])
	}
	return string(out), true
}

// unpackID reads a rotation id as flush wrote it (pack_id).
func unpackID(id string) string {
	if len(id) != 17 || id[0] != '\x1d' {
		return id
	}
	const hexDigits = "0123456789abcdef"
	out := make([]byte, 0, 28)
	out = append(out, "rot_"...)
	for i := 1; i < 17; i += 4 {
		n := 0
		for _, c := range id[i : i+4] {
			n = n*64 + strings.IndexRune(b64, c)
		}
		for sh := 20; sh >= 0; sh -= 4 {
			out = append(out, hexDigits[n>>sh&15])
		}
	}
	return string(out)
}

// encodeHistory is one history entry holding e alone, as flush would write it.
func encodeHistory(e Event) string { return encodeHistoryEntry([]Event{e}) }

// historySeparators turns the bytes that separate a history's entries,
// events and fields (ESC to US) into spaces, as flush does in a detail.
var historySeparators = strings.NewReplacer("\x1b", " ", "\x1c", " ", "\x1d", " ", "\x1e", " ", "\x1f", " ")

// encodeHistoryEntry is one history entry of the first form holding events,
// all of one rotation, in the order they happened: its time the first
// event's, each event's offset from it.
func encodeHistoryEntry(events []Event) string {
	base := ms(events[0].At)
	var b strings.Builder
	b.WriteString(strconv.FormatInt(base, 36) + "\x1f" + events[0].RotationID)
	for _, e := range events {
		code, ok := eventCodes[e.Type]
		if !ok {
			code = e.Type
		}
		dt := ""
		if d := ms(e.At) - base; d != 0 {
			dt = strconv.FormatInt(d, 36)
		}
		b.WriteString(strings.TrimRight("\x1e"+code+"\x1f"+dt+"\x1f"+e.CredentialID+"\x1f"+historySeparators.Replace(e.Detail), "\x1f"))
	}
	return b.String()
}
