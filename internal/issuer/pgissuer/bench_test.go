package pgissuer_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkRotation measures what one server sustains for the issuer's
// share of a rotation: mint, verify (a real login with SCRAM) and revoke
// of the previous role, on one instance's database. It reports rotations
// per second with 1 and 8 at once (a worker's concurrency); each
// goroutine rotates its own instance. Heroku's budget allows about 4,500
// rotations an hour, 1.25 a second, for a whole fleet (docs/benchmarks.md).
func BenchmarkRotation(b *testing.B) {
	for _, par := range []int{1, 8} {
		b.Run(fmt.Sprintf("concurrent=%d", par), func(b *testing.B) {
			f := newFixture(b)
			for i := range par {
				f.locs.m[fmt.Sprintf("bench-%d", i)] = f.loc
			}
			ctx := context.Background()
			var next atomic.Int64
			rotate := func(instance string, prev *string) {
				c, err := f.iss.Mint(ctx, instance, fmt.Sprintf("rot-%d", next.Add(1)))
				if err == nil {
					err = f.iss.Verify(ctx, instance, c.ID)
				}
				if err == nil && *prev != "" {
					err = f.iss.Revoke(ctx, instance, *prev)
				}
				if err != nil {
					b.Error(err)
				}
				*prev = c.ID
			}
			start := time.Now()
			b.ResetTimer()
			var wg sync.WaitGroup
			for g := range par {
				wg.Add(1)
				go func() {
					defer wg.Done()
					instance := fmt.Sprintf("bench-%d", g)
					var prev string
					for n := g; n < b.N; n += par {
						rotate(instance, &prev)
					}
					if prev != "" {
						_ = f.iss.Revoke(ctx, instance, prev)
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			perSec := float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(perSec, "rotations/s")
			b.Logf("%d rotations (mint+verify+revoke), %d at once: %.1f rotations/s", b.N, par, perSec)
		})
	}
}
