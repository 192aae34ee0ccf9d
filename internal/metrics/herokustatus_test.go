package metrics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/internal/secret"
)

// A front before Heroku (a proxy, a firewall, or one hostile) answering
// every status from 100 to 999 over real HTTP adds no series per status to
// rekey_heroku_calls_total: the statuses HTTP names keep their number,
// which dashboards read, and every other is counted as "other".
func TestHerokuCallsOddStatusesAreOther(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var next atomic.Int64
	next.Store(100)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(int(next.Add(1) - 1))
	}))
	t.Cleanup(front.Close)
	r, _, st := newStateStore(t)
	rec := metrics.NewRecorder(st, nil, zerolog.Nop())
	hc, err := heroku.NewClient(heroku.WithIDURL(front.URL), heroku.WithOAuthClientSecret(secret.New("client-secret")),
		heroku.WithObserver(rec.HerokuCall))
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	for next.Load() <= 999 {
		if _, err := hc.ExchangeGrant(ctx, secret.New("grant-code")); err == nil {
			t.Fatalf("status %d: exchange taken", next.Load()-1)
		}
		calls++
	}
	// An odd status a process counted before this version is still in
	// Redis's counters.
	if err := st.AddCounters(ctx, map[string]int64{"heroku_calls:patch_config:299": 2}); err != nil {
		t.Fatal(err)
	}
	rec.Flush(ctx)
	samples := scrape(t, metrics.NewCollector(st, asynq.NewInspectorFromRedisClient(r.Client), zerolog.Nop()).Handler())
	var total float64
	series := 0
	for s, v := range samples {
		if !strings.HasPrefix(s, "rekey_heroku_calls_total{endpoint=\"oauth_token\"") {
			continue
		}
		series++
		total += v
		status := s[strings.Index(s, "status=\"")+len("status=\"") : len(s)-2]
		if status != "other" && status != "0" && http.StatusText(atoiOr(status)) == "" {
			t.Errorf("%s: a status HTTP does not name has a series of its own", s)
		}
	}
	if int(total) != calls {
		t.Errorf("oauth_token calls counted %v, want %d", total, calls)
	}
	if series > 80 {
		t.Errorf("%d series of oauth_token's calls for %d statuses, want at most 80", series, calls)
	}
	wantSamples(t, samples, map[string]float64{
		`rekey_heroku_calls_total{endpoint="oauth_token",status="500"}`: 1,
		`rekey_heroku_calls_total{endpoint="oauth_token",status="418"}`: 1,
		// A 1xx is informational: the answer that follows it is a 200.
		`rekey_heroku_calls_total{endpoint="oauth_token",status="other"}`:  float64(800 - countNamed(200, 999)),
		`rekey_heroku_calls_total{endpoint="patch_config",status="other"}`: 2,
		`rekey_heroku_calls_total{endpoint="patch_config",status="429"}`:   0,
	})
}

func atoiOr(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func countNamed(from, to int) int {
	n := 0
	for s := from; s <= to; s++ {
		if http.StatusText(s) != "" {
			n++
		}
	}
	return n
}
