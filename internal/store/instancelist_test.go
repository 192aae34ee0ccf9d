package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/rekeyhq/rekey/internal/store"
)

// The live instances list a page at a time in registration order, each
// page after the last one's last id, with their count; a deprovisioned
// instance leaves the list, and a page after it is refused (ErrNotFound)
// rather than started over from the first.
func TestInstancesAfterPagesTheLiveInstances(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	var want []string
	for i := range 7 {
		id := fmt.Sprintf("inst-%d", i)
		f.register(t, id, "cred-0")
		want = append(want, id)
	}
	if err := f.st.Deprovision(ctx, "inst-3"); err != nil {
		t.Fatal(err)
	}
	want = append(want[:3], want[4:]...)
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		p, err := f.st.InstancesAfter(ctx, after, 4)
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != 6 || len(p.Instances) > 4 || pages > 1 {
			t.Fatalf("page %d: %d instances of %d (more %v)", pages, len(p.Instances), p.Total, p.More)
		}
		for _, in := range p.Instances {
			if in.RegisteredAt.IsZero() {
				t.Errorf("%s listed without its record", in.ID)
			}
			got = append(got, in.ID)
		}
		if !p.More {
			break
		}
		after = got[len(got)-1]
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("listed %v, want %v", got, want)
	}
	for _, gone := range []string{"inst-3", "nope"} {
		if _, err := f.st.InstancesAfter(ctx, gone, 4); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a page after %s: %v, want ErrNotFound", gone, err)
		}
	}
}
