package breaker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/breaker"
	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/testbuf"
	"github.com/rekeyhq/rekey/tasks"
)

// The breaker is what the workers give handlers as their Breaker.
var _ handlers.Breaker = (*breaker.Breaker)(nil)

// rig is a breaker on a real Redis, with the bulk and default queues
// holding a task each, as during a wave.
type rig struct {
	st   *store.Store
	insp *asynq.Inspector
	log  *lockedBuffer
	b    *breaker.Breaker
}

var policy = store.BreakerPolicy{Threshold: 10, Fraction: 0.5, Window: 5 * time.Minute}

func newRig(t *testing.T, p store.BreakerPolicy) *rig {
	t.Helper()
	r := redistest.New(t)
	sealer, err := seal.New(bytes.Repeat([]byte{5}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	g := &rig{st: store.New(r.Client, sealer), insp: asynq.NewInspectorFromRedisClient(r.Client), log: &lockedBuffer{}}
	q := asynq.NewClientFromRedisClient(r.Client)
	for _, queue := range []string{tasks.QueueBulk, tasks.QueueDefault} {
		task, _ := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "i-" + queue, RotationID: "r-" + queue}, asynq.Queue(queue))
		if _, err := q.Enqueue(task); err != nil {
			t.Fatal(err)
		}
	}
	g.b, err = breaker.New(breaker.Params{Store: g.st, Queues: g.insp, Logger: zerolog.New(g.log), Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func denied(status int) error {
	return fmt.Errorf("push: %w", &heroku.APIError{Status: status, ID: "forbidden", Endpoint: heroku.EndpointPatchConfig})
}

func (g *rig) paused(t *testing.T, queue string) bool {
	t.Helper()
	info, err := g.insp.GetQueueInfo(queue)
	if err != nil {
		t.Fatal(err)
	}
	return info.Paused
}

func TestAccountWideDenialsPauseTheBulkQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t, policy)
	for i := range 5 {
		g.b.Observe(ctx, fmt.Sprintf("ok-%d", i), nil)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 5 {
				g.b.Observe(ctx, fmt.Sprintf("i-%d-%d", w, i), denied(403))
			}
		})
	}
	wg.Wait()
	if !g.paused(t, tasks.QueueBulk) || g.paused(t, tasks.QueueDefault) {
		t.Fatalf("bulk paused %v, default paused %v; want only bulk", g.paused(t, tasks.QueueBulk), g.paused(t, tasks.QueueDefault))
	}
	if n := strings.Count(g.log.String(), `"breaker_opened"`); n != 1 {
		t.Fatalf("%d opening lines, want 1:\n%s", n, g.log.String())
	}
	s, err := g.b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Opened at the 10th denial, which made 10 of 15 answered instances.
	want := "10 of 15 distinct instances answered 403 forbidden within "
	if !s.Open || !s.BulkPaused || s.Openings != 1 || !strings.HasPrefix(s.Reason, want) {
		t.Fatalf("status = %+v, want open with reason %q", s, want)
	}
	if !strings.Contains(g.log.String(), want) {
		t.Fatalf("the opening line does not say why:\n%s", g.log.String())
	}
}

// Pushes answered 2xx without the config they set (heroku.ErrUnexpectedAnswer:
// a HEROKU_API_URL naming another host answers every instance alike) count
// as denials: a run of them pauses the wave rather than failing it one
// instance at a time, and the reason says what answered.
func TestUnexpectedAnswersPauseTheBulkQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t, policy)
	unexpected := fmt.Errorf("push: heroku patch_config: a 2xx whose body is not a config: %w", heroku.ErrUnexpectedAnswer)
	for i := range 9 {
		g.b.Observe(ctx, fmt.Sprintf("i-%d", i), unexpected)
	}
	if g.paused(t, tasks.QueueBulk) {
		t.Fatal("bulk paused below the threshold")
	}
	g.b.Observe(ctx, "i-401", denied(401))
	s, err := g.b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := "10 of 10 distinct instances answered 401 unauthorized (1) or in ways Heroku never does (2xx without a config, " +
		"redirects, 4xx without Heroku's error id: is HEROKU_API_URL or HEROKU_ID_URL Heroku's?) (9) within "
	if !s.Open || !g.paused(t, tasks.QueueBulk) || !strings.HasPrefix(s.Reason, want) {
		t.Fatalf("status = %+v, want open with reason %q", s, want)
	}
	if !strings.Contains(g.log.String(), `"unexpected":9`) {
		t.Fatalf("the opening line does not count the unexpected answers:\n%s", g.log.String())
	}
}

// A token refresh refused without naming the add-on's grant
// (heroku.ErrTokenDenied: a client secret Heroku no longer takes answers
// 400 as well as 401) counts as a denial, with the 401s: across the fleet
// it pauses the wave. A refresh refused invalid_grant is one customer's
// revoked authorization: an answer, never a denial.
func TestRefusedTokenRefreshesPauseTheBulkQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t, policy)
	refresh := func(id string) error {
		return fmt.Errorf("push: %w: %w", heroku.ErrTokenDenied, &heroku.APIError{Status: 400, ID: id, Endpoint: heroku.EndpointOAuthToken})
	}
	for i := range 20 {
		g.b.Observe(ctx, fmt.Sprintf("revoked-%d", i), fmt.Errorf("push: %w: %w", heroku.ErrTokenRefused,
			&heroku.APIError{Status: 400, ID: "invalid_grant", Endpoint: heroku.EndpointOAuthToken}))
	}
	if s, _ := g.b.Status(ctx); s.Open || s.Window.Denied != 0 || s.Window.Answered != 20 {
		t.Fatalf("status = %+v, want closed with 20 answers and no denial", s)
	}
	for i := range 30 {
		g.b.Observe(ctx, fmt.Sprintf("i-%d", i), refresh("bad_request"))
	}
	s, err := g.b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Open || !g.paused(t, tasks.QueueBulk) || !strings.HasPrefix(s.Reason, "20 of 40 distinct instances answered 401 unauthorized within ") {
		t.Fatalf("status = %+v, want open on 20 refused refreshes of 40 answers", s)
	}
}

func TestOneCustomersDenialsNeverOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t, policy)
	for range 50 {
		g.b.Observe(ctx, "one-customer", denied(403))
	}
	for i := range 3 {
		g.b.Observe(ctx, fmt.Sprintf("other-%d", i), denied(401))
	}
	if s, _ := g.b.Status(ctx); s.Open || s.BulkPaused || s.Window.Denied != 4 {
		t.Fatalf("status = %+v, want closed with 4 instances denied", s)
	}
}

func TestAnswersThatSayNothingOfTheAccountAreNotCounted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t, policy)
	for i, err := range []error{
		&heroku.APIError{Status: 500}, &heroku.APIError{Status: 503}, &heroku.RateLimitError{Remaining: 0},
		&heroku.TransportError{Endpoint: heroku.EndpointPatchConfig, Err: errors.New("connection reset")},
		context.DeadlineExceeded,
	} {
		g.b.Observe(ctx, fmt.Sprintf("i-%d", i), err)
	}
	g.b.Observe(ctx, "gone", &heroku.APIError{Status: 404, ID: "not_found"})
	// The legacy vendor API documents no error body: its 404 without an
	// id is a stale V1 app's, an answer like any other.
	g.b.Observe(ctx, "gone-v1", &heroku.APIError{Status: 404, Endpoint: heroku.EndpointV1Put})
	if s, _ := g.b.Status(ctx); s.Window.Answered != 2 || s.Window.Denied != 0 {
		t.Fatalf("window = %+v, want only the 404s counted, as answers", s.Window)
	}
}

func TestResumeClosesAndUnpauses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t, store.BreakerPolicy{Threshold: 2, Fraction: 1, Window: time.Minute})
	g.b.Observe(ctx, "a", denied(401))
	g.b.Observe(ctx, "b", denied(401))
	if s, _ := g.b.Status(ctx); !s.Open || !strings.HasPrefix(s.Reason, "2 of 2 distinct instances answered 401 unauthorized within ") {
		t.Fatalf("status = %+v, want open on two 401s", s)
	}
	was, err := g.b.Resume(ctx, "ops")
	if err != nil || !was {
		t.Fatalf("Resume = %v, %v", was, err)
	}
	if g.paused(t, tasks.QueueBulk) {
		t.Fatal("bulk still paused after resume")
	}
	// A resume repeats safely.
	if was, err := g.b.Resume(ctx, "ops"); err != nil || was {
		t.Fatalf("second Resume = %v, %v; want closed already", was, err)
	}
	s, _ := g.b.Status(ctx)
	if s.Open || s.Openings != 1 || s.ResumedBy != "ops" || s.Window.Denied != 0 {
		t.Fatalf("status after resume = %+v", s)
	}
}

func TestThresholdZeroObservesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t, store.BreakerPolicy{})
	for i := range 20 {
		g.b.Observe(ctx, fmt.Sprintf("i-%d", i), denied(403))
	}
	if s, _ := g.b.Status(ctx); s.Open || s.Window.Answered != 0 {
		t.Fatalf("status = %+v, want nothing recorded", s)
	}
}

func TestNewRefusesAPolicyOneInstanceCouldTrip(t *testing.T) {
	t.Parallel()
	for _, p := range []store.BreakerPolicy{
		{Threshold: 1, Fraction: 0.5, Window: time.Minute},
		{Threshold: -1},
		{Threshold: 5, Fraction: 0, Window: time.Minute},
		{Threshold: 5, Fraction: 0.5, Window: time.Millisecond},
	} {
		if _, err := breaker.New(breaker.Params{Store: &store.Store{}, Queues: &asynq.Inspector{}, Policy: p}); err == nil {
			t.Errorf("New accepted %+v", p)
		}
	}
}

func TestReasonSplitsStatuses(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := store.BreakerState{OpenedAt: at, FirstDeniedAt: at.Add(-42 * time.Second), Denied: 25, Answered: 30,
		Unauthorized: 5, Forbidden: 20}
	want := "OPEN since 2026-03-01T12:00:00Z, reason: 25 of 30 distinct instances answered 401 unauthorized (5) " +
		"or 403 forbidden (20) within 42s; resume with `rekey breaker resume`"
	if got := breaker.Describe(st); got != want {
		t.Fatalf("Describe = %q\nwant       %q", got, want)
	}
	st = store.BreakerState{OpenedAt: at, FirstDeniedAt: at.Add(-42 * time.Second), Denied: 12, Answered: 12, Unexpected: 12}
	want = "OPEN since 2026-03-01T12:00:00Z, reason: 12 of 12 distinct instances answered in ways Heroku never does " +
		"(2xx without a config, redirects, 4xx without Heroku's error id: is HEROKU_API_URL or HEROKU_ID_URL Heroku's?) " +
		"within 42s; resume with `rekey breaker resume`"
	if got := breaker.Describe(st); got != want {
		t.Fatalf("Describe = %q\nwant       %q", got, want)
	}
	if got := breaker.Describe(store.BreakerState{}); got != "closed" {
		t.Fatalf("Describe(closed) = %q", got)
	}
}

// lockedBuffer is a log sink the test's goroutines share.
type lockedBuffer = testbuf.Buffer

// A HEROKU_API_URL whose host redirects every call (an http:// URL, a
// parked domain) answers no instance as Heroku would: its 3xx count as
// answers that are not Heroku's, and a run of them pauses the wave, rather
// than dilute the denials as ordinary answers. So does a HEROKU_ID_URL's:
// a token refresh redirected (heroku.ErrTokenDenied) is not Heroku's
// answer either, rather than a client secret refused.
func TestRedirectsPauseTheBulkQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t, policy)
	for i := range 10 {
		g.b.Observe(ctx, fmt.Sprintf("i-%d", i), &heroku.APIError{Status: 301 + i%2, Endpoint: heroku.EndpointPatchConfig})
	}
	s, err := g.b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Open || !g.paused(t, tasks.QueueBulk) || s.Window.Denied != 10 {
		t.Fatalf("status = %+v, want open with 10 instances denied", s)
	}
	g = newRig(t, policy)
	for i := range 10 {
		g.b.Observe(ctx, fmt.Sprintf("i-%d", i), fmt.Errorf("push: %w: %w", heroku.ErrTokenDenied,
			&heroku.APIError{Status: 302, Endpoint: heroku.EndpointOAuthToken}))
	}
	if s, _ := g.b.Status(ctx); !s.Open || s.Window.Denied != 10 || strings.Contains(s.Reason, "401") {
		t.Fatalf("status = %+v, want open with 10 instances denied, none of them a 401", s)
	}
}
