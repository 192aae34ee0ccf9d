package health

import (
	"fmt"
	"testing"
)

// replyError is an error reply of Redis's, as go-redis returns it.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

// Redis answering that it cannot serve now (loading after a restart, a
// replica during a failover, a long script) is Redis unavailable, answered
// 503 with Retry-After; its other error replies are not.
func TestRedisRepliesThatMeanTryLaterAreUnreachable(t *testing.T) {
	for reply, want := range map[string]bool{
		"LOADING Redis is loading the dataset in memory":                                   true,
		"READONLY You can't write against a read only replica.":                            true,
		"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.": true,
		"TRYAGAIN Multiple keys request during rehashing of slot":                          true,
		"BUSY Redis is busy running a script.":                                             true,
		"WRONGTYPE Operation against a key holding the wrong kind of value":                false,
		"ERR unknown command": false,
	} {
		err := fmt.Errorf("claim: %w", replyError(reply))
		if got := RedisUnreachable(err); got != want {
			t.Errorf("%q: unreachable %v, want %v", reply, got, want)
		}
	}
}
