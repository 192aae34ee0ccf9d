package handlers_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/rekeyhq/rekey/handlers"
	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/herokufake"
)

// recordingBreaker keeps every answer it hears.
type recordingBreaker struct {
	mu       sync.Mutex
	answers  []error
	instance []string
}

var _ handlers.Breaker = (*recordingBreaker)(nil)

func (b *recordingBreaker) Observe(_ context.Context, instanceID string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.answers = append(b.answers, err)
	b.instance = append(b.instance, instanceID)
}

// TestBreakerHearsEveryPush checks that the breaker hears Heroku's answer
// to each push, a success as well as a refusal, so it can weigh one
// against the other.
func TestBreakerHearsEveryPush(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	b := &recordingBreaker{}
	g.deps.Breaker = b
	if err := g.run(rotateTask(t, "inst-1", "rot-1")); err != nil {
		t.Fatal(err)
	}
	g.fake.Script(herokufake.PatchConfig, herokufake.Respond(403))
	if err := g.run(rotateTask(t, "inst-1", "rot-2")); err == nil {
		t.Fatal("second rotation succeeded, want the scripted 403")
	}
	var api *heroku.APIError
	switch {
	case len(b.answers) != 2:
		t.Fatalf("the breaker heard %d answers, want 2", len(b.answers))
	case b.answers[0] != nil || b.instance[0] != "inst-1":
		t.Fatalf("first answer heard = %v for %s, want inst-1's success", b.answers[0], b.instance[0])
	case !errors.As(b.answers[1], &api) || api.Status != 403 || b.instance[1] != "inst-1":
		t.Fatalf("second answer heard = %v for %s, want inst-1's 403", b.answers[1], b.instance[1])
	}
}
