package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/secret"
)

// Database is where a PostgreSQL-backed instance's database lives, for the
// built-in PostgreSQL issuer (README "The PostgreSQL issuer"): a server id the
// partner configured, the database's name and the group role that owns it.
// It holds no secret: the admin connection stays in rekey's configuration.
type Database struct {
	Server string `json:"server"`
	Name   string `json:"name"`
	Owner  string `json:"owner_role"`
}

// databaseServerPattern is what a server id may look like (the keys of
// REKEY_POSTGRES_SERVERS).
var databaseServerPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Validate checks a database location, naming the first bad field.
// PostgreSQL names are at most 63 bytes; the issuer quotes them, so any
// other character is allowed but NUL.
func (d Database) Validate() error {
	switch {
	case !databaseServerPattern.MatchString(d.Server):
		return fmt.Errorf("database.server %s is not valid: use lowercase letters, digits, '-' and '_'", secret.QuoteInput(d.Server, 64))
	case !validPGName(d.Name):
		return errors.New("database.name must be 1 to 63 bytes without NUL")
	case !validPGName(d.Owner):
		return errors.New("database.owner_role must be 1 to 63 bytes without NUL")
	}
	return nil
}

func validPGName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := range len(s) {
		if s[i] == 0 {
			return false
		}
	}
	return true
}

// databaseKey is a STRING of one instance's Database as JSON.
func databaseKey(id string) string { return keyPrefix + "database:" + id }

// databasesKey is a HASH naming, for each database location a live
// instance registered, the instance: field "owner:<server>/<owner role>"
// and field "name:<server>/<database name>". A credential the PostgreSQL
// issuer mints is a member of the owner role, and its URL names the
// database: two instances registered with one of them would each open the
// other's data.
func databasesKey() string { return keyPrefix + "databases" }

// ErrDatabaseTaken means a registration named the database, or the owner
// role, of another live instance on the same server (DatabaseTakenError).
var ErrDatabaseTaken = errors.New("database location is another live instance's")

// DatabaseTakenError is ErrDatabaseTaken with the instance that holds the
// location and what they share ("owner role", "database").
type DatabaseTakenError struct{ Holder, What string }

func (e *DatabaseTakenError) Error() string {
	return fmt.Sprintf("%s (instance %s, the same %s)", ErrDatabaseTaken, e.Holder, e.What)
}

// Is makes errors.Is(err, ErrDatabaseTaken) hold.
func (e *DatabaseTakenError) Is(target error) bool { return target == ErrDatabaseTaken }

// CheckDatabase refuses (*DatabaseTakenError) a location whose database or
// owner role another live instance registered on the same server. It
// writes nothing: a registration asks before it spends anything (an
// oauth_grant's exchange), and the registration's script asks again as
// it stores the instance and its location in one step (putInstanceLua).
func (s *Store) CheckDatabase(ctx context.Context, instanceID string, d Database) error {
	if err := d.Validate(); err != nil {
		return err
	}
	keys := checkDatabaseKeys{databases: databasesKey(), instancePrefix: instanceKey("")}
	err := checkDatabaseScript.Run(ctx, s.rdb, keys.list(), instanceID, d.Server, d.Name, d.Owner).Err()
	return scriptError("database of instance "+instanceID, err)
}

// checkDatabaseKeys are the KEYS of checkDatabaseScript, one field per key, in order.
type checkDatabaseKeys struct {
	databases      string // KEYS[1] -> rekey:databases
	instancePrefix string // KEYS[2] -> rekey:instance: (the script appends a holder's id)
}

func (k checkDatabaseKeys) list() []string { return []string{k.databases, k.instancePrefix} }

// luaDatabaseFields is what the scripts that keep the index of live
// database locations (databasesKey) share.
const luaDatabaseFields = `
-- database_fields(server, name, owner): a location's fields in the index.
local function database_fields(server, name, owner)
  return {'owner:' .. server .. '/' .. owner, 'name:' .. server .. '/' .. name}
end
-- stored_database_fields(key): the fields of the location stored as JSON
-- at key (databaseKey), nil when none can be read.
local function stored_database_fields(key)
  local loc = redis.call('GET', key)
  if not loc then return nil end
  local ok, d = pcall(cjson.decode, loc)
  if not ok or type(d) ~= 'table' then return nil end
  return database_fields(tostring(d.server), tostring(d.name), tostring(d.owner_role))
end
-- database_holder(databases, prefix, fields, id): the live instance other
-- than id that holds one of fields, and what it holds ('owner role',
-- 'database'); nil when none. prefix is the instance key's, which the
-- holder's id ends. A field held by an instance no longer live is free.
local function database_holder(databases, prefix, fields, id)
  for _, f in ipairs(fields) do
    local holder = redis.call('HGET', databases, f)
    if holder and holder ~= id then
      local h = redis.call('HMGET', prefix .. holder, 'registered_at', 'deprovisioned_at')
      if h[1] and (h[2] or '') == '' then
        return holder, string.sub(f, 1, 5) == 'name:' and 'database' or 'owner role'
      end
    end
  end
  return nil
end
-- forget_database(key, databases, id, fields): the index forgets the
-- fields of the location stored at key that still name id; fields, when
-- given, are that location's, read already.
local function forget_database(key, databases, id, fields)
  for _, f in ipairs(fields or stored_database_fields(key) or {}) do
    if redis.call('HGET', databases, f) == id then redis.call('HDEL', databases, f) end
  end
end
`

// checkDatabaseScript tells whether another live instance holds a
// location's database or owner role.
//
// KEYS: checkDatabaseKeys. ARGV: id, server, name, owner role. Returns
// "ok". Errors: "database_taken <holder> <owner role|database>".
var checkDatabaseScript = redis.NewScript(luaDatabaseFields + `
local holder, what = database_holder(KEYS[1], KEYS[2], database_fields(ARGV[2], ARGV[3], ARGV[4]), ARGV[1])
if holder then return redis.error_reply('database_taken ' .. holder .. ' ' .. what) end
return 'ok'
`)

// Database returns where the instance's database lives, or ErrNotFound
// when it was registered without one.
func (s *Store) Database(ctx context.Context, instanceID string) (Database, error) {
	b, err := s.rdb.Get(ctx, databaseKey(instanceID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Database{}, fmt.Errorf("database of instance %s: %w", instanceID, ErrNotFound)
	}
	if err != nil {
		return Database{}, err
	}
	var d Database
	if err := json.Unmarshal(b, &d); err != nil {
		return Database{}, fmt.Errorf("database of instance %s: %w", instanceID, err)
	}
	return d, nil
}

// indexDatabaseScript puts one live instance's database location in the
// index of live ones, for an instance registered before the index existed:
// a field no live instance holds becomes the instance's; one another live
// instance holds stays that instance's, and is returned.
//
// KEYS: indexDatabaseKeys, one field per key, in order. ARGV: instance id.
// Returns {holder, what, holder, what...}: the other live instances that
// registered the instance's owner role or database; empty when none.
var indexDatabaseScript = redis.NewScript(luaDatabaseFields + `
local dep = redis.call('HMGET', KEYS[1], 'registered_at', 'deprovisioned_at')
if not dep[1] or (dep[2] or '') ~= '' then return {} end
local fields = stored_database_fields(KEYS[2])
if not fields then return {} end
local prefix = string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[1])
local shared = {}
for _, f in ipairs(fields) do
  local holder, what = database_holder(KEYS[3], prefix, {f}, ARGV[1])
  if holder then
    shared[#shared + 1], shared[#shared + 2] = holder, what
  elseif redis.call('HGET', KEYS[3], f) ~= ARGV[1] then
    redis.call('HSET', KEYS[3], f, ARGV[1])
  end
end
return shared
`)

// indexDatabaseKeys are the KEYS of indexDatabaseScript, one field per key, in order.
type indexDatabaseKeys struct {
	instance  string // KEYS[1] -> rekey:instance:<id>
	database  string // KEYS[2] -> rekey:database:<id>
	databases string // KEYS[3] -> rekey:databases
}

func (k indexDatabaseKeys) list() []string { return []string{k.instance, k.database, k.databases} }

// DatabaseShared is two live instances registered with one database, or
// one owner role, on a server: the PostgreSQL issuer's credentials of
// either open the other's data. IndexDatabases reports them; a
// registration would now refuse the second (ErrDatabaseTaken).
type DatabaseShared struct {
	What string // "owner role" or "database"
	// Instances are the one the index holds the location for, then the other.
	Instances [2]string
}

// IndexDatabases puts every live instance's database location in the index
// of live ones (databasesKey), for instances registered before it existed
// or while a process of an earlier version ran; a field whose holder is no
// longer live is taken over. It returns the pairs of live instances that
// already share a database or an owner role, which no registration can
// undo. The clock runs it at start.
func (s *Store) IndexDatabases(ctx context.Context) ([]DatabaseShared, error) {
	if err := indexDatabaseScript.Load(ctx, s.rdb).Err(); err != nil {
		return nil, fmt.Errorf("index databases: %w", err)
	}
	var shared []DatabaseShared
	err := s.InstanceIDs(ctx, 500, func(ids []string) error {
		keys := func(id string) []string {
			return indexDatabaseKeys{instance: instanceKey(id), database: databaseKey(id), databases: databasesKey()}.list()
		}
		args := func(id string) []any { return []any{id} }
		for i, c := range s.evalEach(ctx, indexDatabaseScript, ids, keys, args) {
			res, err := c.StringSlice()
			if err != nil {
				return fmt.Errorf("index database of %s: %w", ids[i], err)
			}
			for j := 0; j+1 < len(res); j += 2 {
				shared = append(shared, DatabaseShared{What: res[j+1], Instances: [2]string{res[j], ids[i]}})
			}
		}
		return nil
	})
	return shared, err
}
