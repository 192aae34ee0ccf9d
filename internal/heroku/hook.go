package heroku

import (
	"context"
	"fmt"
)

// beforeSendKey is the context key of a BeforeSend hook.
type beforeSendKey struct{}

// BeforeSend is called once a config update (V3 PATCH or V1 PUT) is about
// to go out: its OAuth token was loaded or refreshed and the Limiter let it
// through, so nothing but the network stands between the call and Heroku.
// If it returns an error the request is not sent and the call returns that
// error, wrapped. It may be called twice for one call: Heroku's 401 makes
// the client refresh the token and send once more.
type BeforeSend func() error

// WithBeforeSend returns ctx carrying f, which UpdateConfig calls just
// before it sends. A rotation records its push attempt there, so a push
// that never left (no token, no budget) is not taken for one whose outcome
// is unknown (docs/design.md, I1).
func WithBeforeSend(ctx context.Context, f BeforeSend) context.Context {
	return context.WithValue(ctx, beforeSendKey{}, f)
}

// beforeSend runs ctx's hook for a config update; other endpoints do not
// change what Heroku holds and run none.
func beforeSend(ctx context.Context, endpoint string) error {
	if endpoint != EndpointPatchConfig && endpoint != EndpointV1Put {
		return nil
	}
	f, _ := ctx.Value(beforeSendKey{}).(BeforeSend)
	if f == nil {
		return nil
	}
	if err := f(); err != nil {
		return fmt.Errorf("heroku %s: before send: %w", endpoint, err)
	}
	return nil
}
