package metrics

import (
	"context"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rekeyhq/rekey/internal/store"
)

var (
	descLastSweep = prometheus.NewDesc("rekey_scheduler_last_sweep_timestamp_seconds",
		"When the last scheduler sweep that did not fail ran, in Unix seconds (0: none ever did). "+
			"Stale while no clock process runs or every sweep fails.", nil, nil)
	descSweepFailed = prometheus.NewDesc("rekey_scheduler_last_sweep_failed",
		"1 when the last scheduler sweep failed part-way (rekey scheduler status says why), else 0.", nil, nil)
	descSchedPaused = prometheus.NewDesc("rekey_scheduler_paused",
		"1 while an operator has paused scheduled rotation (rekey scheduler pause), else 0.", nil, nil)
	descClocks = prometheus.NewDesc("rekey_scheduler_clocks",
		"Clock processes (rekey scheduler) that run and sweep; a clock idling with REKEY_ROTATION_PERIOD=0 is not counted.",
		nil, nil)
	descQuarantined = prometheus.NewDesc("rekey_instances_quarantined",
		"Instances set aside from scheduled rotation (failing every cycle, add-on gone, tokens that cannot be "+
			"opened, a grant Heroku refused) until an operator runs rekey scheduler unquarantine, a rotation "+
			"succeeds, the add-on is deprovisioned or, where the reason asks it, registered again with new tokens: they are rotated "+
			"no more, so their failures stop counting. Alert on > 0 (rekey scheduler status names them).", nil, nil)
	descWorkers = prometheus.NewDesc("rekey_workers",
		"Worker processes that run and take tasks, as the heartbeats of their asynq servers in Redis say "+
			"(a process runs one server a lane, and counts once).", nil, nil)
)

// ScheduleSource is what the Collector reads of the scheduler's state
// (*store.Store). A Source that is not one exports no scheduler metrics.
type ScheduleSource interface {
	LastSweep(ctx context.Context) (store.SweepRecord, error)
	SchedulePaused(ctx context.Context) (time.Time, string, error)
	LiveClocks(ctx context.Context, now time.Time, slack time.Duration) (int64, error)
	CountQuarantined(ctx context.Context) (int64, error)
}

// Servers is what the Collector reads of asynq's servers
// (*asynq.Inspector). Queues that are not one export no rekey_workers.
type Servers interface {
	Servers() ([]*asynq.ServerInfo, error)
}

// collectScheduler exports the last good sweep, whether the last failed,
// the pause, the clocks that run and the quarantined instances: one hash
// read and a few counts, each absent when it cannot be read, so that a
// failed read is not "stopped".
func (c *Collector) collectScheduler(ctx context.Context, ch chan<- prometheus.Metric) {
	src, ok := c.src.(ScheduleSource)
	if !ok {
		return
	}
	if last, err := src.LastSweep(ctx); err != nil {
		c.log.Warn().Err(err).Msg("metrics_scheduler_failed")
	} else {
		at := 0.0
		if !last.GoodAt.IsZero() {
			at = float64(last.GoodAt.UnixMilli()) / 1000
		}
		ch <- prometheus.MustNewConstMetric(descLastSweep, prometheus.GaugeValue, at)
		ch <- prometheus.MustNewConstMetric(descSweepFailed, prometheus.GaugeValue, flag(last.Failed()))
	}
	if pausedAt, _, err := src.SchedulePaused(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(descSchedPaused, prometheus.GaugeValue, flag(!pausedAt.IsZero()))
	}
	if n, err := src.LiveClocks(ctx, c.now(), store.ClockGrace); err == nil {
		ch <- prometheus.MustNewConstMetric(descClocks, prometheus.GaugeValue, float64(n))
	}
	if n, err := src.CountQuarantined(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(descQuarantined, prometheus.GaugeValue, float64(n))
	}
}

// collectWorkers exports the worker processes whose asynq servers run
// (status "active"), each process once however many lanes it serves (one
// server a lane: a host and pid): a few reads per worker process. Nothing
// when they cannot be read.
func (c *Collector) collectWorkers(ch chan<- prometheus.Metric) {
	src, ok := c.queues.(Servers)
	if !ok {
		return
	}
	servers, err := src.Servers()
	if err != nil {
		c.log.Warn().Err(err).Msg("metrics_workers_failed")
		return
	}
	type process struct {
		host string
		pid  int
	}
	running := map[process]bool{}
	for _, s := range servers {
		if s.Status == "active" {
			running[process{s.Host, s.PID}] = true
		}
	}
	ch <- prometheus.MustNewConstMetric(descWorkers, prometheus.GaugeValue, float64(len(running)))
}

func flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
