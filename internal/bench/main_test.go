package bench_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/bench"
	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/sandbox"
)

// binDir holds the rekey binary, built once for the whole package run.
var (
	binDir   string
	buildBin = sync.OnceValues(func() (string, error) { return bench.Build(binDir) })
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rekey-bench-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// rekeyBinary returns the path of the built `rekey` binary.
func rekeyBinary(tb testing.TB) string {
	tb.Helper()
	bin, err := buildBin()
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// testFleet is a harness with instances provisioned and workers running.
type testFleet struct {
	*bench.Harness
	workers *bench.Workers
	samples []sandbox.Sample
}

// fleetParams shape a testFleet.
type fleetParams struct {
	workers   int
	instances int
	mix       sandbox.Mix
	env       map[string]string
	fake      []herokufake.Option
}

// startFleet provisions p.instances on a fresh sandbox and Redis database and
// starts p.workers `rekey worker` processes; cleanup stops them.
func startFleet(tb testing.TB, p fleetParams) *testFleet {
	tb.Helper()
	bin := rekeyBinary(tb)
	r := redistest.New(tb)
	h, err := bench.Start(bench.Params{RedisURL: r.URL, Fake: p.fake, Env: p.env})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(h.Close)
	ctx := context.Background()
	start := time.Now()
	samples, err := h.Provision(ctx, 1, p.instances, p.mix)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Logf("provisioned %d instances in %s", len(samples), time.Since(start).Round(time.Millisecond))
	w, err := h.StartWorkers(ctx, bin, p.workers, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if _, err := w.Stop(25 * time.Second); err != nil {
			tb.Errorf("stop workers: %v", err)
		}
	})
	return &testFleet{Harness: h, workers: w, samples: samples}
}
