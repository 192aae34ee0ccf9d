package redistest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/redistest"
)

func TestEveryTestGetsItsOwnDatabase(t *testing.T) {
	a, b := redistest.New(t), redistest.New(t)
	if a.DB == b.DB {
		t.Fatalf("two tests share database %d", a.DB)
	}
	ctx := context.Background()
	if err := a.Client.Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Client.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("database %d sees a key of database %d (n=%d, err=%v)", b.DB, a.DB, n, err)
	}
	t.Logf("redis kind: %s", redistest.Kind())
}

func TestStartServerAtALaterTime(t *testing.T) {
	t.Parallel()
	port := redistest.FreePort(t)
	r := redistest.StartServerAt(t, port)
	if err := r.Client.Ping(context.Background()).Err(); err != nil || !strings.HasSuffix(r.Addr, fmt.Sprint(":", port)) {
		t.Fatalf("server at %s: ping %v", r.Addr, err)
	}
}
