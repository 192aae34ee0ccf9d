package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// A customer follows a rotation on the dashboard while the add-on is
// deprovisioned and its records expire (the audit retention ends). The
// page's status poll, and a reload, must say that the add-on is no longer
// known and that nothing is under way, so that the page stops following
// it; not answer an error the page's script took for a passing fault, polling
// on under the old status, nor ask to try again in a few minutes.
func TestThePollOfAnAddonWhoseRecordIsGoneSaysSoAndEnds(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	session := f.login("inst-1")
	f.rotate("inst-1", "rot-1", "cred-1", 0)
	if r := f.api(http.MethodDelete, "/api/v1/instances/inst-1", ""); r.status != http.StatusOK {
		t.Fatalf("DELETE = %d %s", r.status, r.body)
	}
	if err := f.r.Client.Del(context.Background(), "rekey:instance:inst-1").Err(); err != nil {
		t.Fatal(err)
	}
	r := f.get("/dashboard/status", session)
	var got struct {
		Status string `json:"status"`
		Busy   *bool  `json:"busy"`
		Gone   bool   `json:"gone"`
	}
	r.json(t, &got)
	if r.status != http.StatusNotFound || !got.Gone || got.Busy == nil || *got.Busy ||
		!strings.Contains(got.Status, "no longer known") {
		t.Errorf("GET /dashboard/status of an add-on whose record is gone = %d %s, want 404 with gone, busy false "+
			"and a status saying the add-on is no longer known", r.status, r.body)
	}
	page := f.get("/dashboard", session)
	if page.status != http.StatusNotFound || !strings.Contains(page.body, "no longer known") || strings.Contains(page.body, "yet") {
		t.Errorf("GET /dashboard of an add-on whose record is gone = %d, want 404 saying it is no longer known, not \"yet\":\n%s",
			page.status, page.body)
	}
}
