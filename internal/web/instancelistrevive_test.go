package web_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"
)

// A partner's script paging through GET /api/v1/instances, whose page
// ended at an instance that was then deprovisioned and registered again
// (a DELETE by mistake and the PUT again, between two pages), went on
// from the end of the list: the instance registered again had moved
// there, although its registered_at stayed, so the next page came back
// empty, with no next_after, and every instance after it in registration
// order was silently left out of the partner's walk. An instance
// registered again keeps its place.
func TestAnInstanceRegisteredAgainKeepsItsPlaceInTheList(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, id := range []string{"inst-1", "inst-2", "inst-3"} {
		f.register(id, "cred-0")
	}
	type page struct {
		Instances []struct {
			ID string `json:"id"`
		} `json:"instances"`
		NextAfter string `json:"next_after"`
	}
	var first page
	f.api(http.MethodGet, "/api/v1/instances?limit=1", "").json(t, &first)
	if first.NextAfter != "inst-1" {
		t.Fatalf("first page: %+v", first)
	}
	if err := f.st.Deprovision(context.Background(), "inst-1"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Hour)
	f.register("inst-1", "cred-0")

	var listed []string
	after := first.NextAfter
	for range 5 {
		var p page
		f.api(http.MethodGet, "/api/v1/instances?limit=1&after="+after, "").json(t, &p)
		for _, in := range p.Instances {
			listed = append(listed, in.ID)
		}
		if p.NextAfter == "" {
			break
		}
		after = p.NextAfter
	}
	if !slices.Equal(listed, []string{"inst-2", "inst-3"}) {
		t.Errorf("pages after inst-1, registered again meanwhile: %v, want inst-2 and inst-3", listed)
	}
}
