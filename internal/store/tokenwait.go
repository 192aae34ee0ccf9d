package store

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// RotationWait is a kind of wait that a rotation's runs count in its hash,
// so that every worker's run of it knows how many came before and the
// waits end (handlers/tokenwait.go). Each is a field of the rotation's hash.
type RotationWait string

const (
	// WaitToken: Heroku's token endpoint answered 429 to a refresh.
	WaitToken RotationWait = "token_429"
	// WaitPlatform: Heroku's Platform API answered 429 to a push or a read.
	WaitPlatform RotationWait = "api_429"
	// WaitReadBack: the read-back of a rotation that failed after a push
	// was put off, by a 429 or by the shared budget.
	WaitReadBack RotationWait = "readback_wait"
)

// noteWaitScript counts one more wait of a kind in the rotation's hash. A
// rotation that is gone is not created again.
//
// KEYS: rotationOnlyKeys. ARGV: the wait's field (RotationWait).
// Returns the count, or 0 when the rotation does not exist.
var noteWaitScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
`)

// NoteWait records one more wait of kind by a run of rotationID, and
// returns how many the rotation has had so far (0 when it is gone). Safe
// for concurrent use.
func (s *Store) NoteWait(ctx context.Context, rotationID string, kind RotationWait) (int, error) {
	keys := rotationOnlyKeys{rotation: rotationKey(rotationID)}
	n, err := noteWaitScript.Run(ctx, s.rdb, keys.list(), string(kind)).Int()
	if err != nil {
		return 0, scriptError("note "+string(kind), err)
	}
	return n, nil
}
