package store_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

var _ issuer.VerifyMemory = (*store.Store)(nil)

// The issuer's last verify answer is one key, read back to the
// millisecond, that expires the ttl after its last write; before any
// write the store knows of none.
func TestIssuerVerifiedIsOneExpiringKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	if at, err := f.st.IssuerVerifiedAt(ctx); err != nil || !at.IsZero() {
		t.Fatalf("before any record: %s, %v; want the zero time", at, err)
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.UTC)
	if err := f.st.RecordIssuerVerified(ctx, at, issuer.VerifyMemoryTTL); err != nil {
		t.Fatal(err)
	}
	if got, err := f.st.IssuerVerifiedAt(ctx); err != nil || !got.Equal(at) {
		t.Errorf("IssuerVerifiedAt = %s, %v; want %s", got, err, at)
	}
	keys, err := f.r.Client.Keys(ctx, "*").Result()
	if err != nil || len(keys) != 1 || keys[0] != "rekey:issuer_verified" {
		t.Fatalf("keys = %v, %v; want rekey:issuer_verified alone", keys, err)
	}
	ttl, err := f.r.Client.PTTL(ctx, keys[0]).Result()
	if err != nil || ttl > issuer.VerifyMemoryTTL || ttl < issuer.VerifyMemoryTTL-time.Minute {
		t.Errorf("ttl = %s, %v; want %s", ttl, err, issuer.VerifyMemoryTTL)
	}

	// A later record moves the expiry to its own ttl.
	if err := f.st.RecordIssuerVerified(ctx, at.Add(time.Hour), time.Minute); err != nil {
		t.Fatal(err)
	}
	if ttl := f.r.Client.PTTL(ctx, keys[0]).Val(); ttl > time.Minute || ttl < 50*time.Second {
		t.Errorf("ttl after a record with a minute's = %s", ttl)
	}
	if got, _ := f.st.IssuerVerifiedAt(ctx); !got.Equal(at.Add(time.Hour)) {
		t.Errorf("IssuerVerifiedAt = %s, want the later record's %s", got, at.Add(time.Hour))
	}
	if err := f.st.RecordIssuerVerified(ctx, at, 0); err == nil {
		t.Error("a record without a ttl was accepted: it would never expire")
	}
}

// A value rekey did not write is an error that names the key, never read
// as "the issuer never verified".
func TestIssuerVerifiedDamagedValue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	if err := f.r.Client.Set(ctx, "rekey:issuer_verified", "yes", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.IssuerVerifiedAt(ctx); err == nil || !strings.Contains(err.Error(), "rekey:issuer_verified") {
		t.Errorf("IssuerVerifiedAt = %v, want an error naming the key", err)
	}
}

// Worker processes share what one of them saw through the store, each on
// its own Redis connection: twenty verify answers cost the process that
// saw them one command, and twenty 404s the process that saw none one
// command too, all failing with the first process's answer time. Before
// any answer, every 404 of an issuer without verify costs one GET.
func TestIssuerVerifiedSharedByProcesses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var status atomic.Int64
	status.Store(http.StatusNotFound)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	first, second := f.process(t, srv.URL), f.process(t, srv.URL)
	verify := func(p process, n int) (errs []error) {
		for range n {
			errs = append(errs, p.iss.Verify(context.Background(), "inst-1", "cred_1"))
		}
		return errs
	}

	for _, err := range verify(second, 3) {
		if !errors.Is(err, issuer.ErrVerifyUnsupported) {
			t.Fatalf("404 before any answer = %v, want unsupported", err)
		}
	}
	if n := second.commands.Load(); n != 3 {
		t.Errorf("three 404s before any answer cost %d commands, want a GET each", n)
	}
	second.commands.Store(0)

	status.Store(http.StatusOK)
	answeredAt := time.Now().Truncate(time.Millisecond)
	for _, err := range verify(first, 20) {
		if err != nil {
			t.Fatal(err)
		}
	}
	status.Store(http.StatusNotFound)
	for _, err := range verify(second, 20) {
		var unknown *issuer.UnknownCredentialError
		if !errors.As(err, &unknown) || unknown.LastVerified.Before(answeredAt) ||
			unknown.LastVerified.After(answeredAt.Add(time.Minute)) {
			t.Fatalf("404 after another process's answers = %v, want an unknown credential verified at about %s", err, answeredAt)
		}
	}
	if a, b := first.commands.Load(), second.commands.Load(); a != 1 || b != 1 {
		t.Errorf("20 answers cost %d commands and 20 404s in another process %d, want 1 and 1", a, b)
	}
}

// process is one worker process: its own Redis client, counting commands,
// its own store and webhook issuer under REKEY_ISSUER_VERIFY=auto.
type process struct {
	iss      *issuer.HTTP
	commands *atomic.Int64
}

func (f *fixture) process(t *testing.T, issuerURL string) process {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: f.r.Addr, DB: f.r.DB})
	t.Cleanup(func() { _ = client.Close() })
	p := process{commands: &atomic.Int64{}}
	client.AddHook(commandCount{p.commands})
	// The connection's own set-up (HELLO, SELECT) is no command of the
	// issuer's.
	if err := client.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	p.commands.Store(0)
	iss, err := issuer.NewHTTP(issuerURL, secret.New("issuer-secret"),
		issuer.WithVerify(issuer.VerifyAuto, store.New(client, nil)), issuer.WithVerifyRechecks())
	if err != nil {
		t.Fatal(err)
	}
	p.iss = iss
	return p
}

// commandCount counts the commands a client sends.
type commandCount struct{ n *atomic.Int64 }

func (c commandCount) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c commandCount) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}
func (c commandCount) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}
