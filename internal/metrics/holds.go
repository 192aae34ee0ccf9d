package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rekeyhq/rekey/internal/store"
)

var (
	descHeld = prometheus.NewDesc("rekey_revocations_held",
		"Revocations held past their grace because the issuer reports the old credential still in use.", nil, nil)
	descOldestHold = prometheus.NewDesc("rekey_revocation_oldest_hold_seconds",
		"How long the oldest held revocation has been held (0 when none is held).", nil, nil)
	descLogLines = prometheus.NewDesc("rekey_logplex_lines_total",
		"Notices written to customers' app log streams through their log_input_url, by outcome (sent, failed).",
		[]string{"outcome"}, nil)
)

// HoldSource is what the Collector reads of held revocations
// (*store.Store). A Source that is not one exports no hold metrics.
type HoldSource interface {
	HoldStats(ctx context.Context) (store.HoldSummary, error)
}

// LogLine counts one write to a customer's log stream (logplex.Counter).
func (r *Recorder) LogLine(outcome string) { r.add(logLinesField(outcome), 1) }

// collectHolds exports the held revocations and the oldest hold's age.
func (c *Collector) collectHolds(ctx context.Context, ch chan<- prometheus.Metric) {
	src, ok := c.src.(HoldSource)
	if !ok {
		return
	}
	sum, err := src.HoldStats(ctx)
	if err != nil {
		c.log.Warn().Err(err).Msg("metrics_holds_failed")
		return
	}
	oldest := 0.0
	if !sum.Oldest.IsZero() {
		oldest = max(c.now().Sub(sum.Oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, float64(sum.Held))
	ch <- prometheus.MustNewConstMetric(descOldestHold, prometheus.GaugeValue, oldest)
}
