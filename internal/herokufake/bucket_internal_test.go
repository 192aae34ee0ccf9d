package herokufake

import (
	"testing"
	"time"
)

func TestBucketRefillIsExact(t *testing.T) {
	t.Parallel()
	l := limits{capacity: 4500, refill: 75, per: time.Minute}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newBucket(l, now)
	for range 4500 {
		if !b.take(l, now) {
			t.Fatal("full bucket refused a token")
		}
	}
	tests := []struct {
		after time.Duration
		want  int
	}{
		{799 * time.Millisecond, 0},
		{800 * time.Millisecond, 1},
		{time.Minute, 75},
		{time.Minute + 799*time.Millisecond, 75},
		{time.Hour, 4500},
		{100 * time.Hour, 4500},
	}
	for _, tt := range tests {
		c := *b
		if got := c.remaining(l, now.Add(tt.after)); got != tt.want {
			t.Errorf("remaining after %v = %d, want %d", tt.after, got, tt.want)
		}
	}
}

func TestBucketIgnoresClockGoingBack(t *testing.T) {
	t.Parallel()
	l := limits{capacity: 2, refill: 1, per: time.Second}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newBucket(l, now)
	b.take(l, now)
	if got := b.remaining(l, now.Add(-time.Hour)); got != 1 {
		t.Errorf("remaining = %d, want 1", got)
	}
}
