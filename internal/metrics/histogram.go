package metrics

import (
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// histogram is a Prometheus histogram aggregated fleet-wide like the
// counters: a Recorder adds each observation to its bucket's counter (not
// cumulative, so one observation is one increment), to "<field>:count" and,
// in milliseconds, to "<field>:sum_ms"; the Collector adds the buckets up at
// scrape time.
type histogram struct {
	desc  *prometheus.Desc
	field string
	// bounds are the buckets' upper bounds in seconds, ascending; +Inf is
	// implied.
	bounds []float64
}

// Bucket bounds, in seconds.
var (
	// revokeLagBounds: a revocation runs at its revoke time unless the
	// queue is backed up or Heroku's budget is spent, so seconds to minutes.
	revokeLagBounds = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600}
	// requestToHerokuBounds: a rotation waits in its queue for budget, so a
	// fleet rotation paced at REKEY_HEROKU_RATE takes minutes to hours.
	requestToHerokuBounds = []float64{1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800}
)

var (
	revokeLag = histogram{field: "revoke_lag", bounds: revokeLagBounds,
		desc: prometheus.NewDesc("rekey_revoke_lag_seconds",
			"How late revocations ran against when they were due: the revoke time, or for a credential held while in use "+
				"the hold's release (a revocation that failed and ran again later counts from the same time).", nil, nil)}
	requestToHeroku = histogram{field: "request_to_heroku", bounds: requestToHerokuBounds,
		desc: prometheus.NewDesc("rekey_request_to_heroku_seconds",
			"Time from a rotation's request to its push reaching Heroku.", nil, nil)}
	histograms = []histogram{revokeLag, requestToHeroku}
)

// bucketField is the counter of the bucket d falls in.
func (h histogram) bucketField(d time.Duration) string {
	s := d.Seconds()
	for _, b := range h.bounds {
		if s <= b {
			return h.field + ":le:" + formatBound(b)
		}
	}
	return h.field + ":le:+Inf"
}

// observe adds d to pending's counters of h.
func (h histogram) observe(pending map[string]int64, d time.Duration) {
	d = max(d, 0)
	pending[h.bucketField(d)]++
	pending[h.field+":count"]++
	pending[h.field+":sum_ms"] += d.Milliseconds()
}

// metric builds the histogram from the fleet-wide counters; with no
// observation yet it is all zero.
func (h histogram) metric(counters map[string]int64) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.bounds))
	var cum uint64
	for _, b := range h.bounds {
		cum += uint64(max(counters[h.field+":le:"+formatBound(b)], 0))
		buckets[b] = cum
	}
	count := uint64(max(counters[h.field+":count"], 0))
	sum := float64(counters[h.field+":sum_ms"]) / 1000
	return prometheus.MustNewConstHistogram(h.desc, count, sum, buckets)
}

func formatBound(b float64) string {
	if math.IsInf(b, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(b, 'g', -1, 64)
}
