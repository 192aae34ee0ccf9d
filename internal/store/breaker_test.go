package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

var testBreaker = store.BreakerPolicy{Threshold: 5, Fraction: 0.5, Window: time.Minute}

func (f *fixture) observe(t *testing.T, id string, status int) store.BreakerVerdict {
	t.Helper()
	v, err := f.st.ObserveBreaker(context.Background(), id, status, testBreaker)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestBreakerOpensOnDistinctDenials(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// One instance denied again and again is one customer's problem.
	for range 20 {
		if v := f.observe(t, "gone", store.DeniedForbidden); v != store.BreakerClosed {
			t.Fatalf("one instance's repeated 403 gave verdict %v", v)
		}
	}
	f.observe(t, "i-1", store.DeniedForbidden)
	f.observe(t, "i-2", store.DeniedUnexpected)
	if v := f.observe(t, "i-3", store.DeniedUnauthorized); v != store.BreakerClosed {
		t.Fatalf("4 denied instances opened a breaker of threshold 5")
	}
	f.now = f.now.Add(10 * time.Second)
	if v := f.observe(t, "i-4", store.DeniedForbidden); v != store.BreakerOpened {
		t.Fatalf("5th distinct denial: verdict %v, want opened", v)
	}
	if v := f.observe(t, "i-6", 0); v != store.BreakerOpen {
		t.Fatalf("an answer while open: verdict %v, want open", v)
	}
	b, err := f.st.BreakerState(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := store.BreakerState{OpenedAt: f.now, Window: time.Minute, Denied: 5, Answered: 5, Unauthorized: 1,
		Forbidden: 3, Unexpected: 1, FirstDeniedAt: f.now.Add(-10 * time.Second), Openings: 1}
	if b != want {
		t.Fatalf("state = %+v\nwant    %+v", b, want)
	}
}

func TestBreakerWeighsDenialsAgainstAnswers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for i := range 20 {
		f.observe(t, fmt.Sprintf("ok-%d", i), 0)
	}
	// 11 of 31 denied: over the threshold, under half the answers.
	for i := range 11 {
		if v := f.observe(t, fmt.Sprintf("no-%d", i), store.DeniedForbidden); v != store.BreakerClosed {
			t.Fatalf("denial %d of %d answers opened the breaker", i+1, 21+i)
		}
	}
	// An instance answered 200 after its 403 is denied no longer.
	f.observe(t, "no-0", 0)
	if d, a, _ := f.st.BreakerWindow(context.Background(), time.Minute); d != 10 || a != 31 {
		t.Fatalf("window: %d denied of %d answered, want 10 of 31", d, a)
	}
	opened := 0
	for i := 11; i < 30; i++ {
		if f.observe(t, fmt.Sprintf("no-%d", i), store.DeniedForbidden) == store.BreakerOpened {
			opened = i
			break
		}
	}
	// After no-k, k instances are denied of k+21 answered: half at k = 21.
	if opened != 21 {
		t.Fatalf("opened at denial no-%d, want no-21 (the first to reach half the answers)", opened)
	}
}

func TestBreakerWindowSlides(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for i := range 4 {
		f.observe(t, fmt.Sprintf("i-%d", i), store.DeniedForbidden)
	}
	f.now = f.now.Add(61 * time.Second)
	if v := f.observe(t, "i-4", store.DeniedForbidden); v != store.BreakerClosed {
		t.Fatalf("denials older than the window counted: verdict %v", v)
	}
	if d, a, _ := f.st.BreakerWindow(context.Background(), time.Minute); d != 1 || a != 1 {
		t.Fatalf("window after sliding: %d denied of %d answered, want 1 of 1", d, a)
	}
	if ttl := f.r.Client.PTTL(context.Background(), "rekey:breaker:answers").Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("answers set expires in %s, want within the window", ttl)
	}
}

func TestBreakerOpensOnceUnderConcurrentWorkers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var mu sync.Mutex
	count := map[store.BreakerVerdict]int{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 25 {
				v, err := f.st.ObserveBreaker(context.Background(), fmt.Sprintf("w%d-%d", w, i), store.DeniedForbidden, testBreaker)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				count[v]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if count[store.BreakerOpened] != 1 || count[store.BreakerClosed] != 4 || count[store.BreakerOpen] != 195 {
		t.Fatalf("verdicts = %v, want 4 closed, 1 opened, 195 open", count)
	}
}

func TestBreakerResume(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	for i := range 5 {
		f.observe(t, fmt.Sprintf("i-%d", i), store.DeniedUnexpected)
	}
	f.now = f.now.Add(time.Minute / 2)
	if was, err := f.st.ResumeBreaker(ctx, "ops"); err != nil || !was {
		t.Fatalf("ResumeBreaker = %v, %v; want it was open", was, err)
	}
	if was, err := f.st.ResumeBreaker(ctx, "ops"); err != nil || was {
		t.Fatalf("second ResumeBreaker = %v, %v; want it was closed", was, err)
	}
	b, _ := f.st.BreakerState(ctx)
	if b.Open() || b.Openings != 1 || b.ResumedBy != "ops" || !b.ResumedAt.Equal(f.now) || b.Denied != 0 || b.Unexpected != 0 {
		t.Fatalf("state after resume = %+v", b)
	}
	// The denials that opened it are forgotten: one more does not reopen it.
	if v := f.observe(t, "i-9", store.DeniedForbidden); v != store.BreakerClosed {
		t.Fatalf("first denial after resume: verdict %v", v)
	}
}

func TestBreakerRefusesBadInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.st.ObserveBreaker(ctx, "i", 404, testBreaker); err == nil {
		t.Error("a 404 was recorded as a denial")
	}
	if _, err := f.st.ObserveBreaker(ctx, "i", 0, store.BreakerPolicy{Threshold: 3, Fraction: 1.5, Window: time.Minute}); err == nil {
		t.Error("a fraction above 1 was accepted")
	}
}
