package web_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/web"
)

// scriptReply is an error reply of Redis's, as go-redis returns it.
type scriptReply string

func (e scriptReply) Error() string { return string(e) }
func (scriptReply) RedisError()     {}

// scriptsRefusedBefore7 answers a Redis client's script calls as Redis 6
// answers a script whose write it refuses: the refusal is wrapped in an
// "Error running script" reply, where Redis 7 answers it as it is.
type scriptsRefusedBefore7 struct{ reply string }

func (h scriptsRefusedBefore7) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h scriptsRefusedBefore7) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if n := cmd.Name(); n == "evalsha" || n == "eval" {
			err := scriptReply("ERR Error running script (call to f_5c2b0e8e4a3c1d9d6f3ab4f0b6f7c1e2d3a4b5c6): " +
				"@user_script:41: @user_script: 41: -" + h.reply + " ")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

func (h scriptsRefusedBefore7) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A deprovisioning during a failover on Redis 6, whose script the old
// primary turned replica refuses (READONLY, wrapped in Redis 6's "Error
// running script"), is answered 503 with Retry-After, as on Redis 7: the
// same DELETE a moment later deprovisions. It was answered 500.
func TestAWriteRefusedInsideAScriptOfRedis6IsRedisUnavailable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", v3Body); resp.status != http.StatusOK {
		t.Fatalf("PUT: %d %s", resp.status, resp.body)
	}
	rdb := redis.NewClient(&redis.Options{Addr: f.r.Client.Options().Addr, DB: f.r.Client.Options().DB, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	rdb.AddHook(scriptsRefusedBefore7{reply: "READONLY You can't write against a read only replica."})
	p := f.params
	p.Store = store.New(rdb, fixtureSealer(t), store.WithClock(f.clock.Now))
	p.Registry = registry.New(p.Store, nil)
	h, err := web.New(p)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.Config.Handler = h
	resp := f.api(http.MethodDelete, "/api/v1/instances/inst-1", "")
	if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" {
		t.Fatalf("DELETE while Redis 6 refuses its script as a replica: %d (Retry-After %q) %s; want 503 with Retry-After",
			resp.status, resp.header.Get("Retry-After"), resp.body)
	}
	if in, err := f.st.Instance(context.Background(), "inst-1"); err != nil || in.Deprovisioned() {
		t.Errorf("instance after the refused DELETE: %+v, %v; want it live", in, err)
	}
}
