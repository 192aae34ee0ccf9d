package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// luaV1Apps holds v1_sets, which the scripts that keep the index of V1
// apps (v1AppsKey) use to tell a live holder of a field from a stale one.
const luaV1Apps = `
-- v1_sets(key, app, name): whether the instance hash at key is live, V1,
-- of the heroku_id app (compared in lower case) and sets the var name.
local function v1_sets(key, app, name)
  local o = redis.call('HMGET', key, 'api_version', 'heroku_id', 'deprovisioned_at', 'config_vars')
  return o[1] == 'v1' and string.lower(o[2] or '') == app and (o[3] or '') == '' and
    string.find(',' .. (o[4] or '') .. ',', ',' .. name .. ',', 1, true) ~= nil
end
`

// indexV1Script puts one instance's fields in the index of V1 apps, for an
// instance registered before the index existed: a field no live instance
// holds becomes the instance's; one another live V1 instance of the app
// holds for the same var stays that instance's, and is returned.
//
// KEYS: indexV1Keys, one field per key, in order. ARGV: instance id.
// Returns {heroku_id, holder, var, holder, var...}: the instance's
// heroku_id, then the other live instances that set a var of its app, one
// pair a var; empty when none.
var indexV1Script = redis.NewScript(luaV1Apps + `
local v = redis.call('HMGET', KEYS[1], 'api_version', 'heroku_id', 'deprovisioned_at', 'config_vars')
if v[1] ~= 'v1' or (v[2] or '') == '' or (v[3] or '') ~= '' then return {} end
local app = string.lower(v[2])
local prefix = string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[1])
local shared = {v[2]}
for name in string.gmatch(v[4] or '', '[^,]+') do
  local f = app .. '/' .. name
  local owner = redis.call('HGET', KEYS[2], f)
  if owner and owner ~= ARGV[1] and v1_sets(prefix .. owner, app, name) then
    shared[#shared + 1], shared[#shared + 2] = owner, name
  elseif owner ~= ARGV[1] then
    redis.call('HSET', KEYS[2], f, ARGV[1])
  end
end
if #shared == 1 then return {} end
return shared
`)

// indexV1Keys are the KEYS of indexV1Script, one field per key, in order.
type indexV1Keys struct {
	instance string // KEYS[1] -> rekey:instance:<id>
	v1Apps   string // KEYS[2] -> rekey:v1_apps
}

func (k indexV1Keys) list() []string { return []string{k.instance, k.v1Apps} }

// V1AppShared is two live V1 instances of one app (heroku_id) that set a
// config var of the same name: each push of either puts its credential in
// the config both apps' dynos read. IndexV1Apps reports them; a
// registration would now refuse the second (ErrHerokuIDTaken).
type V1AppShared struct {
	HerokuID, ConfigVar string
	// Instances are the one the index holds the var for, then the other.
	Instances [2]string
}

// IndexV1Apps puts every live V1 instance's fields in the index of V1 apps
// (v1AppsKey), for instances registered before it existed or while a
// process of an earlier version ran, and a field whose holder is no longer
// live (a deprovisioning an earlier version answered) is taken over. It
// returns the pairs of live instances that already share an app's var,
// which no registration can undo. The clock runs it at start.
func (s *Store) IndexV1Apps(ctx context.Context) ([]V1AppShared, error) {
	if err := indexV1Script.Load(ctx, s.rdb).Err(); err != nil {
		return nil, fmt.Errorf("index v1 apps: %w", err)
	}
	var shared []V1AppShared
	err := s.InstanceIDs(ctx, 500, func(ids []string) error {
		keys := func(id string) []string { return indexV1Keys{instance: instanceKey(id), v1Apps: v1AppsKey()}.list() }
		args := func(id string) []any { return []any{id} }
		for i, c := range s.evalEach(ctx, indexV1Script, ids, keys, args) {
			res, err := c.StringSlice()
			if err != nil {
				return fmt.Errorf("index v1 app of %s: %w", ids[i], err)
			}
			for j := 1; j+1 < len(res); j += 2 {
				shared = append(shared, V1AppShared{HerokuID: res[0], ConfigVar: res[j+1],
					Instances: [2]string{res[j], ids[i]}})
			}
		}
		return nil
	})
	return shared, err
}
