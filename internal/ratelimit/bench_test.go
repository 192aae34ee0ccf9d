package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/redistest"
)

// BenchmarkWait measures what one token costs Redis when many goroutines of
// one process wait at once: "cmds/token" is the number to watch.
func BenchmarkWait(b *testing.B) {
	tests := []struct {
		name string
		p    ratelimit.Params
	}{
		{"saturated", ratelimit.Params{PerHour: perSecond(2000), Burst: 20}},
		{"unsaturated", ratelimit.Params{PerHour: perSecond(1_000_000)}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			r := redistest.New(b)
			l := newProcess(b, r, tt.p)
			ctx := context.Background()
			b.SetParallelism(16)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := l.Wait(ctx, "addon"); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(l.commands.n.Load())/float64(b.N), "cmds/token")
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tokens/s")
		})
	}
}
