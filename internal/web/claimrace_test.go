package web_test

import (
	"net/http"
	"testing"

	"github.com/rekeyhq/rekey/internal/redistest"
)

// A partner's DELETE of one instance that lands between a rotation
// request's check of the instances it names and their claims (its
// provisioning script deprovisions while its rotation script runs) used to
// be answered 503 "rekey failed part-way ... sending the request again is
// safe", logged as an error, for a request whose other instances were
// enqueued: the partner's client retried it and got 422 "refused, nothing
// enqueued". Now it is 202 counting the instance as gone meanwhile, as
// {"all":true} does, and a request whose every instance went so is 422.
func TestAnInstanceDeprovisionedBeforeItsClaimIsGoneNotAFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, id := range []string{"inst-1", "inst-2", "inst-3"} {
		f.register(id, "cred-0")
	}
	deleteBeforeClaim := func(id string) {
		f.r.Client.AddHook(&redistest.BeforeScriptNaming{ID: id, Run: func() {
			if r := f.api(http.MethodDelete, "/api/v1/instances/"+id, ""); r.status != http.StatusOK {
				t.Errorf("DELETE %s: %d %s", id, r.status, r.body)
			}
		}})
	}

	deleteBeforeClaim("inst-2")
	r := f.api(http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-1","inst-2"]}`)
	var got struct {
		BatchID  string `json:"batch_id"`
		Enqueued int    `json:"enqueued"`
		Gone     int    `json:"gone"`
	}
	r.json(t, &got)
	if r.status != http.StatusAccepted || got.Enqueued != 1 || got.Gone != 1 {
		t.Errorf("POST /api/v1/rotations with inst-2 deprovisioned before its claim: %d %s, want 202 with 1 enqueued and 1 gone", r.status, r.body)
	}
	var b struct {
		Total, Enqueued, Skipped int
	}
	f.api(http.MethodGet, "/api/v1/batches/"+got.BatchID, "").json(t, &b)
	if b.Total != 2 || b.Enqueued != 1 || b.Skipped != 1 {
		t.Errorf("batch %s: %+v, want total 2, enqueued 1, skipped 1", got.BatchID, b)
	}

	deleteBeforeClaim("inst-3")
	if r := f.api(http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-3"]}`); r.status != http.StatusUnprocessableEntity {
		t.Errorf("POST /api/v1/rotations with its only instance deprovisioned before its claim: %d %s, want 422", r.status, r.body)
	}
}
