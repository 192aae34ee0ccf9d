package health

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// RedisUnreachable reports whether err is Redis not answering: a refused,
// cut or timed-out connection, or no free connection in time; or Redis
// answering that it cannot serve now (unavailableReplies: loading its data
// after a restart, a replica during a failover, a script running long),
// also when a script's call got it. Its other answers (redis.Error) and
// rekey's failures are not.
func RedisUnreachable(err error) bool {
	if err == nil {
		return false
	}
	var answered redis.Error
	if errors.As(err, &answered) {
		msg := answered.Error()
		// Before Redis 7, a write a script's redis.call was refused comes
		// back wrapped: "ERR Error running script (call to f_…): @user_script:
		// 4: -READONLY You can't write …", the old primary of a failover
		// refusing every script that writes.
		script := strings.HasPrefix(msg, "ERR Error running script ")
		return slices.ContainsFunc(unavailableReplies, func(p string) bool {
			return strings.HasPrefix(msg, p) || script && strings.Contains(msg, ": -"+p)
		})
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrClosed)
}

// unavailableReplies start the error replies with which Redis says it
// cannot serve now, and may soon: retrying later is the answer.
var unavailableReplies = []string{"LOADING ", "READONLY ", "MASTERDOWN ", "TRYAGAIN ", "CLUSTERDOWN ", "BUSY "}
