package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rekeyhq/rekey/internal/pacing"
)

var (
	descPacedHeld = prometheus.NewDesc("rekey_pace_held_rotations",
		"Bulk rotations (fleet waves, scheduled rotations) held in rekey's paced holding set, waiting for the "+
			"feeder to release them to the bulk queue at the Heroku budget's pace; rekey_queue_tasks does not count them.",
		nil, nil)
	descPacedOldest = prometheus.NewDesc("rekey_pace_oldest_held_seconds",
		"How long the oldest rotation in rekey's paced holding set has waited for the feeder (0 when none waits).",
		nil, nil)
	descPacedSlowed = prometheus.NewDesc("rekey_pace_slowed",
		"1 while at least 10 runs of bulk rotations failed for a retry (the issuer or Heroku failing: 5xx, no answer) or "+
			"because the issuer refused to mint (its 401 to rekey's signature, a 4xx of its own) "+
			"and none rotated in the last minute, or the first runs of 20 rotations failed one after the other: the feeder "+
			"then releases held rotations one every 15 s instead of at the budget's pace, until one rotates (it stays 1 "+
			"while none rotated in the last minute, a run failed in it, and the first runs of 10 or more rotations "+
			"failed one after the other since the last that rotated). 0 otherwise.",
		nil, nil)
)

// collectPaced exports the paced holding set (WithPacedBacklog); nothing
// when it cannot be read, so that a failed read is not "no backlog".
func (c *Collector) collectPaced(ctx context.Context, ch chan<- prometheus.Metric) {
	if c.paced == nil {
		return
	}
	b, err := pacing.ReadBacklog(ctx, c.paced)
	if err != nil {
		c.log.Warn().Err(err).Msg("metrics_paced_failed")
		return
	}
	oldest := 0.0
	if !b.Oldest.IsZero() {
		oldest = max(c.now().Sub(b.Oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(descPacedHeld, prometheus.GaugeValue, float64(b.Held))
	ch <- prometheus.MustNewConstMetric(descPacedOldest, prometheus.GaugeValue, oldest)
	h, err := pacing.ReadWaveHealth(ctx, c.paced, c.now())
	if err != nil {
		c.log.Warn().Err(err).Msg("metrics_paced_failed")
		return
	}
	slowed := 0.0
	if h.Failing() {
		slowed = 1
	}
	ch <- prometheus.MustNewConstMetric(descPacedSlowed, prometheus.GaugeValue, slowed)
}
