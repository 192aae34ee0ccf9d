package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	redishealth "github.com/rekeyhq/rekey/internal/health"
)

// healthPingTimeout bounds the Redis check of one scrape.
const healthPingTimeout = 2 * time.Second

var (
	descRedisUp = prometheus.NewDesc("rekey_redis_up",
		"1 when Redis answered this scrape's ping, 0 when it did not (every metric read from Redis is then absent).", nil, nil)
	descRedisWritable = prometheus.NewDesc("rekey_redis_writable",
		"1 when Redis took this scrape's write, 0 when it answered but refused it (full under noeviction, read-only, "+
			"too few replicas): nothing is rotated or revoked then. Absent while Redis does not answer.", nil, nil)
	descRedisReplicated = prometheus.NewDesc("rekey_redis_replicated",
		"1 when the replicas REKEY_REDIS_WAIT_REPLICAS asks for acknowledged this scrape's write within a second (always "+
			"while it is 0), 0 when fewer did or WAIT failed: workers then mint, push and revoke nothing, retrying, while "+
			"rekey_redis_writable reads 1. Absent while Redis does not answer or refuses writes.", nil, nil)
	descUnreadable = prometheus.NewDesc("rekey_sealed_unreadable",
		"Stored sealed values that no key of REKEY_ENCRYPTION_KEYS opens, as the web process's start-up check counted them.",
		nil, nil)
	descMayEvict = prometheus.NewDesc("rekey_redis_may_evict",
		"1 when Redis's maxmemory-policy lets it evict keys to make room (anything but noeviction), 0 under noeviction: "+
			"an evicted record of rekey's may be an old credential's revocation, never made then. Read every scrape, so a "+
			"policy changed while rekey runs shows; absent while Redis does not answer or refuses INFO.", nil, nil)
	descEvictedKeys = prometheus.NewDesc("rekey_redis_evicted_keys_total",
		"Keys Redis evicted since it started (INFO stats' evicted_keys), rekey's or not: alert on "+
			"increase(rekey_redis_evicted_keys_total[1h]) > 0.", nil, nil)
	descClockOffset = prometheus.NewDesc("rekey_clock_offset_seconds",
		"How far Redis's clock is ahead of this web process's machine's (negative: behind), as last measured with TIME. "+
			"Every rekey process reads time on Redis's clock, corrected by its own offset; each logs clock_skew past 2 s.",
		nil, nil)
)

// HandlerParams build the /metrics handler.
type HandlerParams struct {
	// Collector reads rekey's state from Redis. Required.
	Collector *Collector
	// Ping asks Redis whether it answers. Required.
	Ping func(context.Context) error
	// Write asks Redis to take a write (store.Store.CheckWritable) once
	// it answers a ping; nil omits rekey_redis_writable.
	Write func(context.Context) error
	// Durable asks Redis's replicas to acknowledge rekey's writes
	// (store.Store.Durable, REKEY_REDIS_WAIT_REPLICAS) once Redis took the
	// write; nil omits rekey_redis_replicated.
	Durable func(context.Context) error
	// Unreadable returns the start-up check's count of sealed values no
	// configured key opens, and whether the check has run; nil omits the
	// metric.
	Unreadable func() (int64, bool)
	// Info returns the text of Redis's INFO memory and stats sections;
	// nil, or an error, omits rekey_redis_may_evict and
	// rekey_redis_evicted_keys_total.
	Info func(context.Context) (string, error)
	// ClockOffset returns how far Redis's clock is ahead of this
	// process's (redisclock.Clock.Offset), and whether it has been
	// measured; nil omits rekey_clock_offset_seconds.
	ClockOffset func() (time.Duration, bool)
}

// NewHandler serves the Collector's metrics with rekey_redis_up and
// rekey_build_info first. While
// Redis does not answer it serves rekey_redis_up 0 and nothing read from
// Redis, with status 200, so an alert on rekey_redis_up == 0 fires rather
// than a scrape that reads "fine".
func NewHandler(p HandlerParams) http.Handler {
	full := prometheus.NewRegistry()
	full.MustRegister(p.Collector)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), healthPingTimeout)
		up := p.Ping(ctx) == nil
		own := health{up: up, unreadable: p.Unreadable, clockOffset: p.ClockOffset}
		if up && p.Info != nil {
			if info, err := p.Info(ctx); err == nil {
				s := redishealth.ParseInfo(info)
				own.server = &s
			}
		}
		if up && p.Write != nil {
			writable := p.Write(ctx) == nil
			own.writable = &writable
		}
		cancel()
		if up && p.Durable != nil && (own.writable == nil || *own.writable) {
			// A context of its own: WAIT may take its whole second.
			ctx, cancel := context.WithTimeout(r.Context(), healthPingTimeout)
			replicated := p.Durable(ctx) == nil
			own.replicated = &replicated
			cancel()
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(own)
		var g prometheus.Gatherer = reg
		if up {
			g = prometheus.Gatherers{reg, full}
		}
		promhttp.HandlerFor(g, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	})
}

// health is the handler's own metrics, computed per scrape.
type health struct {
	up         bool
	writable   *bool               // nil: not asked
	replicated *bool               // nil: not asked
	server     *redishealth.Server // nil: not asked, or INFO refused
	unreadable func() (int64, bool)
	// clockOffset is served whether Redis answers or not: a process
	// keeps the last offset through an outage.
	clockOffset func() (time.Duration, bool)
}

// Describe implements prometheus.Collector.
func (h health) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRedisUp
	ch <- descRedisWritable
	ch <- descRedisReplicated
	ch <- descUnreadable
	ch <- descBuildInfo
	ch <- descClockOffset
	ch <- descMayEvict
	ch <- descEvictedKeys
}

// Collect implements prometheus.Collector.
func (h health) Collect(ch chan<- prometheus.Metric) {
	v := 0.0
	if h.up {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(descRedisUp, prometheus.GaugeValue, v)
	if h.writable != nil {
		ch <- prometheus.MustNewConstMetric(descRedisWritable, prometheus.GaugeValue, map[bool]float64{true: 1}[*h.writable])
	}
	if h.replicated != nil {
		ch <- prometheus.MustNewConstMetric(descRedisReplicated, prometheus.GaugeValue, flag(*h.replicated))
	}
	if s := h.server; s != nil {
		if s.MaxmemoryPolicy != "" {
			ch <- prometheus.MustNewConstMetric(descMayEvict, prometheus.GaugeValue, flag(s.MaxmemoryPolicy != redishealth.NoEviction))
		}
		if s.EvictedKeys >= 0 {
			ch <- prometheus.MustNewConstMetric(descEvictedKeys, prometheus.CounterValue, float64(s.EvictedKeys))
		}
	}
	ch <- buildInfoMetric()
	if h.clockOffset != nil {
		if d, ok := h.clockOffset(); ok {
			ch <- prometheus.MustNewConstMetric(descClockOffset, prometheus.GaugeValue, d.Seconds())
		}
	}
	if h.unreadable == nil {
		return
	}
	if n, ok := h.unreadable(); ok {
		ch <- prometheus.MustNewConstMetric(descUnreadable, prometheus.GaugeValue, float64(n))
	}
}
