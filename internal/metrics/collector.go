package metrics

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// Source is what the Collector reads of the store.
type Source interface {
	Counters(ctx context.Context) (map[string]int64, error)
	PendingRevocations(ctx context.Context) (int64, error)
	CountDeadRevocations(ctx context.Context) (int64, error)
	OldestUnheldRevocation(ctx context.Context, t time.Time) (store.Revocation, bool, error)
	CountInstances(ctx context.Context) (int64, error)
	InFlightCount(ctx context.Context) (int64, error)
	BreakerState(ctx context.Context) (store.BreakerState, error)
	SharedSettings(ctx context.Context) ([]store.SettingsAnnouncement, error)
	EpochStarted(ctx context.Context) (time.Time, bool, error)
}

// Queues is what the Collector reads of asynq (*asynq.Inspector).
type Queues interface {
	Queues() ([]string, error)
	GetQueueInfo(queue string) (*asynq.QueueInfo, error)
}

// Collector exports rekey's state as Prometheus metrics at scrape time.
// It is safe for concurrent use.
type Collector struct {
	src    Source
	queues Queues
	paced  redis.UniversalClient // nil: no paced backlog metrics
	log    zerolog.Logger
	now    func() time.Time
}

// CollectorOption configures a Collector.
type CollectorOption func(*Collector)

// WithPacedBacklog has the Collector export the bulk rotations that wait in
// rekey's paced holding set (internal/pacing), read from rdb, the Redis of
// the queues: they are no asynq task yet, so rekey_queue_tasks does not
// count them. A nil rdb exports nothing.
func WithPacedBacklog(rdb redis.UniversalClient) CollectorOption {
	return func(c *Collector) { c.paced = rdb }
}

// WithClock has the Collector read the time from now: the process's
// reading of Redis's clock (internal/redisclock), on which the workers date
// revoke times, holds and the wave's outcomes. nil keeps time.Now.
func WithClock(now func() time.Time) CollectorOption {
	return func(c *Collector) {
		if now != nil {
			c.now = now
		}
	}
}

// NewCollector returns a Collector over src and queues.
func NewCollector(src Source, queues Queues, log zerolog.Logger, opts ...CollectorOption) *Collector {
	c := &Collector{src: src, queues: queues, log: log, now: time.Now}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Handler serves the Collector's metrics in Prometheus' text format.
func (c *Collector) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

var (
	descQueueSize = prometheus.NewDesc("rekey_queue_tasks", "Tasks in an asynq queue by state.",
		[]string{"queue", "state"}, nil)
	descQueueLatency = prometheus.NewDesc("rekey_queue_latency_seconds",
		"Age of the oldest pending task of a queue.", []string{"queue"}, nil)
	descQueuePaused = prometheus.NewDesc("rekey_queue_paused",
		"1 while asynq holds a queue paused, else 0: the bulk queue by the circuit breaker or by hand, any queue by "+
			"asynq's CLI or Inspector. A paused revoke queue revokes nothing, which shows elsewhere only once a "+
			"revocation is overdue: alert on rekey_queue_paused{queue!=\"bulk\"} == 1.", []string{"queue"}, nil)
	descRotations = prometheus.NewDesc("rekey_rotations_total",
		"Runs of rotate tasks by queue and outcome (rotated, already_done, joined, moved, skipped, refused, failed, retry, rate_limited).",
		[]string{"queue", "outcome"}, nil)
	descCalls = prometheus.NewDesc("rekey_heroku_calls_total",
		"Calls to Heroku by endpoint and HTTP status (0: no response; other: a status HTTP does not name, "+
			"from whatever answered for Heroku).", []string{"endpoint", "status"}, nil)
	descIssuerCalls = prometheus.NewDesc("rekey_issuer_calls_total",
		"Calls to the issuer by operation (mint, verify, revoke, usage) and how they ended: ok (answered as the contract "+
			"says, unsupported included), refused (an answer taken as final: the issuer's own 4xx, a mint naming a "+
			"credential without a config rekey can use) or failed (no usable answer: a 5xx, a timeout, no connection, "+
			"or a revocation answered 401; retried; a call rekey cancelled, a worker stopping, is not counted). "+
			"A mint whose credential rekey refuses once it checks it counts ok. Alert on "+
			"increase(rekey_issuer_calls_total{outcome=\"failed\"}[10m]) > 0: the issuer's trouble, where "+
			"rekey_heroku_calls_total is Heroku's.", []string{"op", "outcome"}, nil)
	descWait = prometheus.NewDesc("rekey_budget_wait_seconds_total",
		"Time rotations spent waiting for Heroku API budget, by class.", []string{"class"}, nil)
	descRevocations = prometheus.NewDesc("rekey_revocations_total",
		"Revocations of old credentials by outcome.", []string{"outcome"}, nil)
	descOverdue = prometheus.NewDesc("rekey_revoke_overdue_seconds",
		"How far past its revoke time the oldest due revocation is that is neither revoked nor held "+
			"(0 when none is); held ones show in rekey_revocation_oldest_hold_seconds.", nil, nil)
	descPending = prometheus.NewDesc("rekey_revocations_pending",
		"Old credentials waiting to be revoked (the dead-letter set not included).", nil, nil)
	descDead = prometheus.NewDesc("rekey_revocations_dead",
		"Revocations refused permanently, set aside until an operator retries them (rekey revocations dead).", nil, nil)
	descInstances = prometheus.NewDesc("rekey_instances", "Live (not deprovisioned) instances.", nil, nil)
	descInFlight  = prometheus.NewDesc("rekey_rotations_in_flight", "Rotations in flight.", nil, nil)
	descBreaker   = prometheus.NewDesc("rekey_breaker_open",
		"1 while the circuit breaker holds bulk and scheduled work (rekey breaker status), else 0.", nil, nil)
	descSettings = prometheus.NewDesc("rekey_settings_variants",
		"How many different values of one of the settings every process must share (REKEY_HEROKU_RATE, "+
			"REKEY_RATE_SCOPE, REKEY_GRACE, REKEY_PRIVATE_SPACE_GRACE, REKEY_MIN_GRACE, REKEY_MAX_GRACE, "+
			"REKEY_REDIS_WAIT_REPLICAS, the issuer: REKEY_ISSUER, with REKEY_POSTGRES_KEY under the PostgreSQL issuer; "+
			"HEROKU_API_URL) the running web, "+
			"worker and clock processes announce, the most of any: 1 when they agree, more while one runs with "+
			"others (their logs say settings_mismatch).", nil, nil)
	descDataStart = prometheus.NewDesc("rekey_redis_data_start_time_seconds",
		"When this Redis began to hold rekey's data, in Unix seconds: the first rekey process to find it without "+
			"rekey's mark writes one. A change means Redis lost rekey's data, its instances and the revocations it "+
			"owed (restarted without persistence, flushed, or REDIS_URL naming another Redis): alert on "+
			"changes(rekey_redis_data_start_time_seconds[1h]) > 0. Each process also logs redis_data_lost.", nil, nil)
	descOpenings = prometheus.NewDesc("rekey_breaker_openings_total",
		"Times the circuit breaker opened on a run of denials across instances: Heroku's 401 or 403, or answers not Heroku's (rekey breaker status names them).", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, h := range histograms {
		ch <- h.desc
	}
	for _, d := range []*prometheus.Desc{descQueueSize, descQueueLatency, descQueuePaused, descRotations, descCalls, descIssuerCalls, descWait,
		descRevocations, descOverdue, descPending, descDead, descInstances, descInFlight,
		descBreaker, descOpenings, descHeld, descOldestHold, descLogLines, descPacedHeld, descPacedOldest, descPacedSlowed,
		descSettings, descDataStart, descLastSweep, descSweepFailed, descSchedPaused, descClocks, descQuarantined,
		descWorkers} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.collectQueues(ch)
	c.collectPaced(ctx, ch)
	c.collectCounters(ctx, ch)
	c.collectState(ctx, ch)
	c.collectBreaker(ctx, ch)
	c.collectHolds(ctx, ch)
	c.collectScheduler(ctx, ch)
	c.collectWorkers(ch)
}

// collectQueues exports each of rekey's queues, at 0 while asynq does not
// know it (it never held a task), so that its series exist before its first
// task (knownCounters says why). Nothing when asynq cannot list its queues,
// and nothing of a queue whose stats fail, so that a failed read is not "no
// tasks".
func (c *Collector) collectQueues(ch chan<- prometheus.Metric) {
	// GetQueueInfo answers asynq's internal NOT_FOUND, not
	// ErrQueueNotFound, for a queue asynq does not know yet: ask first.
	known, err := c.queues.Queues()
	if err != nil {
		c.log.Warn().Err(err).Msg("metrics_queues_failed")
		return
	}
	for q := range tasks.Queues() {
		info := &asynq.QueueInfo{}
		if slices.Contains(known, q) {
			if info, err = c.queues.GetQueueInfo(q); err != nil {
				c.log.Warn().Err(err).Str("queue", q).Msg("metrics_queue_failed")
				continue
			}
		}
		for state, n := range map[string]int{"pending": info.Pending, "active": info.Active,
			"scheduled": info.Scheduled, "retry": info.Retry, "archived": info.Archived} {
			ch <- prometheus.MustNewConstMetric(descQueueSize, prometheus.GaugeValue, float64(n), q, state)
		}
		ch <- prometheus.MustNewConstMetric(descQueueLatency, prometheus.GaugeValue, info.Latency.Seconds(), q)
		ch <- prometheus.MustNewConstMetric(descQueuePaused, prometheus.GaugeValue, flag(info.Paused), q)
	}
}

func (c *Collector) collectCounters(ctx context.Context, ch chan<- prometheus.Metric) {
	counters, err := c.src.Counters(ctx)
	if err != nil {
		c.log.Warn().Err(err).Msg("metrics_counters_failed")
		return
	}
	// A field an earlier version wrote for a status HTTP does not name
	// adds to its endpoint's "other".
	calls := map[[2]string]int64{}
	for name, v := range withKnownCounters(counters) {
		parts := strings.Split(name, ":")
		switch {
		case parts[0] == "heroku_calls" && len(parts) == 3:
			calls[[2]string{parts[1], herokuStatusLabel(parts[2])}] += v
		case parts[0] == "rotations" && len(parts) == 3:
			ch <- prometheus.MustNewConstMetric(descRotations, prometheus.CounterValue, float64(v), parts[1], parts[2])
		case parts[0] == "issuer_calls" && len(parts) == 3:
			ch <- prometheus.MustNewConstMetric(descIssuerCalls, prometheus.CounterValue, float64(v), parts[1], parts[2])
		case parts[0] == "budget_wait_ms" && len(parts) == 2:
			ch <- prometheus.MustNewConstMetric(descWait, prometheus.CounterValue, float64(v)/1000, parts[1])
		case parts[0] == "revocations" && len(parts) == 2:
			ch <- prometheus.MustNewConstMetric(descRevocations, prometheus.CounterValue, float64(v), parts[1])
		case parts[0] == "logplex" && len(parts) == 2:
			ch <- prometheus.MustNewConstMetric(descLogLines, prometheus.CounterValue, float64(v), parts[1])
		}
	}
	for k, v := range calls {
		ch <- prometheus.MustNewConstMetric(descCalls, prometheus.CounterValue, float64(v), k[0], k[1])
	}
	for _, h := range histograms {
		ch <- h.metric(counters)
	}
}

func (c *Collector) collectState(ctx context.Context, ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, f func(context.Context) (int64, error)) {
		if n, err := f(ctx); err == nil {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n))
		}
	}
	gauge(descPending, c.src.PendingRevocations)
	gauge(descDead, c.src.CountDeadRevocations)
	gauge(descInstances, c.src.CountInstances)
	gauge(descInFlight, c.src.InFlightCount)
	c.collectOverdue(ctx, ch)
	if at, ok, err := c.src.EpochStarted(ctx); err == nil && ok {
		ch <- prometheus.MustNewConstMetric(descDataStart, prometheus.GaugeValue, float64(at.Unix()))
	}
	if live, err := c.src.SharedSettings(ctx); err == nil && len(live) > 0 {
		variants := 1
		for _, values := range store.SettingsDisagreements(live) {
			variants = max(variants, len(values))
		}
		ch <- prometheus.MustNewConstMetric(descSettings, prometheus.GaugeValue, float64(variants))
	}
}

// collectOverdue exports how late the oldest due revocation is, leaving out
// held ones: a hold lengthens the grace while the credential is in use
// (docs/design.md, "Holds"), and its revoke-due entry stays at its revoke time. Nothing
// when it cannot be read, so that a failed read is not "none overdue".
func (c *Collector) collectOverdue(ctx context.Context, ch chan<- prometheus.Metric) {
	now := c.now()
	due, ok, err := c.src.OldestUnheldRevocation(ctx, now)
	if err != nil {
		c.log.Warn().Err(err).Msg("metrics_overdue_failed")
		return
	}
	overdue := 0.0
	if ok {
		overdue = max(now.Sub(due.RevokeAt).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(descOverdue, prometheus.GaugeValue, overdue)
}

// collectBreaker exports the breaker's state; nothing when it cannot be
// read, so an alert on rekey_breaker_open does not read a failed scrape as
// "closed".
func (c *Collector) collectBreaker(ctx context.Context, ch chan<- prometheus.Metric) {
	b, err := c.src.BreakerState(ctx)
	if err != nil {
		c.log.Warn().Err(err).Msg("metrics_breaker_failed")
		return
	}
	open := 0.0
	if b.Open() {
		open = 1
	}
	ch <- prometheus.MustNewConstMetric(descBreaker, prometheus.GaugeValue, open)
	ch <- prometheus.MustNewConstMetric(descOpenings, prometheus.CounterValue, float64(b.Openings))
}
