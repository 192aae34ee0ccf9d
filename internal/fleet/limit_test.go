package fleet_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/redistest"
)

func TestGraceBelowTheFloorIsRefusedBeforeAnything(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ids := f.register(t, 2)
	ctx := context.Background()
	before := redistest.Dump(t, f.r)
	for _, p := range []*fleet.Producer{fleet.NewProducer(f.st, f.queue), fleet.NewProducer(f.st, f.queue, fleet.WithMinGrace(time.Hour))} {
		_, err := p.Rotate(ctx, fleet.Request{InstanceIDs: ids, Grace: time.Millisecond})
		var ge *fleet.GraceError
		if !errors.As(err, &ge) || ge.Floor != p.MinGrace() || !strings.Contains(err.Error(), "REKEY_MIN_GRACE") {
			t.Errorf("floor %s: 1ms grace gave %v, want a GraceError naming the floor", p.MinGrace(), err)
		}
	}
	if after := redistest.Dump(t, f.r); after != before {
		t.Error("a refused request changed Redis")
	}
	p := fleet.NewProducer(f.st, f.queue, fleet.WithMinGrace(time.Second))
	if res, err := p.Rotate(ctx, fleet.Request{InstanceIDs: ids, Grace: time.Second}); err != nil || res.Enqueued != 2 {
		t.Errorf("a grace at the floor: %+v, %v; want both enqueued", res, err)
	}
}
