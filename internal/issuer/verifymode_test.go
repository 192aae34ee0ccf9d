package issuer_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// verifyServer answers every verify request with its status, which a test
// changes between requests; a negative one hangs up without an answer.
type verifyServer struct {
	status atomic.Int64
	url    string
}

func newVerifyServer(t *testing.T, status int) *verifyServer {
	t.Helper()
	s := &verifyServer{}
	s.status.Store(int64(status))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		st := int(s.status.Load())
		if st < 0 {
			panic(http.ErrAbortHandler)
		}
		w.WriteHeader(st)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// memory is a VerifyMemory in process that counts its calls, as a store
// counts Redis commands.
type memory struct {
	mu       sync.Mutex
	at       time.Time
	ttl      time.Duration
	reads    int
	writes   int
	failRead error
	failSave error
}

var _ issuer.VerifyMemory = (*memory)(nil)

func (m *memory) IssuerVerifiedAt(context.Context) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	return m.at, m.failRead
}

func (m *memory) RecordIssuerVerified(_ context.Context, at time.Time, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
	if m.failSave != nil {
		return m.failSave
	}
	m.at, m.ttl = at, ttl
	return nil
}

func (m *memory) counts() (reads, writes int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reads, m.writes
}

// clock is a settable clock for one issuer ("process").
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock    { c := &clock{}; c.set(t); return c }
func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *clock) opt() issuer.Option  { return issuer.WithClock(c.now) }

func verifyOnce(h *issuer.HTTP) error { return h.Verify(context.Background(), "inst-1", "cred_1") }

func newVerifier(t *testing.T, s *verifyServer, opts ...issuer.Option) *issuer.HTTP {
	t.Helper()
	// Asks once, unless opts say otherwise (TestVerifyAsksAgainBeforeA404IsFinal).
	h, err := issuer.NewHTTP(s.url, key, append([]issuer.Option{issuer.WithVerifyRechecks()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// How each mode reads a 404, by what the issuer answered verify before:
// nothing, a 2xx or a does-not-work answer in this process, or an answer
// another process remembered, recently or longer ago than VerifyMemoryTTL.
func TestVerifyModesRead404(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	const unsupported, unknown = "unsupported", "unknown credential"
	tests := []struct {
		name string
		mode issuer.VerifyMode
		// before is the status answered in this process before the 404
		// (0: no request, -1: no answer); remembered is what the memory
		// holds (zero: nothing).
		before     int
		remembered time.Time
		want       string
		wantLast   time.Time
	}{
		{"auto, never answered", issuer.VerifyAuto, 0, time.Time{}, unsupported, time.Time{}},
		{"auto, 2xx here", issuer.VerifyAuto, http.StatusNoContent, time.Time{}, unknown, start},
		{"auto, 409 here", issuer.VerifyAuto, http.StatusConflict, time.Time{}, unknown, start},
		{"auto, 410 here", issuer.VerifyAuto, http.StatusGone, time.Time{}, unknown, start},
		{"auto, 422 here", issuer.VerifyAuto, http.StatusUnprocessableEntity, time.Time{}, unknown, start},
		{"auto, answered elsewhere", issuer.VerifyAuto, 0, start.Add(-29 * 24 * time.Hour), unknown, start.Add(-29 * 24 * time.Hour)},
		{"auto, answered elsewhere a year ago", issuer.VerifyAuto, 0, start.Add(-issuer.VerifyMemoryTTL), unsupported, time.Time{}},
		// Answers a proxy or a router may send are no answer of the issuer's.
		{"auto, 404 before", issuer.VerifyAuto, http.StatusNotFound, time.Time{}, unsupported, time.Time{}},
		{"auto, 500 before", issuer.VerifyAuto, http.StatusInternalServerError, time.Time{}, unsupported, time.Time{}},
		{"auto, 503 before", issuer.VerifyAuto, http.StatusServiceUnavailable, time.Time{}, unsupported, time.Time{}},
		{"auto, 302 before", issuer.VerifyAuto, http.StatusFound, time.Time{}, unsupported, time.Time{}},
		{"auto, 403 before", issuer.VerifyAuto, http.StatusForbidden, time.Time{}, unsupported, time.Time{}},
		{"auto, no answer before", issuer.VerifyAuto, -1, time.Time{}, unsupported, time.Time{}},
		{"required, never answered", issuer.VerifyRequired, 0, time.Time{}, unknown, time.Time{}},
		{"optional, 2xx here", issuer.VerifyOptional, http.StatusOK, start, unsupported, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newVerifyServer(t, tt.before)
			mem := &memory{at: tt.remembered}
			h := newVerifier(t, s, newClock(start).opt(), issuer.WithVerify(tt.mode, mem))
			if tt.before != 0 {
				_ = verifyOnce(h)
			}
			s.status.Store(http.StatusNotFound)
			err := verifyOnce(h)
			var uc *issuer.UnknownCredentialError
			switch tt.want {
			case unsupported:
				if !errors.Is(err, issuer.ErrVerifyUnsupported) {
					t.Fatalf("404 = %v, want ErrVerifyUnsupported", err)
				}
			case unknown:
				if !errors.As(err, &uc) || !issuer.IsPermanent(err) || issuer.IsTransient(err) ||
					errors.Is(err, issuer.ErrVerifyUnsupported) {
					t.Fatalf("404 = %v, want a permanent UnknownCredentialError", err)
				}
				if uc.Mode != tt.mode || !uc.LastVerified.Equal(tt.wantLast) {
					t.Errorf("404 = %+v, want mode %s, last verified %s", uc, tt.mode, tt.wantLast)
				}
			}
		})
	}
}

// The error says what the 404 was taken for and how to have it read as
// "unsupported", with the last answer's time under auto.
func TestUnknownCredentialErrorSays(t *testing.T) {
	t.Parallel()
	last := time.Date(2026, 4, 30, 8, 15, 0, 0, time.UTC)
	auto := (&issuer.UnknownCredentialError{Mode: issuer.VerifyAuto, LastVerified: last}).Error()
	for _, want := range []string{"404", "verified credentials before", "2026-04-30T08:15:00Z",
		"does not know", "REKEY_ISSUER_VERIFY=optional", "dropped verify"} {
		if !strings.Contains(auto, want) {
			t.Errorf("auto's error %q does not say %q", auto, want)
		}
	}
	required := (&issuer.UnknownCredentialError{Mode: issuer.VerifyRequired}).Error()
	for _, want := range []string{"404", "REKEY_ISSUER_VERIFY=required", "does not know", "REKEY_ISSUER_VERIFY=optional"} {
		if !strings.Contains(required, want) {
			t.Errorf("required's error %q does not say %q", required, want)
		}
	}
}

// Answers of the issuer's own are written to the memory at most once an
// hour by one process, each write asking for VerifyMemoryTTL; a 404 reads
// the memory only while the process has seen no answer within it, and
// keeps what it read.
func TestVerifyMemoryWritesHourlyAndReadsOnlyWhenNeeded(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	s := newVerifyServer(t, http.StatusNotFound)
	mem := &memory{}
	c := newClock(start)
	h := newVerifier(t, s, c.opt(), issuer.WithVerify(issuer.VerifyAuto, mem))
	check := func(step string, wantReads, wantWrites int) {
		t.Helper()
		if r, w := mem.counts(); r != wantReads || w != wantWrites {
			t.Fatalf("%s: %d reads and %d writes of the memory, want %d and %d", step, r, w, wantReads, wantWrites)
		}
	}
	// An issuer without verify: each 404 asks the memory, which knows none.
	for range 3 {
		if err := verifyOnce(h); !errors.Is(err, issuer.ErrVerifyUnsupported) {
			t.Fatalf("404 before any answer = %v", err)
		}
	}
	check("three 404s", 3, 0)

	s.status.Store(http.StatusOK)
	for range 5 {
		if err := verifyOnce(h); err != nil {
			t.Fatal(err)
		}
		c.add(10 * time.Minute)
	}
	check("five 2xx within the hour", 3, 1)
	if !mem.at.Equal(start) || mem.ttl != 365*24*time.Hour {
		t.Errorf("memory holds %s for %s, want %s for a year", mem.at, mem.ttl, start)
	}
	c.set(start.Add(time.Hour))
	s.status.Store(http.StatusGone)
	_ = verifyOnce(h)
	check("a 410 an hour after the first write", 3, 2)
	c.add(59 * time.Minute)
	s.status.Store(http.StatusUnprocessableEntity)
	_ = verifyOnce(h)
	check("a 422 59 minutes later", 3, 2)

	s.status.Store(http.StatusNotFound)
	for range 3 {
		if err := verifyOnce(h); !issuer.IsPermanent(err) {
			t.Fatalf("404 after answers = %v, want permanent", err)
		}
	}
	check("404s after this process saw answers", 3, 2)

	// Another process, which saw no answer itself, reads the memory once
	// and keeps what it read.
	other := newVerifier(t, s, c.opt(), issuer.WithVerify(issuer.VerifyAuto, mem))
	for range 3 {
		if err := verifyOnce(other); !issuer.IsPermanent(err) {
			t.Fatalf("404 in another process = %v, want permanent", err)
		}
	}
	check("404s in a process that saw no answer", 4, 2)

	// VerifyMemoryTTL after the last answer it saw, a process asks the memory
	// again; forgotten there too, a 404 means unsupported once more.
	c.set(start.Add(time.Hour + 59*time.Minute + issuer.VerifyMemoryTTL))
	mem.mu.Lock()
	mem.at = time.Time{}
	mem.mu.Unlock()
	if err := verifyOnce(h); !errors.Is(err, issuer.ErrVerifyUnsupported) {
		t.Errorf("404 a year after the last answer = %v, want ErrVerifyUnsupported", err)
	}
	check("a 404 a year on", 5, 2)
}

// A memory that cannot be read makes a 404 a transient error: rekey can
// tell neither way, and retries. One that cannot be written fails no
// verify, and is written at the next answer.
func TestVerifyMemoryFailures(t *testing.T) {
	t.Parallel()
	s := newVerifyServer(t, http.StatusNotFound)
	mem := &memory{failRead: errors.New("redis: connection refused"), failSave: errors.New("redis: connection refused")}
	h := newVerifier(t, s, issuer.WithVerify(issuer.VerifyAuto, mem))
	err := verifyOnce(h)
	if err == nil || errors.Is(err, issuer.ErrVerifyUnsupported) || issuer.IsPermanent(err) || !issuer.IsTransient(err) {
		t.Errorf("404 with an unreadable memory = %v, want a transient error", err)
	}
	s.status.Store(http.StatusOK)
	for range 2 {
		if err := verifyOnce(h); err != nil {
			t.Errorf("2xx with an unwritable memory = %v, want nil", err)
		}
	}
	if _, w := mem.counts(); w != 2 {
		t.Errorf("%d writes of an unwritable memory, want one at each answer", w)
	}
}

func TestWithVerifyChecksInput(t *testing.T) {
	t.Parallel()
	for _, opt := range []issuer.Option{issuer.WithVerify("sometimes", &memory{}), issuer.WithVerify(issuer.VerifyAuto, nil)} {
		if _, err := issuer.NewHTTP("https://issuer.example", key, opt); err == nil {
			t.Error("NewHTTP accepted a bad verify mode or auto without a memory")
		}
	}
	for _, mode := range []issuer.VerifyMode{issuer.VerifyRequired, issuer.VerifyOptional} {
		if _, err := issuer.NewHTTP("https://issuer.example", key, issuer.WithVerify(mode, nil)); err != nil {
			t.Errorf("NewHTTP with %s and no memory: %v", mode, err)
		}
	}
}

// Verify answers that arrive at once, from a worker's many slots, write
// the memory once.
func TestVerifyAnswersAtOnceWriteOnce(t *testing.T) {
	t.Parallel()
	s := newVerifyServer(t, http.StatusOK)
	mem := &memory{}
	h := newVerifier(t, s, newClock(time.Now()).opt(), issuer.WithVerify(issuer.VerifyAuto, mem))
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := verifyOnce(h); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, w := mem.counts(); w != 1 {
		t.Errorf("20 answers at once wrote the memory %d times, want once", w)
	}
}

// A 404 that comes as a page (HTML, a framework's default not-found
// answer) never reached the issuer's handler: where a 404 would mean an
// unknown credential (required, or auto once the issuer answered verify),
// it is retried as not_found_page rather than failing the rotation; where
// it means unsupported (auto before any answer), it still does.
func TestVerify404PageIsRetriedWhereA404FailsTheRotation(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		mode issuer.VerifyMode
		mem  time.Time
		want string // "retried" or "unsupported"
	}{
		{"required", issuer.VerifyRequired, time.Time{}, "retried"},
		{"auto, answered before", issuer.VerifyAuto, now.Add(-time.Hour), "retried"},
		{"auto, never answered", issuer.VerifyAuto, time.Time{}, "unsupported"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, page := range []*scripted{
				{status: 404, body: "<html><body>No such app</body></html>", header: "text/html; charset=utf-8"},
				{status: 404, body: "404 page not found\n", header: "text/plain; charset=utf-8"},
			} {
				h := scriptedIssuer(t, page, issuer.WithVerify(tt.mode, &memory{at: tt.mem}))
				err := h.Verify(context.Background(), "inst-1", "cred-1")
				var ie *issuer.Error
				switch tt.want {
				case "retried":
					if !errors.As(err, &ie) || ie.Code != issuer.CodeNotFoundPage || !issuer.IsTransient(err) {
						t.Errorf("%q: Verify = %v, want a transient not_found_page", page.body, err)
					}
				default:
					if !errors.Is(err, issuer.ErrVerifyUnsupported) {
						t.Errorf("%q: Verify = %v, want ErrVerifyUnsupported", page.body, err)
					}
				}
			}
		})
	}
}

// replicas answers verify requests in turn with its statuses, the last one
// from then on, as an issuer whose replicas catch up with the one that
// minted; a status of 1000 or more is that status as an HTML page.
type replicas struct {
	mu       sync.Mutex
	statuses []int
	asked    int
}

func (r *replicas) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	st := r.statuses[min(r.asked, len(r.statuses)-1)]
	r.asked++
	r.mu.Unlock()
	if st >= 1000 {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(st - 1000)
		_, _ = w.Write([]byte("<html><body>No such app</body></html>"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(st)
	if st >= 200 && st <= 299 {
		_, _ = w.Write([]byte(`{}`)) // a 2xx naming an error is error_answer
		return
	}
	_, _ = w.Write([]byte(`{"error":"credential_not_found"}`))
}

func (r *replicas) requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.asked
}

// A 404 that says the issuer does not know the credential it just minted
// is asked again after each recheck wait before it fails the rotation: an
// issuer answering from a replica that has not yet seen the mint knows the
// credential a moment later. Only such a 404 is asked again: not one read
// as "unsupported", not a page, not any other answer.
func TestVerifyAsksAgainBeforeA404IsFinal(t *testing.T) {
	t.Parallel()
	const page404 = 1000 + http.StatusNotFound
	answered := now.Add(-time.Hour) // the issuer verified an hour ago
	waits := issuer.WithVerifyRechecks(time.Millisecond, 5*time.Millisecond)
	for _, tt := range []struct {
		name     string
		mode     issuer.VerifyMode
		mem      time.Time
		statuses []int
		want     string // "ok", "unknown", "permanent", "unsupported", "transient", "not_found_page", "page_answer"
		requests int
	}{
		{"auto, a replica catches up", issuer.VerifyAuto, answered, []int{404, 404, 204}, "ok", 3},
		{"auto, lost", issuer.VerifyAuto, answered, []int{404}, "unknown", 3},
		{"auto, it does not work once found", issuer.VerifyAuto, answered, []int{404, 409}, "permanent", 2},
		{"auto, then down", issuer.VerifyAuto, answered, []int{404, 503}, "transient", 2},
		{"required, a replica catches up", issuer.VerifyRequired, time.Time{}, []int{404, 200}, "ok", 2},
		{"required, lost", issuer.VerifyRequired, time.Time{}, []int{404}, "unknown", 3},
		{"auto, never verified", issuer.VerifyAuto, time.Time{}, []int{404, 204}, "unsupported", 1},
		{"optional", issuer.VerifyOptional, answered, []int{404, 204}, "unsupported", 1},
		{"required, a page", issuer.VerifyRequired, time.Time{}, []int{page404, 204}, "not_found_page", 1},
		// A catch-all page answering 200 after the issuer's 404 is no
		// word that the credential works.
		{"auto, then a 2xx page", issuer.VerifyAuto, answered, []int{404, 1200}, "page_answer", 2},
		// Nor is one answering first, once the issuer answers verify.
		{"auto, a 2xx page", issuer.VerifyAuto, answered, []int{1200, 204}, "page_answer", 1},
		{"required, a 2xx page", issuer.VerifyRequired, time.Time{}, []int{1200, 204}, "page_answer", 1},
		{"auto, never verified, a 2xx page", issuer.VerifyAuto, time.Time{}, []int{1200, 204}, "ok", 1},
		{"optional, a 2xx page", issuer.VerifyOptional, answered, []int{1200, 204}, "ok", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &replicas{statuses: tt.statuses}
			srv := httptest.NewServer(r)
			t.Cleanup(srv.Close)
			h, err := issuer.NewHTTP(srv.URL, key, issuer.WithClock(func() time.Time { return now }),
				issuer.WithVerify(tt.mode, &memory{at: tt.mem}), waits)
			if err != nil {
				t.Fatal(err)
			}
			err = verifyOnce(h)
			var uc *issuer.UnknownCredentialError
			var ie *issuer.Error
			ok := false
			switch tt.want {
			case "ok":
				ok = err == nil
			case "unknown":
				ok = errors.As(err, &uc) && issuer.IsPermanent(err)
			case "permanent":
				ok = errors.As(err, &ie) && ie.Status == http.StatusConflict && issuer.IsPermanent(err)
			case "transient":
				ok = errors.As(err, &ie) && ie.Status == http.StatusServiceUnavailable && issuer.IsTransient(err)
			case "unsupported":
				ok = errors.Is(err, issuer.ErrVerifyUnsupported)
			case "not_found_page":
				ok = errors.As(err, &ie) && ie.Code == issuer.CodeNotFoundPage && issuer.IsTransient(err)
			case "page_answer":
				ok = errors.As(err, &ie) && ie.Code == issuer.CodePageAnswer && issuer.IsTransient(err)
			}
			if !ok {
				t.Errorf("Verify = %v, want %s", err, tt.want)
			}
			if n := r.requests(); n != tt.requests {
				t.Errorf("%d verify requests, want %d", n, tt.requests)
			}
		})
	}
}

// By default a 404 read as "does not know" is asked again after a second;
// a context ended during the wait ends it, with an error that is retried.
func TestVerifyRecheckWaitsByDefaultAndHeedsItsContext(t *testing.T) {
	t.Parallel()
	r := &replicas{statuses: []int{404, 204}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	h, err := issuer.NewHTTP(srv.URL, key, issuer.WithVerify(issuer.VerifyRequired, nil))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := verifyOnce(h); err != nil || r.requests() != 2 {
		t.Fatalf("Verify = %v after %d requests, want nil after 2", err, r.requests())
	}
	if waited := time.Since(start); waited < issuer.DefaultVerifyRechecks[0] {
		t.Errorf("asked again after %s, want after %s", waited, issuer.DefaultVerifyRechecks[0])
	}

	lost := &replicas{statuses: []int{404}}
	srv = httptest.NewServer(lost)
	t.Cleanup(srv.Close)
	h, err = issuer.NewHTTP(srv.URL, key, issuer.WithVerify(issuer.VerifyRequired, nil), issuer.WithVerifyRechecks(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// The deadline falls in the hour's wait after the first answer: far
	// enough out that a loaded machine has that answer by then.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = h.Verify(ctx, "inst-1", "cred_1")
	var ie *issuer.Error
	if !errors.As(err, &ie) || ie.Code != issuer.CodeTimeout || !issuer.IsTransient(err) || lost.requests() != 1 {
		t.Errorf("Verify with its context ending mid-wait = %v after %d requests, want a transient timeout after 1", err, lost.requests())
	}
	if _, err := issuer.NewHTTP(srv.URL, key, issuer.WithVerifyRechecks(time.Second, -time.Second)); err == nil {
		t.Error("a negative recheck wait was accepted")
	}
}

// A 409, 410 or 422 that comes as a page (a CDN's or a firewall's, in front
// of an issuer without verify) is not the issuer answering verify: it is
// not remembered as one, so the issuer's own 404s still read as
// "unsupported" under auto, instead of failing every later rotation for a
// year (verify:unknown_credential).
func TestVerifyDoesNotRememberAPageSayingItDoesNotWork(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusConflict, http.StatusGone, http.StatusUnprocessableEntity} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			r := &replicas{statuses: []int{1000 + status, http.StatusNotFound}}
			srv := httptest.NewServer(r)
			t.Cleanup(srv.Close)
			mem := &memory{}
			h, err := issuer.NewHTTP(srv.URL, key, issuer.WithClock(func() time.Time { return now }),
				issuer.WithVerify(issuer.VerifyAuto, mem), issuer.WithVerifyRechecks())
			if err != nil {
				t.Fatal(err)
			}
			if err := verifyOnce(h); err == nil {
				t.Fatalf("verify answered %d by a page = nil, want an error", status)
			}
			if err := verifyOnce(h); !errors.Is(err, issuer.ErrVerifyUnsupported) {
				t.Errorf("the issuer's 404 after a %d page = %v, want ErrVerifyUnsupported", status, err)
			}
			mem.mu.Lock()
			defer mem.mu.Unlock()
			if mem.writes != 0 {
				t.Errorf("%d writes to the verify memory, want none", mem.writes)
			}
		})
	}
}
