package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// InstancePage is one page of the live instances, in registration order.
type InstancePage struct {
	Instances []Instance
	// More says live instances follow the page: a page after its last
	// lists them.
	More bool
	// Total counts the live instances.
	Total int64
}

// InstancesAfter returns up to limit live instances in registration order,
// starting after the live instance after ("" for the first): the page
// and the count are read at once, so that a page stays whole while
// instances are registered and deprovisioned meanwhile. ErrNotFound when
// after names no live instance (deprovisioned since, or never registered).
func (s *Store) InstancesAfter(ctx context.Context, after string, limit int64) (InstancePage, error) {
	if limit < 1 {
		return InstancePage{}, fmt.Errorf("list instances: limit %d", limit)
	}
	res, err := instancePageScript.Run(ctx, s.rdb, instancePageKeys{instances: instancesKey()}.list(), after, limit).Slice()
	if err != nil {
		return InstancePage{}, scriptError("list instances", err)
	}
	total, _ := res[0].(int64)
	ids := make([]string, 0, len(res)-1)
	for _, v := range res[1:] {
		if id, ok := v.(string); ok {
			ids = append(ids, id)
		}
	}
	page := InstancePage{Total: total, More: int64(len(ids)) > limit}
	ids = ids[:min(int64(len(ids)), limit)]
	if page.Instances, err = s.Instances(ctx, ids); err != nil {
		return InstancePage{}, err
	}
	return page, nil
}

// instancePageKeys are the KEYS of instancePageScript.
type instancePageKeys struct {
	instances string // KEYS[1] -> rekey:instances
}

func (k instancePageKeys) list() []string { return []string{k.instances} }

// instancePageScript reads a page of the live instances' index.
//
// KEYS: instancePageKeys. ARGV: the id to start after ("": the first), the
// page's length. Returns {count of live instances, then up to length + 1
// ids}. Error: "not_found" when the id is not in the index.
var instancePageScript = redis.NewScript(`
local start = 0
if ARGV[1] ~= '' then
  local rank = redis.call('ZRANK', KEYS[1], ARGV[1])
  if not rank then return redis.error_reply('not_found') end
  start = rank + 1
end
local out = {redis.call('ZCARD', KEYS[1])}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], start, start + tonumber(ARGV[2]))) do out[#out + 1] = id end
return out
`)
