// Package metrics measures rekey for Prometheus.
//
// Worker dynos serve no port, so each process counts in memory (a Recorder)
// and adds its counts to fleet-wide counters in Redis every FlushInterval, in
// one round trip. The web process's Collector reads those counters, asynq's
// queues and the store at scrape time and serves them on /metrics.
// No metric carries a secret or an instance id: labels are queues,
// outcomes, endpoints, statuses and classes.
package metrics

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/ratelimit"
)

// Sink stores counters fleet-wide (*store.Store).
type Sink interface {
	AddCounters(ctx context.Context, deltas map[string]int64) error
}

// FlushInterval is how often a process adds its counts to the fleet-wide
// counters: often enough for a scrape every 15 s or more, rarely enough that
// a paced wave's flushes cost under two Redis commands a rotation
// (docs/benchmarks.md, "Real-time waves").
const FlushInterval = 15 * time.Second

// Recorder counts one process's events and flushes them to a Sink. It
// implements handlers.Observer (cmd/rekey hands it to the handlers) and
// is safe for concurrent use.
type Recorder struct {
	sink    Sink
	limiter *ratelimit.Limiter
	log     zerolog.Logger

	mu      sync.Mutex
	pending map[string]int64
	// waited is the limiter's cumulative wait already flushed, by class.
	waited map[ratelimit.Class]time.Duration
}

// NewRecorder returns a Recorder flushing to sink; lim, if not nil, has its
// time spent waiting for budget exported too.
func NewRecorder(sink Sink, lim *ratelimit.Limiter, log zerolog.Logger) *Recorder {
	return &Recorder{sink: sink, limiter: lim, log: log, pending: map[string]int64{},
		waited: map[ratelimit.Class]time.Duration{}}
}

func (r *Recorder) add(name string, d int64) {
	r.mu.Lock()
	r.pending[name] += d
	r.mu.Unlock()
}

// Rotation counts a finished run of a rotate task.
func (r *Recorder) Rotation(queue, outcome string) { r.add(rotationsField(queue, outcome), 1) }

// Revocation counts a revocation and, once revoked, how late it ran
// (rekey_revoke_lag_seconds).
func (r *Recorder) Revocation(outcome string, lag time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending[revocationsField(outcome)]++
	if outcome == revoked {
		revokeLag.observe(r.pending, lag)
	}
}

// PushLanded records how long a rotation took from its request to its
// push reaching Heroku (rekey_request_to_heroku_seconds); it implements
// handlers.PushObserver.
func (r *Recorder) PushLanded(sinceRequest time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	requestToHeroku.observe(r.pending, sinceRequest)
}

// IssuerCall counts a call to the issuer by how it ended
// (rekey_issuer_calls_total); it implements handlers.IssuerObserver. A
// call rekey cancelled is not counted: a worker stopping (a deploy, a
// dyno's daily restart) cancels the calls its tasks had in flight, which
// says nothing of the issuer, and counted failed each would fire the alert
// on failed calls. The task runs again, and its call is counted then.
func (r *Recorder) IssuerCall(op string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	outcome := issuerOK
	var unusable *issuer.UnusableCredentialError
	switch {
	case err == nil || errors.Is(err, issuer.ErrVerifyUnsupported) || errors.Is(err, issuer.ErrUsageUnsupported):
	// A revocation the issuer refuses with a 401 (rekey's signature not
	// taken: REKEY_ISSUER_SECRET changed on one side only, a clock skewed)
	// is retried until that is mended (handlers.Revoke), every revocation
	// overdue meanwhile: the issuer's trouble, not an answer taken as final.
	case op == issuer.OpRevoke && issuer.RefusesRekey(err):
		outcome = issuerFailed
	// A mint answer naming a credential rekey cannot use ends the rotation
	// (its credential discarded and revoked), whatever its 2xx status; but
	// one that broke off inside its config is asked again (the network's
	// trouble, or the issuer's), failed.
	case issuer.IsPermanent(err) || errors.As(err, &unusable) && !(unusable.ConfigUnchecked && unusable.BrokenOff):
		outcome = issuerRefused
	default:
		outcome = issuerFailed
	}
	r.add(issuerCallsField(op, outcome), 1)
}

// HerokuCall counts a call to Heroku; pass it to heroku.WithObserver.
func (r *Recorder) HerokuCall(c heroku.CallInfo) {
	r.add(herokuCallsField(c.Endpoint, c.Status), 1)
}

// Run flushes every interval until ctx is done, then once more.
func (r *Recorder) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			r.Flush(flushCtx)
			cancel()
			return
		case <-t.C:
			r.Flush(ctx)
		}
	}
}

// Flush adds what was counted since the last flush to the Sink. Counts
// that fail to reach it are kept for the next flush.
func (r *Recorder) Flush(ctx context.Context) {
	r.mu.Lock()
	batch := r.pending
	r.pending = map[string]int64{}
	r.addWaits(batch)
	r.mu.Unlock()
	if err := r.sink.AddCounters(ctx, batch); err != nil {
		r.log.Warn().Err(err).Msg("metrics_flush_failed")
		r.mu.Lock()
		for k, v := range batch {
			r.pending[k] += v
		}
		r.mu.Unlock()
	}
}

// addWaits adds the limiter's new wait time, in milliseconds, by class.
func (r *Recorder) addWaits(batch map[string]int64) {
	if r.limiter == nil {
		return
	}
	st := r.limiter.Stats()
	for class, cs := range map[ratelimit.Class]ratelimit.ClassStats{
		ratelimit.Interactive: st.Interactive, ratelimit.Background: st.Background} {
		if d := cs.Waited - r.waited[class]; d > 0 {
			batch[budgetWaitField(class)] += d.Milliseconds()
			r.waited[class] = cs.Waited
		}
	}
}
