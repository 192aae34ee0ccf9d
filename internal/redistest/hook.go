package redistest

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// BeforeScriptNaming is a go-redis hook that runs Run once, just before the
// first pipeline holding a script call (EVAL, EVALSHA) whose arguments name
// ID reaches Redis: a test's way to slip another party's change in between
// a producer's check and its claims (ClaimMany pipelines them).
type BeforeScriptNaming struct {
	ID   string
	Run  func()
	done atomic.Bool
}

// DialHook implements redis.Hook.
func (h *BeforeScriptNaming) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (h *BeforeScriptNaming) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

// ProcessPipelineHook implements redis.Hook.
func (h *BeforeScriptNaming) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if n := strings.ToLower(c.Name()); (n == "evalsha" || n == "eval") && strings.Contains(c.String(), h.ID) &&
				h.done.CompareAndSwap(false, true) {
				h.Run()
				break
			}
		}
		return next(ctx, cmds)
	}
}

// OnCommand is a go-redis hook that calls Note with every command the
// client sends, alone or in a pipeline, before it reaches Redis: a test's
// way to bound what one command asks of Redis, or how many are sent.
// Note may be called from several goroutines at once.
type OnCommand struct{ Note func(redis.Cmder) }

// DialHook implements redis.Hook.
func (h OnCommand) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (h OnCommand) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.Note(cmd)
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook implements redis.Hook.
func (h OnCommand) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.Note(c)
		}
		return next(ctx, cmds)
	}
}
