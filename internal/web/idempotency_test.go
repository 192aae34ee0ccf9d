package web_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/web"
)

// TestARotationRequestSentAgainWithItsIdempotencyKeyRotatesNothingMore:
// a partner's client whose request's answer was lost (its own timeout, a
// dropped connection) sends it again with the Idempotency-Key it sent it
// with. Once the first request's rotation had finished, the request sent
// again rotated the instance again: another credential minted and pushed,
// and the customer's apps restarted once more. It is answered now as the
// first was (the same batch), with Idempotent-Replayed, and enqueues
// nothing; the same key with another body, a key being handled and a key
// that is no key are refused, and a request without one is handled as
// before.
func TestARotationRequestSentAgainWithItsIdempotencyKeyRotatesNothingMore(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	post := func(key, body string) reply {
		t.Helper()
		h := http.Header{"Authorization": {"Bearer " + apiToken}, "Content-Type": {"application/json"}}
		if key != "" {
			h.Set("Idempotency-Key", key)
		}
		return f.do(http.MethodPost, "/api/v1/rotations", strings.NewReader(body), h)
	}
	const body = `{"instance_ids":["inst-1"],"reason":"customer asked"}`
	first := post("order-7f3a", body)
	var firstBatch batchJSON
	first.json(t, &firstBatch)
	if first.status != http.StatusAccepted || firstBatch.Enqueued != 1 {
		t.Fatalf("first request: %d %s", first.status, first.body)
	}
	// The rotation runs to its end, as a worker would take it.
	ctx := context.Background()
	in, err := f.st.Instance(ctx, "inst-1")
	if err != nil || in.InFlight == "" {
		t.Fatalf("instance after the request: %+v, %v; want a rotation in flight", in, err)
	}
	cfg := map[string]secret.String{"MYADDON_URL": secret.New(pendingSecret + "?cred=cred-1")}
	if err := f.st.SavePending(ctx, "inst-1", in.InFlight, "cred-1", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Promote(ctx, "inst-1", in.InFlight, "cred-1", 2*time.Hour, "grace 2h"); err != nil {
		t.Fatal(err)
	}

	again := post("order-7f3a", body)
	if again.status != http.StatusAccepted || again.body != first.body || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the request sent again: %d %q (replayed %q), want the first answer, 202 %q, replayed",
			again.status, again.body, again.header.Get("Idempotent-Replayed"), first.body)
	}
	if in, err := f.st.Instance(ctx, "inst-1"); err != nil || in.InFlight != "" {
		t.Errorf("instance after the request sent again: %+v, %v; want no rotation in flight", in, err)
	}
	if got := f.queued("interactive"); len(got) != 1 {
		t.Errorf("%d tasks queued, want the first request's one: %v", len(got), got)
	}

	t.Run("the same key with another request", func(t *testing.T) {
		resp := post("order-7f3a", `{"instance_ids":["inst-1"],"reason":"another"}`)
		if resp.status != http.StatusUnprocessableEntity || !strings.Contains(resp.body, "send a new key with a new request") {
			t.Errorf("got %d %s, want 422 naming the key's other request", resp.status, resp.body)
		}
	})
	t.Run("keys that are no key", func(t *testing.T) {
		for _, key := range []string{strings.Repeat("k", 256), "ключ"} {
			if resp := post(key, body); resp.status != http.StatusBadRequest || !strings.Contains(resp.body, "Idempotency-Key") {
				t.Errorf("key %q: %d %s, want 400 naming the header", key, resp.status, resp.body)
			}
		}
	})
	t.Run("a key being handled", func(t *testing.T) {
		if prev, err := f.st.BeginIdempotent(ctx, "order-busy", "digest-of-another-process", time.Minute); err != nil || prev != nil {
			t.Fatalf("BeginIdempotent = %+v, %v", prev, err)
		}
		resp := post("order-busy", body)
		if resp.status != http.StatusConflict || resp.header.Get("Retry-After") == "" {
			t.Errorf("a key held by another request: %d %s, want 409 with Retry-After", resp.status, resp.body)
		}
	})
	t.Run("without a key", func(t *testing.T) {
		var b batchJSON
		resp := post("", body)
		resp.json(t, &b)
		if resp.status != http.StatusAccepted || b.Enqueued != 1 || b.BatchID == firstBatch.BatchID {
			t.Errorf("a request without a key: %d %s, want a new batch enqueuing one rotation", resp.status, resp.body)
		}
	})
}

// slowClaims delays the rotation scripts that name inst-1: the request's
// claims take longer than the Idempotency-Key's pending mark (a Redis slow
// to answer, a long list of instances).
func slowClaims(delay time.Duration) redistest.OnCommand {
	return redistest.OnCommand{Note: func(cmd redis.Cmder) {
		if n := cmd.Name(); (n == "evalsha" || n == "eval") && strings.Contains(fmt.Sprint(cmd.Args()), "inst-1") {
			time.Sleep(delay)
		}
	}}
}

// TestARequestLongerThanItsKeysMarkKeepsTheKey: a rotation request whose
// work outlasts the Idempotency-Key's pending mark, in a web process that
// is alive, keeps the key marked until it is answered. Its client, cut off
// by its own timeout or Heroku's router, sends the request again meanwhile:
// it was handled anew once the mark expired, and every instance whose
// rotation the first request had started and finished meanwhile was
// rotated again, the apps restarted once more, which the key is there to
// prevent.
func TestARequestLongerThanItsKeysMarkKeepsTheKey(t *testing.T) {
	t.Parallel()
	const pending = time.Second
	f := newFixture(t, func(p *web.Params) { p.IdempotentPending = pending })
	f.register("inst-1", "cred-0")
	f.r.Client.AddHook(slowClaims(3 * pending))
	post := func() reply {
		h := http.Header{"Authorization": {"Bearer " + apiToken}, "Content-Type": {"application/json"},
			"Idempotency-Key": {"order-slow"}}
		return f.do(http.MethodPost, "/api/v1/rotations", strings.NewReader(`{"instance_ids":["inst-1"],"reason":"customer asked"}`), h)
	}
	first := make(chan reply, 1)
	go func() { first <- post() }()
	time.Sleep(pending + pending/2)
	select {
	case r := <-first:
		t.Fatalf("the first request was answered (%d) before the mark's time: the claims were not slowed", r.status)
	default:
	}
	if again := post(); again.status != http.StatusConflict {
		t.Errorf("the request sent again while the first is handled, past the mark's time: %d %s, want 409", again.status, again.body)
	}
	if r := <-first; r.status != http.StatusAccepted {
		t.Fatalf("first request: %d %s", r.status, r.body)
	}
	if got := f.queued("interactive"); len(got) != 1 {
		t.Errorf("%d tasks queued, want the first request's one: %v", len(got), got)
	}
}
