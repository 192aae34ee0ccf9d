package store_test

import (
	"context"
	"maps"
	"testing"
)

func TestAddCountersAddsEveryDelta(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	if err := f.st.AddCounters(ctx, map[string]int64{}); err != nil {
		t.Fatalf("an empty flush: %v", err)
	}
	for range 2 {
		if err := f.st.AddCounters(ctx, map[string]int64{"rotations:bulk:rotated": 3, "heroku_calls:config:200": 2, "zero": 0}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := f.st.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"rotations:bulk:rotated": 6, "heroku_calls:config:200": 4}
	if !maps.Equal(got, want) {
		t.Fatalf("counters = %v, want %v", got, want)
	}
}
