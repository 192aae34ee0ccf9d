package pacing

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/redistest"
)

// lateReply holds back, once armed, the reply to the next script call for
// a while after Redis ran it, and says on ran when Redis has: a renewal
// whose answer comes late.
type lateReply struct {
	armed atomic.Bool
	by    time.Duration
	ran   chan struct{}
}

func (*lateReply) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *lateReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		name := strings.ToLower(cmd.Name())
		if (name == "evalsha" || name == "eval") && h.armed.CompareAndSwap(true, false) {
			close(h.ran)
			time.Sleep(h.by)
		}
		return err
	}
}
func (*lateReply) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A renewal answered after the lease it set ran out does not let the
// feeder go on as the leader, neither in the call that gets the late
// reply nor after it: a standby may have taken the lease in the meantime,
// and two leaders would release the same held rotations.
func TestALateRenewalIsNotTrustedPastTheLease(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	hook := &lateReply{by: leaseTime + time.Second, ran: make(chan struct{})}
	slow := hooked(t, r, hook)
	a := NewFeeder(FeederParams{Redis: slow})
	b := NewFeeder(FeederParams{Redis: r.Client})
	ctx := t.Context()
	if !a.lead(ctx) {
		t.Fatal("the first feeder did not take the free lease")
	}
	a.leased = time.Time{} // its next look renews
	hook.armed.Store(true)
	renewed := make(chan bool, 1)
	go func() { renewed <- a.lead(ctx) }()
	<-hook.ran
	time.Sleep(leaseTime + 300*time.Millisecond) // the lease the renewal set is over
	if !b.lead(ctx) {
		t.Fatal("the standby did not take the lease that ran out")
	}
	if <-renewed {
		owner := r.Client.Get(ctx, leaseKey).Val()
		t.Errorf("the renewal answered after the lease ran out says the feeder leads, while the lease is %q's (the standby is %q)", owner, b.id)
	}
	if a.lead(ctx) {
		owner := r.Client.Get(ctx, leaseKey).Val()
		t.Errorf("the feeder whose renewal came late still leads, while the lease is %q's (the standby is %q)", owner, b.id)
	}
}

// A renewal answered slowly, with more than renewEvery of its lease left,
// still leads: a slow Redis slows the feeder down but does not stop it.
func TestASlowRenewalWithinTheLeaseStillLeads(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	hook := &lateReply{by: leaseTime - renewEvery - 500*time.Millisecond, ran: make(chan struct{})}
	slow := hooked(t, r, hook)
	a := NewFeeder(FeederParams{Redis: slow})
	ctx := t.Context()
	if !a.lead(ctx) {
		t.Fatal("the feeder did not take the free lease")
	}
	a.leased = time.Time{}
	hook.armed.Store(true)
	if !a.lead(ctx) {
		t.Errorf("a renewal answered after %s, with its lease still held, says the feeder does not lead", hook.by)
	}
	if owner := r.Client.Get(ctx, leaseKey).Val(); owner != a.id {
		t.Errorf("the lease is %q's, want the feeder's own %q", owner, a.id)
	}
}

// hooked is a second client of r's database whose commands pass hook, closed
// when the test ends.
func hooked(t *testing.T, r *redistest.Redis, hook redis.Hook) *redis.Client {
	t.Helper()
	c := redis.NewClient(r.Client.Options())
	t.Cleanup(func() { _ = c.Close() })
	c.AddHook(hook)
	return c
}
