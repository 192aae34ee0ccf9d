package ratelimit

import (
	"context"
	"sync"
)

// prepaid is a token taken from the budget before the call that spends it
// was made: internal/pacing's feeder takes one for each bulk rotation it
// releases (docs/design.md, "Pacing a wave").
type prepaid struct {
	once  sync.Once
	take  func() bool
	taken bool
}

type prepaidKey struct{}

// WithPrepaid returns a context whose first Wait asks take whether a token
// was already paid for this call; when take reports true, that Wait returns
// at once without asking the budget. take runs at most once per context, so
// a second call in the same context (a retry inside the Heroku client)
// waits for a token of its own.
func WithPrepaid(ctx context.Context, take func() bool) context.Context {
	return context.WithValue(ctx, prepaidKey{}, &prepaid{take: take})
}

// usePrepaid reports whether ctx carries a prepaid token not yet used, and
// uses it.
func usePrepaid(ctx context.Context) bool {
	p, ok := ctx.Value(prepaidKey{}).(*prepaid)
	if !ok {
		return false
	}
	used := false
	p.once.Do(func() { p.taken, used = p.take(), true })
	return used && p.taken
}
