package store

// luaConfig drops a pending credential's sealed config: its own key
// (configKey), and the field of the credential hash where versions before
// it kept the config (a credential pending across the upgrade).
const luaConfig = `
local function drop_config(cfgkey, ckey)
  if redis.call('DEL', cfgkey) == 0 then redis.call('HDEL', ckey, 'config') end
end
`

// putInstanceScript registers or updates an instance.
//
// A schedulable instance with no due entry gets one at its first slot
// after now (schedule.go), so its first scheduled rotation comes within one
// period of registration.
//
// Registering an instance anew (created, or revived after a
// deprovisioning) lifts any expiry its keys were given (keep_instance,
// retention.go); a live instance's keys have none, so an update leaves
// them alone.
//
// KEYS: putInstanceKeys (instance.go), one field per key, in order.
// ARGV: id, api_version, config_vars, heroku_id, private_space, grace_ms,
// current credential id (may be empty), now ms, instance event cap, fleet
// event cap, slot hash, default period ms, RevokeDueMargin ms, the mark
// of the instance's last DELETE the registration saw when it began ("-":
// none; "": do not check), the database location's server, name, owner
// role and JSON ("" each when the registration names none).
// Returns "created" or "updated". Error "deleted_since": a DELETE of the
// instance came after the registration began. Error "database_taken
// <holder> <owner role|database>": another live instance holds the
// location's owner role or database. Error "revoked": the registration would
// make current (a new or revived instance, or one with no current
// credential) a credential of the instance that was revoked; error
// "revoke_due": it would make current a previous or discarded credential
// whose revoke time has passed, or comes within ARGV[13] of now, which the
// issuer may be revoking already (I1). Nothing is written on an error.
//
// A deprovisioned instance is registered again ("created"): Heroku may
// retry a provisioning, and only the partner's DELETE deprovisions. It is
// live and scheduled again, its quarantine, failure streak and last error
// are cleared (its audit history keeps them), and the credential it names
// becomes its current one (the old add-on's config left its apps with it),
// unless its revocation is due (error "revoke_due"). The credentials the
// deprovisioning discarded with their push outcome unknown, and the one
// current before it when another is named, are kept unconfirmed: the
// DELETE may have been a mistake, and the app may hold any of them.
var putInstanceScript = eventScript(luaSchedule, luaRetention, luaV1Apps, luaDatabaseFields, luaSortedNames,
	`local V1APPS, DATABASE, DATABASES = KEYS[15], KEYS[16], KEYS[17]`+"\n"+putInstanceLua)

// putInstanceLua is putInstanceScript's body; registerScript (register.go)
// runs it too, with the instance's tokens, in one step. Each names the
// key of the live V1 instances' heroku_ids (v1AppsKey) V1APPS, the
// instance's database location (databaseKey) DATABASE and the index of
// live locations (databasesKey) DATABASES first.
const putInstanceLua = `
-- A DELETE since the registration began (ARGV[14] is the mark of the last
-- DELETE it saw then, '-' for none; '' checks nothing) deprovisioned what
-- it would register. Every DELETE writes a new mark; one gone since
-- expired a day after the last DELETE: none came since.
local deletes = redis.call('GET', KEYS[13])
if ARGV[14] ~= '' and deletes and deletes ~= ARGV[14] then
  return redis.error_reply('deleted_since')
end
local was = redis.call('HMGET', KEYS[1], 'deprovisioned_at', 'current', 'deprovision_discarded', 'api_version', 'heroku_id',
  'config_vars')
local revived = (was[1] or '') ~= ''
-- A V1 push names the app by its heroku_id alone: a second live V1
-- instance of the app setting a var of the same name would push its
-- credentials into the other's config (a customer's secret handed to
-- another) and never into its own (v1AppsKey). Instances of one app that
-- set vars of other names register.
local v1 = ARGV[2] == 'v1' and ARGV[4] ~= ''
local app = string.lower(ARGV[4])
if v1 then
  local prefix = string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[1])
  for name in string.gmatch(ARGV[3], '[^,]+') do
    local owner = redis.call('HGET', V1APPS, app .. '/' .. name)
    if owner and owner ~= ARGV[1] and v1_sets(prefix .. owner, app, name) then
      return redis.error_reply('heroku_id_taken ' .. owner .. ' ' .. name)
    end
  end
end
if ARGV[7] ~= '' and (revived or (was[2] or '') == '') then
  -- An app given a revoked credential could not connect: no such
  -- credential becomes current.
  local c = redis.call('HMGET', KEYS[3], 'state', 'revoked_at', 'revoke_at')
  if c[1] == 'revoked' or (c[2] or '') ~= '' then return redis.error_reply('revoked') end
  -- Nor does one whose revoke task may be at the issuer's DELETE: the
  -- task read it as waiting, and revokes it whatever it becomes meanwhile.
  -- A waiting credential with no revoke time (none is written so) counts
  -- as due.
  if (c[1] == 'previous' or c[1] == 'discarded') and
      (tonumber(c[3]) or 0) <= tonumber(ARGV[8]) + tonumber(ARGV[13]) then
    return redis.error_reply('revoke_due')
  end
end
-- The database location the PostgreSQL issuer mints for (ARGV[18], its
-- JSON, and its parts; '' when the registration names none) is another
-- live instance's when its owner role or database is: each instance's
-- credentials would open the other's data. An instance registered again
-- without one goes on with the location it kept, which another instance
-- may have taken since its deprovisioning freed it.
local db_fields, moved, had = nil, false, nil
if ARGV[18] ~= '' then
  db_fields = database_fields(ARGV[15], ARGV[16], ARGV[17])
  -- Another location than the one stored (or none stored) moves the
  -- instance: a credential minted on the old location is not pushed to
  -- its apps (database_moves, markPushScript).
  had = stored_database_fields(DATABASE)
  moved = not had or had[1] ~= db_fields[1] or had[2] ~= db_fields[2]
elseif revived then
  db_fields = stored_database_fields(DATABASE)
end
if db_fields then
  local holder, what = database_holder(DATABASES, string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[1]), db_fields, ARGV[1])
  if holder then return redis.error_reply('database_taken ' .. holder .. ' ' .. what) end
end
if revived then
  -- The old add-on's last failure is no failure of the new one: left, it
  -- would greet the new registration and its customer as one.
  redis.call('HDEL', KEYS[1], 'deprovisioned_at', 'quarantined_at', 'quarantine_reason', 'fail_streak',
    'last_error', 'last_error_at', 'last_error_code', 'deprovision_discarded')
  -- Back in its place: registered_at stays, and a client paging the list
  -- with after=<this id> goes on from there, not from the end.
  redis.call('ZADD', KEYS[2], tonumber(redis.call('HGET', KEYS[1], 'registered_at')) or ARGV[8], ARGV[1])
  emit(KEYS[4], KEYS[5], ARGV[9], ARGV[10], ARGV[1], 'registered', '', ARGV[7], 'registered again after deprovisioning', ARGV[8])
end
local created = redis.call('EXISTS', KEYS[1]) == 0
-- The key names the instance; fields at their default ("v3", "", "0") are
-- left out (instanceFrom).
local set, unset = {'config_vars', ARGV[3]}, {}
-- A dashboard session, or a sign-in form, from before it does not open
-- the add-on registered again (Instance.RegisteredAgainAt).
if revived then set[#set + 1], set[#set + 2] = 'revived_at', ARGV[8] end
for _, f in ipairs({{'api_version', ARGV[2], '` + APIv3 + `'}, {'heroku_id', ARGV[4], ''}, {'private_space', ARGV[5], '0'},
    {'grace_ms', ARGV[6], '0'}}) do
  if f[2] == f[3] then unset[#unset + 1] = f[1] else set[#set + 1], set[#set + 2] = f[1], f[2] end
end
-- A live instance registered again with another app or other vars is
-- pushed there from now on: the history says so, whoever sent it.
if not created and not revived then
  local changed = {}
  if (was[4] or '` + APIv3 + `') ~= ARGV[2] then changed[#changed + 1] = 'api_version' end
  if (was[5] or '') ~= ARGV[4] then changed[#changed + 1] = 'heroku_id' end
  if sorted_names(was[6]) ~= sorted_names(ARGV[3]) then changed[#changed + 1] = 'config_vars' end
  if moved then changed[#changed + 1] = 'database' end
  if #changed > 0 then
    emit(KEYS[4], KEYS[5], ARGV[9], ARGV[10], ARGV[1], 'registered', '', ARGV[7],
      'registration changed: ' .. table.concat(changed, ', '), ARGV[8])
  end
end
redis.call('HSET', KEYS[1], unpack(set))
redis.call('HDEL', KEYS[1], 'id', unpack(unset))
-- The index follows the registration: the fields of the app and vars it
-- had go, unless it keeps them, and those it has now are its own.
local fields = {}
if v1 then
  for name in string.gmatch(ARGV[3], '[^,]+') do fields[app .. '/' .. name] = true end
end
if was[4] == 'v1' and (was[5] or '') ~= '' then
  for name in string.gmatch(was[6] or '', '[^,]+') do
    local f = string.lower(was[5]) .. '/' .. name
    if not fields[f] and redis.call('HGET', V1APPS, f) == ARGV[1] then redis.call('HDEL', V1APPS, f) end
  end
end
if v1 then
  local fv = {}
  for f in pairs(fields) do fv[#fv + 1], fv[#fv + 2] = f, ARGV[1] end
  redis.call('HSET', V1APPS, unpack(fv))
end
if created then
  redis.call('HSET', KEYS[1], 'registered_at', ARGV[8])
  redis.call('ZADD', KEYS[2], ARGV[8], ARGV[1])
  emit(KEYS[4], KEYS[5], ARGV[9], ARGV[10], ARGV[1], 'registered', '', ARGV[7], '', ARGV[8])
end
if ARGV[7] ~= '' and (revived or (was[2] or '') == '') then
  -- A credential of the instance's earlier life still waiting for its
  -- revocation, its revoke time not yet near (above), named again (a
  -- provisioning answered with the credential minted for the first), is
  -- the one the app holds now: it waits no more.
  -- Left waiting, its revoke task would be refused (I1) and set aside as
  -- dead, and the instance would list it as previous.
  local st = get(KEYS[3], 'state')
  if (st == 'previous' or st == 'discarded') and get(KEYS[3], 'revoked_at') == '' then
    redis.call('ZREM', KEYS[11], ARGV[7])
    redis.call('ZREM', KEYS[12], ARGV[1] .. '/' .. ARGV[7])
    redis.call('HDEL', KEYS[3], 'revoke_at', 'superseded_at', 'superseded_by', 'superseded_in_batch', 'discarded_at')
  end
  redis.call('HSET', KEYS[3], 'state', 'current', 'promoted_at', ARGV[8])
  -- A credential current since the registration leaves current_since out (instanceFrom).
  if created then
    redis.call('HSET', KEYS[1], 'current', ARGV[7])
  else
    redis.call('HSET', KEYS[1], 'current', ARGV[7], 'current_since', ARGV[8])
  end
end
if revived then
  -- The deprovisioning discarded the credentials whose push had an
  -- unknown outcome, to be revoked after the grace, since the add-on's
  -- config had left its apps. Registered again (a DELETE by mistake, a
  -- provisioning retried late), the app may still hold one: each goes back
  -- to unconfirmed, unrevoked until a later rotation replaces it on
  -- Heroku (I1), unless its revoke task may be at the issuer already.
  for id in string.gmatch(was[3] or '', '[^,]+') do
    local ckey = KEYS[8] .. id
    local c = redis.call('HMGET', ckey, 'state', 'revoked_at', 'revoke_at')
    if c[1] == 'discarded' and (c[2] or '') == '' and
        (tonumber(c[3]) or 0) > tonumber(ARGV[8]) + tonumber(ARGV[13]) then
      redis.call('HSET', ckey, 'state', 'unconfirmed', 'unconfirmed_at', ARGV[8])
      redis.call('HDEL', ckey, 'discarded_at', 'revoke_at')
      redis.call('PERSIST', ckey)
      redis.call('ZREM', KEYS[12], ARGV[1] .. '/' .. id)
      redis.call('ZADD', KEYS[14], ARGV[8], id)
      emit(KEYS[4], KEYS[5], ARGV[9], ARGV[10], ARGV[1], 'push_unknown', '', id,
        'registered again: its push outcome is unknown, so it is kept unrevoked until a later rotation replaces it', ARGV[8])
    end
  end
  -- The credential current before the deprovisioning, when the
  -- registration names another: the app may hold either, so it is kept
  -- the same way, rather than left current of nothing, never revoked.
  local old = was[2] or ''
  if ARGV[7] ~= '' and old ~= '' and old ~= ARGV[7] and get(KEYS[8] .. old, 'state') == 'current' then
    redis.call('HSET', KEYS[8] .. old, 'state', 'unconfirmed', 'unconfirmed_at', ARGV[8])
    -- Its record was given the instance's expiry with it (ExpireRetired).
    redis.call('PERSIST', KEYS[8] .. old)
    redis.call('ZADD', KEYS[14], ARGV[8], old)
    emit(KEYS[4], KEYS[5], ARGV[9], ARGV[10], ARGV[1], 'push_unknown', '', old,
      'current before the deprovisioning, and the registration names another: kept unrevoked until a later rotation replaces it', ARGV[8])
  end
end
if created and not db_fields then
  -- A location left behind by an instance of the same id whose records
  -- expired is not this new instance's.
  forget_database(DATABASE, DATABASES, ARGV[1])
  redis.call('DEL', DATABASE)
end
if db_fields then
  if ARGV[18] ~= '' then
    if moved and not created then redis.call('HINCRBY', KEYS[1], 'database_moves', 1) end
    forget_database(DATABASE, DATABASES, ARGV[1], had or {})
    redis.call('SET', DATABASE, ARGV[18])
  else
    -- Kept since the deprovisioning, it was given the retention's expiry.
    redis.call('PERSIST', DATABASE)
  end
  redis.call('HSET', DATABASES, db_fields[1], ARGV[1], db_fields[2], ARGV[1])
end
local p = sched_period(KEYS[7], ARGV[12])
if p > 0 and schedulable(KEYS[1]) then
  redis.call('ZADD', KEYS[6], 'NX', score(next_slot(tonumber(ARGV[11]), p, tonumber(ARGV[8]))), ARGV[1])
end
if created or revived then
  keep_instance(KEYS[1], KEYS[4], KEYS[10], KEYS[8], KEYS[9], ARGV[1])
  return 'created'
end
return 'updated'
`

// deprovisionScript marks an instance deprovisioned.
//
// It leaves the due index, the quarantine list and the scheduled backlog,
// and joins the retiring set: its keys expire once nothing waits on them
// (ExpireRetired, retention.go).
//
// Its unconfirmed credentials (failScript) would wait for a promotion that
// never comes (I3). Heroku dropped the add-on's config from its apps, so
// each is discarded, revoked after the grace (the instance's, else ARGV's)
// for dynos still running on the config they started with: it joins the
// revoke-due index, from which the reconcile sweep enqueues its revoke.
//
// The rotation in flight, if it attempted a push, is marked
// (deprovisioned_at): once the instance is registered again it is never
// promoted, whatever its push's answer (promoteScript).
//
// KEYS: deprovisionKeys (instance.go), one field per key, in order.
// ARGV: id, now ms, instance event cap, fleet event cap, grace ms and
// Private Space grace ms (for an instance with no grace of its own; 0: none),
// the grace ceiling ms and the grace floor ms (0: none; an instance
// registered before either changed may hold a grace outside them), how
// long to keep the DELETE's mark (deleteMemory) in ms, the mark (random).
// Returns "ok" (also when already deprovisioned); error "not_found".
var deprovisionScript = eventScript(luaLive, luaDatabaseFields, `
-- Every DELETE leaves a mark of its own, of an instance not registered
-- yet too: a registration under way (an oauth_grant being exchanged) that
-- began before it is refused (putInstanceScript).
redis.call('SET', KEYS[15], ARGV[10], 'PX', ARGV[9])
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('not_found') end
if get(KEYS[1], 'deprovisioned_at') ~= '' then return 'ok' end
redis.call('HSET', KEYS[1], 'deprovisioned_at', ARGV[2])
-- The rotation in flight that pushed to the add-on this DELETE ends: its
-- push may be answered, or land, only once a registration revived the
-- instance with the credential the new add-on was provisioned with, and
-- it is then never promoted (promoteScript). One that pushed nothing yet
-- pushes, if ever, to the registration it finds.
local inflight = get(KEYS[1], 'inflight')
if inflight ~= '' and get(KEYS[17] .. inflight, 'push_attempted_at') ~= '' then
  redis.call('HSET', KEYS[17] .. inflight, 'deprovisioned_at', ARGV[2])
end
-- Its database location leaves the index of live ones (databasesKey).
forget_database(KEYS[18], KEYS[19], ARGV[1])
-- Its fields in the index of V1 apps go (v1AppsKey).
local v = redis.call('HMGET', KEYS[1], 'api_version', 'heroku_id', 'config_vars')
if v[1] == 'v1' and (v[2] or '') ~= '' then
  for name in string.gmatch(v[3] or '', '[^,]+') do
    local f = string.lower(v[2]) .. '/' .. name
    if redis.call('HGET', KEYS[16], f) == ARGV[1] then redis.call('HDEL', KEYS[16], f) end
  end
end
-- The current credential's config stays in the index of live configs
-- (rekey does not revoke it), but no app of this instance holds it any
-- more: its entry is noted as this instance's (liveGoneKey), so that
-- another instance registered with the same credential may have it
-- revoked (Store.LiveElsewhere).
local cur = get(KEYS[1], 'current')
if cur ~= '' then
  local set, m = live_at(KEYS[13], get(KEYS[11] .. cur, 'f'))
  if set and redis.call('SISMEMBER', set, m) == 1 then
    redis.call('HSET', KEYS[14], string.sub(set, -2) .. ':' .. m, ARGV[1])
  end
end
local g = tonumber(get(KEYS[1], 'grace_ms')) or 0
if g <= 0 and get(KEYS[1], 'private_space') == '1' then g = tonumber(ARGV[6]) or 0 end
if g <= 0 then g = tonumber(ARGV[5]) or 0 end
local cap, floor = tonumber(ARGV[7]) or 0, tonumber(ARGV[8]) or 0
if cap > 0 and g > cap then g = cap end
if g < floor then g = floor end
local revoke_at = tostring(tonumber(ARGV[2]) + g)
local discarded = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[9], 0, -1)) do
  local ckey = KEYS[11] .. id
  if get(ckey, 'state') == 'unconfirmed' then
    discarded[#discarded + 1] = id
    redis.call('HSET', ckey, 'state', 'discarded', 'discarded_at', ARGV[2], 'revoke_at', revoke_at)
    redis.call('ZADD', KEYS[10], revoke_at, ARGV[1] .. '/' .. id)
    emit(KEYS[3], KEYS[4], ARGV[3], ARGV[4], ARGV[1], 'discarded', get(ckey, 'rotation_id'), id,
      'push outcome unknown, but the instance is deprovisioned: revoked after the grace', ARGV[2])
  end
end
redis.call('DEL', KEYS[9])
-- Kept unconfirmed again if the instance is registered again (putInstanceScript).
if #discarded > 0 then redis.call('HSET', KEYS[1], 'deprovision_discarded', table.concat(discarded, ',')) end
-- The add-on is gone: its OAuth tokens are no longer needed.
redis.call('DEL', KEYS[12])
redis.call('HDEL', KEYS[1], 'oauth_access', 'oauth_refresh', 'oauth_expires_at')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
redis.call('ZREM', KEYS[7], ARGV[1])
redis.call('ZADD', KEYS[8], ARGV[2], ARGV[1])
emit(KEYS[3], KEYS[4], ARGV[3], ARGV[4], ARGV[1], 'deprovisioned', '', '', '', ARGV[2])
return 'ok'
`)

// claimScript starts a rotation, resumes it, or joins the one in flight
// (docs/design.md, I4: at most one rotation in flight per instance).
//
// KEYS: claimKeys (bulk.go), one field per key, in order.
// A requested rotation whose batch was cancelled, and that no request on
// another queue moved (moved_at) or joined while its task ran (kept_at) and
// no batch still live joined (joined_by), is cancelled here, before any
// work, and reported as done; like a finished rotation, it expires after
// the rotation ttl. So is such a rotation in flight for the instance when
// another is requested, which then starts rather than joins it.
// ARGV: rotation id, instance id, now ms, batch id, reason, queue,
// skip_if_previous ("1" or ""), instance event cap, fleet event cap, grace ms
// requested (0 for the instance's), rotation ttl seconds, brief ("1": a
// producer's claim, which needs only the status), then the limits
// (limits.go: max previous, customer, one per grace, per day), then the
// queue a request on another queue overtakes ("" for none): a rotation in
// flight on it, still requested and resumed by no task, that the request
// joins moves to the request's queue (RotationRequest.Overtakes), then how
// long one run of a rotate task lasts at most, in ms (tasks.RotateTimeout).
// A task's claim (not brief) that resumes a requested rotation on the queue
// its record names, or that starts one, notes it started (started_at): a
// run of it may be minting, and the rotation does not move before that run
// is over; a request that joins it then notes it (kept_at), so that its
// batch's cancel does not end it. A brief claim that resumes one (a
// producer asking again, the feeder's look, a cancel's) notes nothing.
// The first task's claim of a rotation (its first run) notes on it the
// instance's database_moves, how often a registration moved it to another
// database location ("0" for never): its credential is pushed only if the
// instance has not moved since (markPushScript). Later claims keep the
// count: a rotation still requested may have minted already (an answer
// lost, a run still at the issuer), and an issuer that mints by rotation
// id answers a retry with that credential, made on the old location.
// Only a brief claim puts a rotation in its batch: a task's claim that
// starts or joins one is another app's task, and counts into no batch
// (task_claim_batch).
// Returns {status, rotation id, rotation state, credential id, previous
// credential id (for a failed rotation: its discarded one), revoke_at ms,
// instance hash as a flat list, push attempted at ms or "", the rotation's
// queue, "1" when the request moved it or "", push attempts, pushes
// settled, grace_ms, read-back waits (readback_wait)}, or {status, rotation id,
// rotation state} when brief, with "1" after it when the request moved the
// rotation it joined; status
// is one of claimed, resumed, joined, done, skipped. A request the limits
// refuse returns {"skipped", rotation id, "", reason, until ms, count}.
// Errors: "not_found", "deprovisioned", "conflict ..." (the rotation id is
// another instance's rotation).
var claimScript = eventScript(luaLimits, `
-- The fields reply reads of a rotation, in its order; the requested
-- rotation's are read once, with its batch, up front.
local rotation_fields = {'state', 'previous', 'revoke_at', 'discarded', 'finished_at', 'credential_id', 'push_attempted_at', 'queue',
  'push_attempts', 'push_settled', 'grace_ms', 'readback_wait', 'database_moves', 'started_at'}
-- reply's instance hash is h when the caller read it already.
local function reply(status, rot, rkey, r, moved, h)
  moved = moved and '1' or ''
  if status == 'claimed' then
    -- Just written: nothing to read back.
    if ARGV[12] == '1' then return {status, rot, 'requested'} end
    return {status, rot, 'requested', '', '', '', redis.call('HGETALL', KEYS[1]), '', ARGV[6], '', '', '', ARGV[10], '', ''}
  end
  if ARGV[12] == '1' then
    local st = r and (r[1] or '') or get(rkey, 'state')
    if moved ~= '' then return {status, rot, st, moved} end
    return {status, rot, st}
  end
  r = r or redis.call('HMGET', rkey, unpack(rotation_fields))
  local st, prev, at = r[1] or '', r[2] or '', r[3] or ''
  if st == 'failed' then prev, at = r[4] or '', r[5] or '' end
  return {status, rot, st, r[6] or '', prev, at, h or redis.call('HGETALL', KEYS[1]), r[7] or '', r[8] or '', moved,
    r[9] or '', r[10] or '', r[11] or '', r[12] or '', r[14] or ''}
end
-- unstarted_of_cancelled: whether a rotation in state st of batch batch
-- is one of a cancelled batch that has not started (nothing minted). One
-- a task's run started (started_at) is under way, still requested: that
-- run may have reached the issuer, whose answer was lost or not saved, and
-- only the rotation's own mint, answered again, records that credential;
-- cancelled, it would stay valid at the issuer, known to nobody (I3). A
-- rotation a request on another queue moved off the batch's queue
-- (moved_at), or joined while a task of it ran there (kept_at), is that
-- request's too, and the batch's cancel does not end it; so is one that a
-- batch not cancelled itself joined (joined_by: the next wave, which waits
-- for it and would otherwise count its instance ended unrotated). Only a
-- batch that exists counts: an id no batch of rekey's has (a task another
-- app enqueued naming one), or one expired, keeps nothing that nobody
-- could cancel.
-- A rotation that more batches joined than joined_by holds (joined_more)
-- is kept whatever became of them: which of those are live is not
-- recorded on it, and running a rotation someone may wait for is the safe
-- way to be wrong.
local function unstarted_of_cancelled(rkey, st, batch, moved_at, kept_at, joined_by)
  if st ~= 'requested' or batch == '' or (moved_at or '') ~= '' or (kept_at or '') ~= '' or
      get(KEYS[8] .. batch, 'cancelled_at') == '' or get(rkey, 'joined_more') ~= '' or
      get(rkey, 'started_at') ~= '' then
    return false
  end
  for by in string.gmatch(joined_by or '', '[^,]+') do
    local b = redis.call('HMGET', KEYS[8] .. by, 'created_at', 'cancelled_at')
    if (b[1] or '') ~= '' and (b[2] or '') == '' then return false end
  end
  return true
end
-- cancel records such a rotation (id rot, its key rkey) of this instance
-- cancelled, before any work, and frees the instance.
local function cancel(rkey, rot, batch)
  redis.call('HSET', rkey, 'state', 'cancelled', 'finished_at', ARGV[3])
  redis.call('EXPIRE', rkey, ARGV[11])
  if get(KEYS[1], 'inflight') == rot then redis.call('HDEL', KEYS[1], 'inflight', 'inflight_at') end
  redis.call('ZREM', KEYS[7], ARGV[2] .. '/' .. rot)
  bump(KEYS[8], batch, 'cancelled')
  bump_joined(KEYS[8], get(rkey, 'joined_by'))
  emit(KEYS[4], KEYS[5], ARGV[8], ARGV[9], ARGV[2], 'cancelled', rot, '', 'batch ' .. batch .. ' cancelled', ARGV[3])
end
-- task_claim_batch: the batch id the rotation this claim starts records.
-- rekey's producers claim every rotation of a batch (brief) before its task
-- exists, so a task's own claim that starts or joins a rotation is another
-- app's task (tasks/): it counts into no batch. It may name its own
-- correlation id, which the record keeps (its counts go nowhere: bump), but
-- not a batch of rekey's, which exists: counted there, its outcome would
-- make that batch done while its own rotations are still in flight.
local function task_claim_batch(b)
  if ARGV[12] ~= '1' and batch_id_ok(b) and redis.call('EXISTS', KEYS[8] .. b) == 1 then return '' end
  return b
end
local own = redis.call('HMGET', KEYS[2], 'batch_id', 'instance_id', 'moved_at', 'kept_at', 'joined_by',
  unpack(rotation_fields))
if own[6] then -- the rotation exists: every rotation has a state
  -- An id another instance's rotation holds names no rotation of this one:
  -- resumed, it would push into this instance a rotation recorded for the
  -- other, and finish that one without rotating it.
  if own[2] and own[2] ~= ARGV[2] then
    return redis.error_reply('conflict rotation ' .. ARGV[1] .. ' is another instance\'s')
  end
  local batch, r = own[1] or '', {unpack(own, 6)}
  local st = r[1]
  if st == 'promoted' or st == 'failed' or st == 'cancelled' then return reply('done', ARGV[1], KEYS[2], r) end
  if unstarted_of_cancelled(KEYS[2], st, batch, own[3], own[4], own[5]) then
    cancel(KEYS[2], ARGV[1], batch)
    return reply('done', ARGV[1], KEYS[2])
  end
  -- A task on the queue the record names has started the rotation: it
  -- mints, still requested, until the issuer answers. A request that joins
  -- it now does not move it, which would run it a second time beside this.
  -- A producer's claim (brief) and the feeder's look run nothing.
  if ARGV[12] ~= '1' and st == 'requested' then
    local set, h = {}, redis.call('HGETALL', KEYS[1])
    if (r[8] or '') == ARGV[6] then set[1], set[2] = 'started_at', ARGV[3] end
    -- The first run notes how often the instance had moved (database_moves),
    -- which the push checks (markPushScript); later ones keep that count.
    local n = ''
    for i = 1, #h, 2 do
      if h[i] == 'database_moves' then n = h[i + 1] end
    end
    if not r[13] then set[#set + 1], set[#set + 2] = 'database_moves', n == '' and '0' or n end
    if #set > 0 then redis.call('HSET', KEYS[2], unpack(set)) end
    return reply('resumed', ARGV[1], KEYS[2], r, false, h)
  end
  return reply('resumed', ARGV[1], KEYS[2], r)
end
local inst = redis.call('HMGET', KEYS[1], 'registered_at', 'deprovisioned_at', 'inflight', 'database_moves')
if not inst[1] then return redis.error_reply('not_found') end
if inst[2] and inst[2] ~= '' then return redis.error_reply('deprovisioned') end
local inflight = inst[3] or ''
if inflight ~= '' then
  local ikey = KEYS[6] .. inflight
  local cur = redis.call('HMGET', ikey, 'state', 'batch_id', 'queue', 'joined_by', 'started_at', 'moved_at', 'kept_at',
    'customer_joined', 'grace_ms', 'join_grace_ms', 'task_joined')
  local st = cur[1] or ''
  if unstarted_of_cancelled(ikey, st, cur[2] or '', cur[6], cur[7], cur[4]) then
    -- Joined, this request would end with it, its instance not rotated.
    cancel(ikey, inflight, cur[2])
  elseif st ~= '' and st ~= 'promoted' and st ~= 'failed' and st ~= 'cancelled' then
    local set, moved = {}, false
    -- A customer's or an operator's request does not wait behind a wave:
    -- the wave's rotation it joins, not yet started (requested, and no
    -- run of a task that resumed it may still be going), moves to its queue.
    if ARGV[17] ~= '' and ARGV[17] ~= ARGV[6] and st == 'requested' and cur[3] == ARGV[17] then
      if not cur[5] or tonumber(ARGV[3]) - (tonumber(cur[5]) or 0) >= tonumber(ARGV[18]) then
        set[1], set[2], set[3], set[4], moved = 'queue', ARGV[6], 'moved_at', ARGV[3], true
      elseif not cur[7] then
        -- Under way on the wave's queue, it stays there; it is this
        -- request's rotation all the same, which the wave's cancel must
        -- not end before its task's retry mints.
        set[1], set[2] = 'kept_at', ARGV[3]
      end
    end
    -- The request's batch is not done before the rotation it joined is.
    -- The first batches to join are noted on the rotation (joined_by,
    -- about 35 ids in its 1024 bytes), and each counts it in flight
    -- (joined_tracked) until the rotation finishes and counts into them
    -- (bump_joined): no read of the rotation when the batch is read. Past
    -- that cap, so that a rotation stays bounded in memory however many
    -- batches join it, the roles turn: the batch notes the rotation, in
    -- its own set (batchWaitsKey, bounded by the batch's size), and Batch
    -- reads whether those rotations are still in flight (joined_untracked
    -- says there are any, so no other batch pays a read). The rotation
    -- only notes that more joined (joined_more), which keeps a cancel from
    -- ending it. A customer's click counts into no batch (the dashboard
    -- drops its batch when the click only joined). An id no batch of
    -- rekey's can have is not noted, nor the batch of a task's claim
    -- (another app's task: task_claim_batch).
    local by = cur[4] or ''
    if ARGV[12] == '1' and ARGV[14] ~= '1' and batch_id_ok(ARGV[4]) and ARGV[4] ~= (cur[2] or '') and
        not string.find(',' .. by .. ',', ',' .. ARGV[4] .. ',', 1, true) then
      if #by + #ARGV[4] < 1024 then
        set[#set + 1], set[#set + 2] = 'joined_by', by == '' and ARGV[4] or by .. ',' .. ARGV[4]
        bump(KEYS[8], ARGV[4], 'joined_tracked')
      elseif bump(KEYS[8], ARGV[4], 'joined_untracked') then
        local wkey = KEYS[8] .. ARGV[4] .. ':waits'
        redis.call('SADD', wkey, inflight)
        redis.call('EXPIRE', wkey, ARGV[11])
        set[#set + 1], set[#set + 2] = 'joined_more', '1'
      end
    end
    -- A request asking a longer grace than the rotation's lengthens it:
    -- its client keeps the old credential in use that long (apps that
    -- restart slowly), and no grace is ever shortened (I2). The promotion
    -- takes the longest (join_grace_ms); a request that asks none leaves
    -- the grace as it is.
    local asked = tonumber(ARGV[10]) or 0
    if asked > math.max(tonumber(cur[9]) or 0, tonumber(cur[10]) or 0) then
      set[#set + 1], set[#set + 2] = 'join_grace_ms', ARGV[10]
    end
    -- A customer's join is in its instance's history once a rotation,
    -- and out of the fleet stream: one customer's clicks must push
    -- neither its own audit trail nor other tenants' out of their caps.
    local gkey, note = KEYS[5], true
    if ARGV[14] == '1' then
      gkey, note = '', not cur[8]
      if note then set[#set + 1], set[#set + 2] = 'customer_joined', ARGV[3] end
    elseif ARGV[12] ~= '1' then
      -- A task's own claim (another app's, through tasks/) that joins is
      -- noted once a rotation too: an app enqueuing a task per webhook or
      -- in a retry loop must not push other tenants' events out of the
      -- fleet stream's cap.
      note = not cur[11]
      if note then set[#set + 1], set[#set + 2] = 'task_joined', ARGV[3] end
    end
    if #set > 0 then redis.call('HSET', ikey, unpack(set)) end
    if note then emit(KEYS[4], gkey, ARGV[8], ARGV[9], ARGV[2], 'joined', inflight, '', ARGV[5], ARGV[3]) end
    return reply('joined', inflight, ikey, nil, moved)
  end
end
if ARGV[7] == '1' and redis.call('ZCARD', KEYS[3]) > 0 then
  return reply('skipped', ARGV[1], KEYS[2])
end
local refused = limits()
if refused then
  if refused[1] == 'previous_cap' then
    emit(KEYS[4], KEYS[5], ARGV[8], ARGV[9], ARGV[2], 'refused', ARGV[1], '', refused[4], ARGV[3])
  end
  return {'skipped', ARGV[1], '', refused[1], refused[2], refused[3]}
end
count_customer()
local rec = {'id', ARGV[1], 'instance_id', ARGV[2], 'state', 'requested',
  'requested_at', ARGV[3], 'batch_id', task_claim_batch(ARGV[4]), 'reason', ARGV[5], 'queue', ARGV[6],
  'grace_ms', ARGV[10]}
-- rekey's scheduler claims each of its rotations (brief) before its task
-- exists: a task's own claim that starts a rotation of reason 'scheduled'
-- is another app's (tasks/), whose failures are no failures of rekey's
-- schedule and must not quarantine the instance (failScript).
if ARGV[12] ~= '1' and ARGV[5] == 'scheduled' then
  rec[#rec + 1], rec[#rec + 2] = 'not_scheduler', '1'
end
-- A task's claim (not brief) runs the rotation it starts at once: like one
-- it resumes, the rotation does not move before that run is over.
if ARGV[12] ~= '1' then rec[#rec + 1], rec[#rec + 2] = 'started_at', ARGV[3] end
if ARGV[12] ~= '1' then rec[#rec + 1], rec[#rec + 2] = 'database_moves', inst[4] or '0' end
redis.call('HSET', KEYS[2], unpack(rec))
redis.call('HSET', KEYS[1], 'inflight', ARGV[1], 'inflight_at', ARGV[3])
redis.call('ZADD', KEYS[7], ARGV[3], ARGV[2] .. '/' .. ARGV[1])
fresh[ARGV[1]] = true
emit(KEYS[4], KEYS[5], ARGV[8], ARGV[9], ARGV[2], 'requested', ARGV[1], '', ARGV[5], ARGV[3])
return reply('claimed', ARGV[1], KEYS[2])
`)

// savePendingScript records the credential minted for a rotation.
//
// KEYS: savePendingKeys (rotation.go), one field per key, in order.
// ARGV: credential id, instance id, rotation id, sealed config, now ms,
// instance event cap, fleet event cap, rotation ttl seconds (the sealed
// config's expiry, should no promotion or failure delete it first), and a
// reason to discard the credential at once ("" to save it: DiscardMinted),
// the config's fingerprint under the first key and its fingerprints under
// every key, one after the other (configFingerprints; "" for none).
// Returns "saved" or "exists" (the same credential was saved before), or
// "discarded" (the reason given, the same credential discarded for this
// rotation before, or the rotation's credential revoked since and answered
// again: an issuer that mints by rotation id made it anew, and it is due
// for revocation again at once).
// Errors: "not_found", "conflict ..." (rotation finished, or another
// credential), "reminted" (this credential saved before with another
// config: the issuer answered the rotation's id twice with two configs,
// and either may be the one it keeps, so neither is pushed), "reused ..."
// (the id names a credential the instance already has, or has in another
// case a live one or one minted within the rotation ttl: nothing is
// recorded under it, since revoking by that id would hit the other
// credential; the rotation fails at mint), "config_reused ..." (the
// config is that of another credential of the instance under another id:
// the current one, a previous one, an unconfirmed one (Heroku may hold
// it), the rotation's own pending one, or any minted within the rotation
// ttl, revoked or discarded ones included; pushing it changes nothing,
// brings back an old one or puts a revoked secret in the apps' config, and
// revoking either credential would break the apps that hold the config;
// nothing is recorded, and the rotation fails at mint), "config_live_elsewhere"
// (the config is, by the fleet's index of live configs (livePrefix), that
// of a credential of another instance that may still work: pushing it
// hands that instance's secret to this one's apps, and revoking it breaks
// that instance's; nothing is recorded, and the rotation fails at mint). A
// credential saved, pending or discarded, joins that index until its
// revocation (markRevokedScript). A credential that arrives too late to be used (the rotation
// finished meanwhile, or already has another one) is recorded as discarded
// and queued for revocation, so it does not outlive the conflict (I3).
var savePendingScript = eventScript(luaFingerprintIn, luaLive, `
local rot = redis.call('HMGET', KEYS[1], 'state', 'credential_id')
local st, have = rot[1] or '', rot[2] or ''
if st == '' then return redis.error_reply('not_found') end
-- held(f): whether f is the new config's fingerprint under one of the keys.
local function held(f) return fingerprintIn(ARGV[11], #ARGV[10], f) end
if have == ARGV[1] then
  -- Another run saved this credential first: it pushes the stored config,
  -- so this run may not push another one under the same id.
  local c = redis.call('HMGET', KEYS[2], 'f', 'revoked_at', 'state')
  local f = c[1] or ''
  if ARGV[10] ~= '' and f ~= '' and not held(f) then
    return redis.error_reply('reminted')
  end
  if (c[2] or '') == '' and (c[3] == 'discarded' or c[3] == 'previous') then
    -- Waiting for its revocation, whose run may be at the issuer now: the
    -- mark has that run's record (markRevokedScript) leave it due again,
    -- should this answer have made it anew after the run revoked it.
    redis.call('HSET', KEYS[2], 'reminted_at', ARGV[5])
  end
  if (c[2] or '') ~= '' then
    -- Revoked since, and answered again: an issuer that mints by rotation
    -- id made it anew for a late run (I6), and it works again. Its
    -- rotation is over, so it is discarded, due for revocation at once
    -- (I3), and its config is live again until then.
    redis.call('HSET', KEYS[2], 'state', 'discarded', 'discarded_at', ARGV[5], 'revoke_at', ARGV[5])
    redis.call('HDEL', KEYS[2], 'revoked_at')
    redis.call('PERSIST', KEYS[2])
    redis.call('ZADD', KEYS[5], ARGV[5], ARGV[2] .. '/' .. ARGV[1])
    local set, m = live_at(KEYS[12], f)
    if set then redis.call('SADD', set, m) end
    emit(KEYS[3], KEYS[4], ARGV[6], ARGV[7], ARGV[2], 'discarded', ARGV[3], ARGV[1],
      'minted again after its revocation', ARGV[5])
    return 'discarded'
  end
  return 'exists'
end
local c = redis.call('HMGET', KEYS[2], 'state', 'rotation_id')
if c[1] then
  if ARGV[9] ~= '' and c[1] == 'discarded' and c[2] == ARGV[3] then return 'discarded' end
  return redis.error_reply('reused issuer reused a credential id')
end
-- The instance's live credentials: previous, unconfirmed, current, and the
-- rotation's own.
local live = redis.call('ZRANGE', KEYS[8], 0, -1)
for _, id in ipairs(redis.call('ZRANGE', KEYS[10], 0, -1)) do live[#live + 1] = id end
live[#live + 1] = get(KEYS[7], 'current')
live[#live + 1] = have
-- An id that one of them, or a credential minted within the rotation ttl
-- (below), has in another case is reused too: an issuer whose ids ignore
-- case (a case-insensitive column, a UUID written in upper case) revokes
-- both with either's revocation, and would revoke the one the apps run on.
local lower = string.lower(ARGV[1])
local function other_case(id) return id ~= '' and id ~= ARGV[1] and string.lower(id) == lower end
for _, id in ipairs(live) do
  if other_case(id) then return redis.error_reply('reused issuer reused credential ' .. id .. ' in another case') end
end
-- Another credential's config under this id: nothing is recorded, not even
-- as discarded (revoking this id could revoke that config). KEYS[11] holds
-- every config minted for the instance within the rotation ttl, whatever
-- became of its credential since (revoked and discarded ones included), as
-- its fingerprint followed by the credential's id; the live credentials
-- are read for those minted before that.
local since = tonumber(ARGV[5]) - tonumber(ARGV[8]) * 1000
-- stale: whether KEYS[11] holds a config older than the rotation ttl,
-- which remember() then trims (it rarely does: the key expires with its
-- newest config).
local stale = false
if ARGV[10] ~= '' then
  local n = #ARGV[10]
  local minted = redis.call('ZRANGE', KEYS[11], 0, -1, 'WITHSCORES')
  -- checked: the credentials whose fingerprint an entry of KEYS[11] within
  -- the ttl gave, compared just now. A credential's "f" is written once,
  -- and always with such an entry of it (remember(), learnFingerprintScript),
  -- which markRevokedScript writes again: a live credential with one holds
  -- no other "f", and reading it again would compare the same value.
  local checked = {}
  for i = 1, #minted, 2 do
    local m = minted[i]
    if tonumber(minted[i + 1]) < since then
      stale = true
    elseif other_case(string.sub(m, n + 1)) then
      return redis.error_reply('reused issuer reused credential ' .. string.sub(m, n + 1) .. ' in another case')
    elseif string.sub(m, n + 1) ~= ARGV[1] and held(string.sub(m, 1, n)) then
      return redis.error_reply('config_reused ' .. string.sub(m, n + 1))
    else
      checked[string.sub(m, n + 1)] = true
    end
  end
  for _, id in ipairs(live) do
    local f = id ~= '' and not checked[id] and get(KEYS[9] .. id, 'f') or ''
    if f ~= '' and held(f) then return redis.error_reply('config_reused ' .. id) end
  end
  if live_any(KEYS[12], ARGV[11], n) then return redis.error_reply('config_live_elsewhere') end
end
-- remember(): the config joins KEYS[11], which forgets what is older than
-- the rotation ttl and expires with the last config it holds, and the
-- fleet's index of live configs until the credential's revocation.
local function remember()
  if ARGV[10] == '' then return end
  local set, m = live_at(KEYS[12], ARGV[10])
  if set then redis.call('SADD', set, m) end
  redis.call('ZADD', KEYS[11], ARGV[5], ARGV[10] .. ARGV[1])
  if stale then redis.call('ZREMRANGEBYSCORE', KEYS[11], '-inf', '(' .. since) end
  redis.call('EXPIRE', KEYS[11], ARGV[8])
end
local why = ''
if have ~= '' then why = 'issuer returned a second credential for one rotation'
elseif st ~= 'requested' then why = 'rotation is ' .. st end
if why ~= '' or ARGV[9] ~= '' then
  redis.call('HSET', KEYS[2], 'rotation_id', ARGV[3],
    'state', 'discarded', 'minted_at', ARGV[5], 'discarded_at', ARGV[5], 'revoke_at', ARGV[5])
  -- Its fingerprint goes with it, so that its revocation takes its config
  -- out of the index of live configs that remember() puts it in.
  if ARGV[10] ~= '' then redis.call('HSET', KEYS[2], 'f', ARGV[10]) end
  redis.call('ZADD', KEYS[5], ARGV[5], ARGV[2] .. '/' .. ARGV[1])
  remember()
  emit(KEYS[3], KEYS[4], ARGV[6], ARGV[7], ARGV[2], 'discarded', ARGV[3], ARGV[1], why ~= '' and why or ARGV[9], ARGV[5])
  if why == '' then return 'discarded' end
  return redis.error_reply('conflict ' .. why)
end
redis.call('HSET', KEYS[2], 'rotation_id', ARGV[3], 'state', 'pending', 'minted_at', ARGV[5], 'f', ARGV[10])
redis.call('HSET', KEYS[6], 'config', ARGV[4])
redis.call('EXPIRE', KEYS[6], ARGV[8])
redis.call('HSET', KEYS[1], 'credential_id', ARGV[1], 'state', 'minted')
remember()
emit(KEYS[3], KEYS[4], ARGV[6], ARGV[7], ARGV[2], 'minted', ARGV[3], ARGV[1], '', ARGV[5])
return 'saved'
`)

// promoteScript makes a pushed credential current and the current one
// previous, with its revoke time, in one step. Any successful rotation,
// scheduled or not, also ends the instance's scheduled-failure streak and
// quarantine, and moves its due entry to its slot at least half a period
// ahead (schedule.go): the slot in the following period.
//
// The push that this promotion follows replaced the instance's config vars
// on Heroku, so no unconfirmed credential of an earlier failed rotation
// (failScript) can be in the config any more: each becomes previous, with
// the same revoke time as the superseded current one (I3), and leaves the
// unconfirmed set. Except one whose own rotation still has a push
// unanswered (push_attempts above push_settled, the last attempt less than
// the window ago): that push may land after this one and put it back in the
// config (I1), so it stays unconfirmed, and the first promotion after its
// push settles makes it previous. A rotation record that expired (the
// rotation ttl) counts as settled too. The current credential it supersedes
// is held to the same rule: one whose own rotation left a push unanswered
// becomes unconfirmed, not previous, and has no revocation scheduled.
//
// KEYS: promoteKeys (rotation.go), one field per key, in order.
// ARGV: instance id, rotation id, credential id, now ms, grace ms,
// instance event cap, fleet event cap, rotation ttl seconds, detail, slot
// hash, default period ms, push attempts settled (added to the rotation's
// push_settled first, as settlePushScript would, whatever the outcome; "0":
// none), the unanswered push window ms (UnansweredPushWindow), the grace
// ceiling ms (WithMaxGrace; 0: none), which bounds a grace a joining
// request asked (join_grace_ms), the call's settle token (callToken: a
// promotion sent again by go-redis after its answer was lost settles
// nothing twice).
// Returns {previous credential id or "", revoke_at ms or "", superseded
// unconfirmed credentials as "revoke_at ms,id,id..." or ""}; repeating a
// promotion returns the same. Errors: "not_found", "conflict ...",
// "deprovisioned ..." (the instance was deprovisioned while the
// rotation's push was on its way, and registered again since).
var promoteScript = eventScript(luaSchedule, luaConfig, luaSettleOnce, `
local rot = redis.call('HMGET', KEYS[2], 'state', 'credential_id', 'batch_id', 'push_settled', 'joined_by', 'join_grace_ms',
  'deprovisioned_at', 'push_settled_by')
local st, batch = rot[1] or '', rot[3] or ''
-- A request that joined the rotation asking a longer grace lengthens it
-- (claimScript), up to the ceiling: a grace is never shortened (I2).
local grace = tonumber(ARGV[5])
local joined_grace = tonumber(rot[6]) or 0
if tonumber(ARGV[14]) > 0 then joined_grace = math.min(joined_grace, tonumber(ARGV[14])) end
if joined_grace > grace then grace = joined_grace end
-- The settled pushes are added here on the ways out that write nothing
-- more to the rotation, and with its last HSET on a promotion.
local settled = (tonumber(rot[4]) or 0) + tonumber(ARGV[12])
local function settle()
  if st ~= '' and ARGV[12] ~= '0' then settle_once(KEYS[2], ARGV[12], ARGV[15]) end
end
if st == 'promoted' then
  settle()
  return {get(KEYS[2], 'previous'), get(KEYS[2], 'revoke_at'), get(KEYS[2], 'superseded_unconfirmed')}
end
if st == '' then return redis.error_reply('not_found') end
if st ~= 'minted' or (rot[2] or '') ~= ARGV[3] then
  settle()
  return redis.error_reply('conflict rotation is ' .. st)
end
local now = tonumber(ARGV[4])
local inst = redis.call('HMGET', KEYS[1], 'current', 'inflight', 'quarantined_at', 'deprovisioned_at', 'sched_opt_out')
-- The instance was deprovisioned while the rotation's push was on its way
-- (deprovisionScript), and registered again since: the push raced the new
-- add-on's own credential, which the registration made current and the
-- apps may hold. Promoted, the rotation would supersede that credential
-- and revoke it (I1); the caller ends it as failed instead. Still
-- deprovisioned (a DELETE by mistake leaves the add-on and the config the
-- push changed), it is promoted as before.
if (rot[7] or '') ~= '' and (inst[4] or '') == '' then
  settle()
  return redis.error_reply('deprovisioned the instance was deprovisioned and registered again while this rotation pushed')
end
local cur = inst[1] or ''
local revoke_at = ''
-- unanswered(ckey): whether the credential's own rotation has a push
-- unanswered (more attempted than settled), the last less than the window
-- ago: that push may still land, after this one, and put it back in the
-- config (I1). A rotation record that expired counts as settled.
local function unanswered(ckey)
  local urot = get(ckey, 'rotation_id')
  if urot == '' then return false end
  local r = redis.call('HMGET', KEYS[16] .. urot, 'push_attempts', 'push_settled', 'push_attempted_at')
  return (tonumber(r[1]) or 0) > (tonumber(r[2]) or 0) and now - (tonumber(r[3]) or 0) < tonumber(ARGV[13])
end
emit(KEYS[6], KEYS[7], ARGV[6], ARGV[7], ARGV[1], 'pushed', ARGV[2], ARGV[3], ARGV[9], ARGV[4])
if cur ~= '' and cur ~= ARGV[3] and unanswered(KEYS[8] .. cur) then
  -- The current credential's own rotation left a push unanswered (a 5xx
  -- that Heroku may still apply, a timed-out run's request): it is set
  -- aside as unconfirmed, as a failed rotation's is, never revoked on its
  -- own; the first promotion after that push settles makes it previous.
  redis.call('HSET', KEYS[8] .. cur, 'state', 'unconfirmed', 'unconfirmed_at', ARGV[4], 'superseded_by', ARGV[2])
  redis.call('ZADD', KEYS[15], ARGV[4], cur)
  emit(KEYS[6], KEYS[7], ARGV[6], ARGV[7], ARGV[1], 'push_unknown', ARGV[2], cur,
    'an earlier push of it is still unanswered: Heroku may put it back, so it is kept unrevoked until a later rotation replaces it', ARGV[4])
  cur = ''
elseif cur ~= '' and cur ~= ARGV[3] then
  revoke_at = tostring(now + grace)
  local ckey = KEYS[8] .. cur
  local f = {'state', 'previous', 'superseded_at', ARGV[4], 'revoke_at', revoke_at, 'superseded_by', ARGV[2]}
  if batch ~= '' then f[#f + 1], f[#f + 2] = 'superseded_in_batch', batch end
  redis.call('HSET', ckey, unpack(f))
  redis.call('ZADD', KEYS[4], revoke_at, cur)
  redis.call('ZADD', KEYS[5], revoke_at, ARGV[1] .. '/' .. cur)
end
redis.call('HSET', KEYS[3], 'state', 'current', 'promoted_at', ARGV[4])
drop_config(KEYS[17], KEYS[3])
local stale = {}
local stale_at = tostring(now + grace)
for _, id in ipairs(redis.call('ZRANGE', KEYS[15], 0, -1)) do
  local ckey = KEYS[8] .. id
  local unsettled = unanswered(ckey)
  if id == ARGV[3] or get(ckey, 'state') ~= 'unconfirmed' then
    redis.call('ZREM', KEYS[15], id)
  elseif not unsettled then
    redis.call('ZREM', KEYS[15], id)
    table.insert(stale, id)
    redis.call('HSET', KEYS[8] .. id, 'state', 'previous', 'superseded_at', ARGV[4], 'revoke_at', stale_at,
      'superseded_by', ARGV[2])
    redis.call('ZADD', KEYS[4], stale_at, id)
    redis.call('ZADD', KEYS[5], stale_at, ARGV[1] .. '/' .. id)
    emit(KEYS[6], KEYS[7], ARGV[6], ARGV[7], ARGV[1], 'revoke_scheduled', ARGV[2], id, stale_at, ARGV[4])
  end
end
-- The credential is current since the rotation: current_since goes (instanceFrom).
redis.call('HSET', KEYS[1], 'current', ARGV[3], 'last_rotated_at', ARGV[4])
local gone = {'current_since', 'last_error', 'last_error_at', 'last_error_code', 'fail_streak', 'quarantined_at',
  'quarantine_reason'}
if (inst[2] or '') == ARGV[2] then gone[#gone + 1], gone[#gone + 2] = 'inflight', 'inflight_at' end
redis.call('HDEL', KEYS[1], unpack(gone))
redis.call('ZREM', KEYS[9], ARGV[1] .. '/' .. ARGV[2])
redis.call('ZREM', KEYS[14], ARGV[1])
local was_quarantined = (inst[3] or '') ~= ''
if was_quarantined then redis.call('ZREM', KEYS[13], ARGV[1]) end
local p = sched_period(KEYS[12], ARGV[11])
-- schedulable(KEYS[1]) from the fields read above: the quarantine just ended.
if p > 0 and (inst[4] or '') == '' and inst[5] ~= '1' then
  redis.call('ZADD', KEYS[11], score(next_slot(tonumber(ARGV[10]), p, now + math.floor(p / 2))), ARGV[1])
end
local superseded = ''
if #stale > 0 then superseded = stale_at .. ',' .. table.concat(stale, ',') end
local fin = {'state', 'promoted', 'finished_at', ARGV[4], 'previous', cur, 'revoke_at', revoke_at,
  'superseded_unconfirmed', superseded}
if ARGV[12] ~= '0' then
  fin[#fin + 1], fin[#fin + 2] = 'push_settled', tostring(settled)
  -- A promotion sent again after its answer was lost meets its own token.
  if (ARGV[15] or '') ~= '' then
    local seen = rot[8] or ''
    if seen ~= '' then seen = seen .. ',' end
    fin[#fin + 1], fin[#fin + 2] = 'push_settled_by', seen .. ARGV[15]
  end
end
redis.call('HSET', KEYS[2], unpack(fin))
redis.call('EXPIRE', KEYS[2], ARGV[8])
bump(KEYS[10], batch, 'succeeded')
bump_joined(KEYS[10], rot[5])
emit(KEYS[6], KEYS[7], ARGV[6], ARGV[7], ARGV[1], 'promoted', ARGV[2], ARGV[3], '', ARGV[4])
if revoke_at ~= '' then
  emit(KEYS[6], KEYS[7], ARGV[6], ARGV[7], ARGV[1], 'revoke_scheduled', ARGV[2], cur, revoke_at, ARGV[4])
end
if was_quarantined then
  emit(KEYS[6], KEYS[7], ARGV[6], ARGV[7], ARGV[1], 'unquarantined', ARGV[2], '', 'rotation succeeded', ARGV[4])
end
return {cur, revoke_at, superseded}
`)

// failScript ends a rotation that failed permanently: the instance keeps
// its current credential. The pending credential, if any, is discarded and
// queued for revocation at once, unless a push of it was attempted
// (push_attempted_at on the rotation) and the caller brings no proof that
// Heroku's config, read back, does not hold it: then Heroku may hold it, and
// revoking it could break the app (I1). Such a credential is set aside as
// unconfirmed instead, never revoked on its own, with a "push_unknown"
// event; the instance's next promotion makes it previous. The script, not
// its caller, makes this check, so that no run acting on a stale view (two
// runs of one rotation at once) can discard a pushed credential.
//
// A deprovisioned instance has no next promotion (I3): Heroku dropped the
// add-on's config from its apps at deprovisioning, so such a credential is
// discarded instead, but revoked only after the grace (ARGV, else the
// instance's), for dynos that still run on the config they started with.
// deprovisionScript does the same with the instance's earlier unconfirmed
// credentials.
//
// A failed scheduled rotation (reason "scheduled", claimed by the
// scheduler: not one another app's task started, not_scheduler) adds one
// to the instance's failure streak, unless its failure says nothing of the
// instance (Failure.Fleetwide: the issuer refused rekey's signature, as it
// would every instance's, or the task's retries ran out on transient
// failures, an outage's). When the streak reaches the published
// quarantine limit the instance is quarantined: out of the due index, in
// the quarantined zset, with a "quarantined" event. Otherwise, fleet-wide
// failures included, it is due again after RetryAfterFailure (schedule.go).
//
// KEYS: failKeys (rotation.go), one field per key, in order.
// ARGV: instance id, rotation id, now ms, error sentence, instance event cap,
// fleet event cap, rotation ttl seconds, failure code (groups failures in
// the batch's ":failures" hash), default period ms, default quarantine
// limit, not held ("1": Heroku's config was read back after the last push
// attempt and does not hold the credential; "" otherwise), the push attempt
// count read before that read-back (the proof is void if an attempt was
// made since), grace ms for a credential discarded because the instance is
// deprovisioned (0: the instance's grace), fleet-wide ("1": the failure
// does not count towards the instance's quarantine).
// Returns {outcome, discarded credential id or "", unconfirmed credential id
// or "", the discarded credential's revoke_at ms or ""}; outcome is
// "failed", "already" (failed before) or "promoted" (too late to fail:
// nothing done).
var failScript = eventScript(luaSchedule, luaConfig, `
local st = get(KEYS[2], 'state')
if st == 'promoted' then return {'promoted', '', '', ''} end
if st == 'failed' then
  local d = get(KEYS[2], 'discarded')
  local at = ''
  if d ~= '' then at = get(KEYS[3], 'revoke_at') end
  return {'already', d, get(KEYS[2], 'unconfirmed'), at}
end
if st == 'cancelled' then return {'already', '', '', ''} end
local cred, kept, revoke_at, why = get(KEYS[2], 'credential_id'), '', ARGV[3], ''
local unknown = get(KEYS[2], 'push_attempted_at') ~= '' and
  (ARGV[11] ~= '1' or (tonumber(get(KEYS[2], 'push_attempts')) or 0) ~= tonumber(ARGV[12]))
if cred == '' or get(KEYS[3], 'state') ~= 'pending' then
  cred = ''
elseif unknown and get(KEYS[1], 'deprovisioned_at') == '' then
  kept, cred = cred, ''
  redis.call('HSET', KEYS[3], 'state', 'unconfirmed', 'unconfirmed_at', ARGV[3])
  drop_config(KEYS[14], KEYS[3])
  redis.call('ZADD', KEYS[13], ARGV[3], kept)
else
  if unknown then
    local g = tonumber(ARGV[13]) or 0
    if g <= 0 then g = tonumber(get(KEYS[1], 'grace_ms')) or 0 end
    revoke_at = tostring(tonumber(ARGV[3]) + g)
    why = 'push outcome unknown, but the instance is deprovisioned: revoked after the grace'
    -- Kept unconfirmed again if the instance is registered again (putInstanceScript).
    local d = get(KEYS[1], 'deprovision_discarded')
    redis.call('HSET', KEYS[1], 'deprovision_discarded', d == '' and cred or d .. ',' .. cred)
  end
  redis.call('HSET', KEYS[3], 'state', 'discarded', 'discarded_at', ARGV[3], 'revoke_at', revoke_at)
  drop_config(KEYS[14], KEYS[3])
  redis.call('ZADD', KEYS[4], revoke_at, ARGV[1] .. '/' .. cred)
end
redis.call('HSET', KEYS[2], 'id', ARGV[2], 'instance_id', ARGV[1], 'state', 'failed',
  'finished_at', ARGV[3], 'error', ARGV[4], 'error_code', ARGV[8], 'discarded', cred, 'unconfirmed', kept)
redis.call('EXPIRE', KEYS[2], ARGV[7])
if get(KEYS[1], 'inflight') == ARGV[2] then redis.call('HDEL', KEYS[1], 'inflight', 'inflight_at') end
redis.call('ZREM', KEYS[7], ARGV[1] .. '/' .. ARGV[2])
local fin = redis.call('HMGET', KEYS[2], 'batch_id', 'joined_by')
local batch = fin[1] or ''
-- The failure codes count into a batch that exists, as its counts do: an id
-- like "bat_x:failures" (batch_id_ok) or one rekey never created leaves no key.
if bump(KEYS[8], batch, 'failed') then
  redis.call('HINCRBY', KEYS[8] .. batch .. ':failures', ARGV[8], 1)
  redis.call('EXPIRE', KEYS[8] .. batch .. ':failures', ARGV[7])
  -- Which instances failed, for rotating them again (batchFailedKey).
  redis.call('HSET', KEYS[8] .. batch .. ':failed', ARGV[1], ARGV[8])
  redis.call('EXPIRE', KEYS[8] .. batch .. ':failed', ARGV[7])
end
-- The batches that joined it count it finished (bump_joined) and list it
-- among their failures, apart from their own (batchFailedJoinedKey): an
-- operator rotating a batch's failures again rotates those it joined too.
-- Those past joined_by's cap read it in their waits set (BatchFailed),
-- by the rotation's error_code.
for by in string.gmatch(fin[2] or '', '[^,]+') do
  if bump(KEYS[8], by, 'joined_finished') then
    redis.call('HSET', KEYS[8] .. by .. ':failed_joined', ARGV[1], ARGV[8])
    redis.call('EXPIRE', KEYS[8] .. by .. ':failed_joined', ARGV[7])
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'last_error', ARGV[4], 'last_error_at', ARGV[3], 'last_error_code', ARGV[8])
end
emit(KEYS[5], KEYS[6], ARGV[5], ARGV[6], ARGV[1], 'failed', ARGV[2], cred .. kept, ARGV[4], ARGV[3])
if cred ~= '' then
  emit(KEYS[5], KEYS[6], ARGV[5], ARGV[6], ARGV[1], 'discarded', ARGV[2], cred, why, ARGV[3])
end
if kept ~= '' then
  emit(KEYS[5], KEYS[6], ARGV[5], ARGV[6], ARGV[1], 'push_unknown', ARGV[2], kept,
    'push outcome unknown: Heroku may hold this credential, so it is kept unrevoked until the next rotation replaces it', ARGV[3])
end
redis.call('ZREM', KEYS[12], ARGV[1])
if get(KEYS[2], 'reason') == 'scheduled' and get(KEYS[2], 'not_scheduler') == '' and schedulable(KEYS[1]) then
  -- A fleet-wide failure counts no streak, but is due again after the same
  -- wait: left where the sweep's lease put it, it would be claimed again at
  -- the next sweep once an outage outlasted the lease.
  local streak = 0
  if ARGV[14] ~= '1' then streak = redis.call('HINCRBY', KEYS[1], 'fail_streak', 1) end
  local limit = sched_quarantine_after(KEYS[10], ARGV[10])
  local p = sched_period(KEYS[10], ARGV[9])
  if limit > 0 and streak >= limit then
    local why = streak .. ' scheduled rotations in a row failed'
    redis.call('HSET', KEYS[1], 'quarantined_at', ARGV[3], 'quarantine_reason', why)
    redis.call('ZADD', KEYS[11], ARGV[3], ARGV[1])
    redis.call('ZREM', KEYS[9], ARGV[1])
    emit(KEYS[5], KEYS[6], ARGV[5], ARGV[6], ARGV[1], 'quarantined', ARGV[2], '', why, ARGV[3])
  elseif p > 0 then
    redis.call('ZADD', KEYS[9], score(tonumber(ARGV[3]) + math.min(math.floor(p / 4), 86400000)), ARGV[1])
  end
end
if cred == '' then revoke_at = '' end
return {'failed', cred, kept, revoke_at}
`)

// markRevokedScript records that the issuer revoked a previous or discarded
// credential, and remembers its config for the rotation ttl from now
// (mintedKey), whenever it was minted; its config leaves the fleet's index
// of live configs (livePrefix). Its event names the rotation that superseded a previous
// credential (superseded_by, set by promoteScript), else the one that
// minted it.
//
// A hold left on the credential (a run of its revoke task held it while
// another revoked it) goes with the revocation: saveHoldScript marks a
// held credential ("held"), so a revocation never held deletes nothing.
//
// KEYS: markRevokedKeys (credential.go), one field per key, in order; a
// dead revocation an operator ran by hand leaves the dead-letter set.
// ARGV: instance id, credential id, now ms, instance event cap, fleet event
// cap, credential ttl seconds, the call's token (callToken; "" for none).
// Returns "revoked" or "already", or "again" when a mint answered the
// credential again while it waited (reminted_at, savePendingScript): it is
// then due again at once, not recorded revoked, and the call's token is
// kept (again_by), so that the same call sent again by go-redis after its
// answer was lost answers "again" again rather than recording revoked a
// credential the mint may have made anew (I3). Errors: "not_found",
// "conflict ..." when the credential is pending or current (it must never
// be revoked: I1).
var markRevokedScript = eventScript(luaLive, `
local c = redis.call('HMGET', KEYS[1], 'state', 'revoked_at', 'superseded_in_batch', 'rotation_id', 'dead_at',
  'superseded_by', 'f', 'held', 'reminted_at', 'again_by')
local st = c[1] or ''
if st == '' then return redis.error_reply('not_found') end
if st == 'revoked' or (c[2] or '') ~= '' then return 'already' end
if st ~= 'previous' and st ~= 'discarded' then
  return redis.error_reply('conflict credential is ' .. st)
end
-- This very call answered "again" already: its answer was lost.
if (ARGV[7] or '') ~= '' and c[10] == ARGV[7] then return 'again' end
-- A mint answered it again while it waited (savePendingScript): an issuer
-- that mints by rotation may have made it anew after this revocation
-- reached the issuer, so it is due again at once rather than recorded
-- revoked, and its next revocation is recorded (I3).
if (c[9] or '') ~= '' then
  redis.call('HDEL', KEYS[1], 'reminted_at')
  redis.call('HSET', KEYS[1], 'revoke_at', ARGV[3], 'again_by', ARGV[7] or '')
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1] .. '/' .. ARGV[2])
  if st == 'previous' then redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2]) end
  local rot = c[6] or ''
  if rot == '' then rot = c[4] or '' end
  emit(KEYS[4], KEYS[5], ARGV[4], ARGV[5], ARGV[1], 'revoke_scheduled', rot, ARGV[2], ARGV[3], ARGV[3])
  return 'again'
end
if st == 'previous' then
  redis.call('HSET', KEYS[1], 'state', 'revoked', 'revoked_at', ARGV[3])
  bump(KEYS[6], c[3] or '', 'revoked')
else
  redis.call('HSET', KEYS[1], 'revoked_at', ARGV[3])
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[1] .. '/' .. ARGV[2])
-- Only a dead-lettered revocation (deadScript set dead_at) is in the
-- dead-letter set.
if (c[5] or '') ~= '' then
  redis.call('ZREM', KEYS[7], ARGV[1] .. '/' .. ARGV[2])
  redis.call('HDEL', KEYS[1], 'dead_at', 'dead_reason')
end
if (c[8] or '') ~= '' then
  redis.call('DEL', KEYS[9])
  redis.call('ZREM', KEYS[10], ARGV[1] .. '/' .. ARGV[2])
  redis.call('HDEL', KEYS[1], 'held')
end
-- Its config stays refused under another id for the ttl from now
-- (mintedKey, which savePendingScript reads): a credential current for months was
-- minted, and remembered, long before.
-- It leaves the fleet's index of live configs (livePrefix).
if (c[7] or '') ~= '' then
  redis.call('ZADD', KEYS[8], ARGV[3], c[7] .. ARGV[2])
  redis.call('EXPIRE', KEYS[8], ARGV[6])
  local set, m = live_at(KEYS[11], c[7])
  if set then redis.call('SREM', set, m) end
end
-- The revocation goes to the history entry of the rotation that
-- superseded the credential, beside its revoke_scheduled event.
local rot = c[6] or ''
if rot == '' then rot = c[4] or '' end
emit(KEYS[4], KEYS[5], ARGV[4], ARGV[5], ARGV[1], 'revoked', rot, ARGV[2], st, ARGV[3])
return 'revoked'
`)

// expediteScript sets a previous credential's revoke time to now.
//
// A credential already expedited, its revoke time passed, is left as it
// is and no event is written: a customer clicking "revoke now" again
// while its revocation runs (or waits on a hold) writes nothing. Each
// credential is expedited once, so its event, in the instance's history
// and the fleet stream (a customer revoking a credential is an event
// operators watch for), is written once.
//
// A credential whose revocation the issuer refused for good (deadScript
// set dead_at) is refused: only an operator brings it back
// (RetryDeadRevocation), and moved to the revocations due it would sit in
// both sets, overdue and retried by every sweep.
//
// KEYS: expediteKeys (credential.go), one field per key, in order.
// ARGV: instance id, credential id, now ms, instance event cap, fleet event
// cap, who asked. Returns {"ok" or "already", the revoke time ms}. Errors:
// "not_found", "conflict ..." ("conflict revocation is dead" for one in the
// dead-letter set: ErrRevocationDead).
var expediteScript = eventScript(`
local c = redis.call('HMGET', KEYS[1], 'state', 'expedited_at', 'revoke_at', 'dead_at')
local st = c[1] or ''
if st == '' then return redis.error_reply('not_found') end
if st ~= 'previous' then return redis.error_reply('conflict credential is ' .. st) end
if (c[4] or '') ~= '' then return redis.error_reply('conflict revocation is dead') end
if (c[2] or '') ~= '' and (tonumber(c[3]) or 0) <= tonumber(ARGV[3]) then return {'already', c[3]} end
redis.call('HSET', KEYS[1], 'revoke_at', ARGV[3], 'expedited_at', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1] .. '/' .. ARGV[2])
emit(KEYS[4], KEYS[5], ARGV[4], ARGV[5], ARGV[1], 'revoke_expedited', '', ARGV[2], ARGV[6], ARGV[3])
return {'ok', ARGV[3]}
`)
