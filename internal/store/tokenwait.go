package store

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// noteTokenRateLimitedScript counts one more 429 that Heroku's token
// endpoint answered to a refresh a run of the rotation needed, in the
// rotation's hash (field token_429), so that every worker's run of it
// waits longer than the last and the waits end (handlers/tokenwait.go). A
// rotation that is gone is not created again.
//
// KEYS: rotationOnlyKeys. ARGV: none.
// Returns the count, or 0 when the rotation does not exist.
var noteTokenRateLimitedScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HINCRBY', KEYS[1], 'token_429', 1)
`)

// NoteTokenRateLimited records that Heroku's token endpoint answered 429
// to the token refresh of a run of rotationID, and returns how many times
// it has so far for that rotation (0 when the rotation is gone). Safe for
// concurrent use.
func (s *Store) NoteTokenRateLimited(ctx context.Context, rotationID string) (int, error) {
	keys := rotationOnlyKeys{rotation: rotationKey(rotationID)}
	n, err := noteTokenRateLimitedScript.Run(ctx, s.rdb, keys.list()).Int()
	if err != nil {
		return 0, scriptError("note token rate limited", err)
	}
	return n, nil
}
