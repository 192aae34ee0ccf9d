package main

import (
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// A Redis that comes back without rekey's data (restarted without
// persistence, flushed) under running processes is said at once, at error
// level, by each of them, once a loss: nothing else would ever say that
// the revocations it owed are forgotten. Two processes sharing a Redis
// read one mark; a process reading the mark again is quiet.
func TestAProcessSaysWhenRedisLostRekeysData(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	process := func() (*app, *syncBuffer) {
		var logs syncBuffer
		return &app{store: c.st, log: zerolog.New(&logs), redact: func(s string) string { return s }}, &logs
	}
	a, logs := process()
	b, _ := process()
	seenA := a.watchEpoch(ctx, "")
	seenB := b.watchEpoch(ctx, "")
	if seenA == "" || seenA != seenB {
		t.Fatalf("two processes read the marks %q and %q, want one", seenA, seenB)
	}
	if again := a.watchEpoch(ctx, seenA); again != seenA || logs.String() != "" {
		t.Fatalf("the same Redis read again: mark %q (was %q), logs %q", again, seenA, logs.String())
	}

	if err := c.r.Client.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	after := a.watchEpoch(ctx, seenA)
	if after == seenA || strings.Count(logs.String(), "redis_data_lost") != 1 || !strings.Contains(logs.String(), `"level":"error"`) {
		t.Fatalf("after a flush: mark %q (was %q), logs %q; want a new mark and one redis_data_lost error", after, seenA, logs.String())
	}
	since, _, _ := strings.Cut(seenA, "/")
	if !strings.Contains(logs.String(), since) {
		t.Errorf("redis_data_lost does not say since when: %s", logs.String())
	}
	if again := a.watchEpoch(ctx, after); again != after || strings.Count(logs.String(), "redis_data_lost") != 1 {
		t.Errorf("the loss was logged again: %s", logs.String())
	}

	// A mark another writer put in rekey:epoch is never quoted.
	const foreign = "postgres://app:Hunter2@db.example/x"
	if err := c.r.Client.Set(ctx, "rekey:epoch", foreign, 0).Err(); err != nil {
		t.Fatal(err)
	}
	seen := a.watchEpoch(ctx, after) // the mark changed again: a second loss said, and the foreign mark read
	if err := c.r.Client.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	a.watchEpoch(ctx, seen)
	if strings.Contains(logs.String(), "Hunter2") || !strings.Contains(logs.String(), "an unknown time") {
		t.Errorf("a foreign mark was quoted, or its loss not said: %s", logs.String())
	}
}
