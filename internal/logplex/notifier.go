package logplex

import (
	"context"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/secret"
)

// Inputs finds an instance's log_input_url (*store.Store).
type Inputs interface {
	LogInput(ctx context.Context, instanceID string) (secret.String, error)
}

// Counter hears how each write went, for metrics; outcome is one of the
// Outcome constants.
type Counter interface {
	LogLine(outcome string)
}

// Outcomes of a write, as Counter hears them. The strings never change.
const (
	OutcomeSent   = "sent"
	OutcomeFailed = "failed"
)

// Outcomes returns every Outcome constant, for metrics to export each from
// the start.
func Outcomes() []string { return []string{OutcomeSent, OutcomeFailed} }

// Notifier writes one line to an instance's app log stream, when the
// instance registered a log_input_url. It implements handlers.CustomerLog
// and is safe for concurrent use.
type Notifier struct {
	inputs  Inputs
	client  *Client
	counter Counter
	log     zerolog.Logger
	failed  atomic.Int64
}

// NewNotifier returns a Notifier; counter may be nil.
func NewNotifier(inputs Inputs, client *Client, counter Counter, log zerolog.Logger) *Notifier {
	return &Notifier{inputs: inputs, client: client, counter: counter, log: log}
}

// Notify writes line, best effort: a failure is counted and logged with
// Send's error, which never names the URL, and never returned.
func (n *Notifier) Notify(ctx context.Context, instanceID, line string) {
	u, err := n.inputs.LogInput(ctx, instanceID)
	if err != nil || u.IsZero() {
		return
	}
	outcome := OutcomeSent
	if err := n.client.Send(ctx, u, line); err != nil {
		outcome = OutcomeFailed
		n.failed.Add(1)
		n.log.Warn().Str("instance_id", instanceID).Err(err).Msg("logplex_write_failed")
	}
	if n.counter != nil {
		n.counter.LogLine(outcome)
	}
}

// Failed counts the writes that failed since the Notifier was made.
func (n *Notifier) Failed() int64 { return n.failed.Load() }
