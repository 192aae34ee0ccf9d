package web_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
)

// GET /api/v1/instances lists the live instances a page at a time, each
// page's next_after naming where the next starts; a deprovisioned
// instance is not listed, and a query it cannot read or an after naming
// no live instance is refused rather than answered with another list.
func TestListInstances(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, id := range []string{"inst-1", "inst-2", "inst-3"} {
		f.register(id, "cred-0")
	}
	if err := f.st.Deprovision(context.Background(), "inst-2"); err != nil {
		t.Fatal(err)
	}
	type page struct {
		Instances []struct {
			ID             string `json:"id"`
			APIVersion     string `json:"api_version"`
			NextRotationAt string `json:"next_rotation_at"`
		} `json:"instances"`
		Total     int    `json:"total"`
		NextAfter string `json:"next_after"`
	}
	var listed []string
	path := "/api/v1/instances?limit=1"
	for range 3 {
		var p page
		f.api(http.MethodGet, path, "").json(t, &p)
		if p.Total != 2 || len(p.Instances) != 1 || p.Instances[0].APIVersion == "" || p.Instances[0].NextRotationAt == "" {
			t.Fatalf("GET %s: %+v", path, p)
		}
		listed = append(listed, p.Instances[0].ID)
		if p.NextAfter == "" {
			break
		}
		path = "/api/v1/instances?limit=1&after=" + p.NextAfter
	}
	if !slices.Equal(listed, []string{"inst-1", "inst-3"}) {
		t.Errorf("listed %v, want inst-1 and inst-3", listed)
	}
	for query, status := range map[string]int{
		"?after=inst-2":    http.StatusNotFound,
		"?after=nope":      http.StatusNotFound,
		"?limit=0":         http.StatusBadRequest,
		"?limit=1001":      http.StatusBadRequest,
		"?limit=5;after=x": http.StatusBadRequest,
		"?before=inst-1":   http.StatusBadRequest,
		"?limit=2&after=":  http.StatusOK,
	} {
		if resp := f.api(http.MethodGet, "/api/v1/instances"+query, ""); resp.status != status {
			t.Errorf("GET /api/v1/instances%s: %d, want %d: %s", query, resp.status, status, resp.body)
		}
	}
}
