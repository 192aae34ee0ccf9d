package web_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// A partner's code that rotated its fleet through the API finds the
// instances whose rotation failed, with each one's code, to send them to
// POST /api/v1/rotations again; the batch's own rotations only, none of
// the succeeded, by code and instance.
func TestBatchFailedListsTheInstancesToRotateAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	for _, id := range []string{"inst-1", "inst-2", "inst-3"} {
		f.register(id, "cred-0")
	}
	var batch batchJSON
	f.api(http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-1","inst-2","inst-3"]}`).json(t, &batch)
	end := map[string]string{"inst-1": "push:heroku_404", "inst-2": "", "inst-3": "mint:issuer_422"}
	for id, code := range end {
		in, err := f.st.Instance(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.st.SavePending(ctx, id, in.InFlight, "cred-1", map[string]secret.String{"MYADDON_URL": secret.New("v-" + id)}); err != nil {
			t.Fatal(err)
		}
		if code == "" {
			_, err = f.st.Promote(ctx, id, in.InFlight, "cred-1", time.Hour, "")
		} else {
			_, err = f.st.Fail(ctx, id, in.InFlight, code, "failed")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var got struct {
		BatchID string                 `json:"batch_id"`
		Failed  []store.FailedInstance `json:"failed"`
	}
	resp := f.api(http.MethodGet, "/api/v1/batches/"+batch.BatchID+"/failed", "")
	resp.json(t, &got)
	want := []store.FailedInstance{{InstanceID: "inst-3", Code: "mint:issuer_422"}, {InstanceID: "inst-1", Code: "push:heroku_404"}}
	if resp.status != http.StatusOK || got.BatchID != batch.BatchID || len(got.Failed) != 2 || got.Failed[0] != want[0] || got.Failed[1] != want[1] {
		t.Fatalf("GET failed: %d %s; want 200 listing %+v", resp.status, resp.body, want)
	}
	if resp := f.api(http.MethodGet, "/api/v1/batches/bat_unknown/failed", ""); resp.status != http.StatusNotFound {
		t.Errorf("an unknown batch: %d %s, want 404", resp.status, resp.body)
	}
}

// A batch whose failures a worker of an earlier rekey version recorded (a
// wave that ran across the upgrade) counts failures the list does not
// hold: the answer says how many, so a partner's code does not take a
// short or empty list for all that failed.
func TestBatchFailedCountsTheFailuresItDoesNotList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	for _, id := range []string{"inst-1", "inst-2"} {
		f.register(id, "cred-0")
	}
	var batch batchJSON
	f.api(http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-1","inst-2"]}`).json(t, &batch)
	for _, id := range []string{"inst-1", "inst-2"} {
		in, err := f.st.Instance(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.st.Fail(ctx, id, in.InFlight, "push:heroku_404", "failed"); err != nil {
			t.Fatal(err)
		}
	}
	// inst-1's failure was recorded before the list was kept.
	if err := f.r.Client.HDel(ctx, "rekey:batch:"+batch.BatchID+":failed", "inst-1").Err(); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Failed   []store.FailedInstance `json:"failed"`
		Unlisted *int64                 `json:"unlisted"`
	}
	resp := f.api(http.MethodGet, "/api/v1/batches/"+batch.BatchID+"/failed", "")
	resp.json(t, &got)
	if resp.status != http.StatusOK || len(got.Failed) != 1 || got.Unlisted == nil || *got.Unlisted != 1 {
		t.Fatalf("GET failed: %d %s; want inst-2 listed and \"unlisted\": 1", resp.status, resp.body)
	}
}

// A partner's code that rotates its fleet again while a wave is in flight
// (its batches join the wave's rotations) sends the failures of its own
// batch to POST /api/v1/rotations again: those of the rotations it joined
// must be among them, with their code and "joined": true, however many
// batches joined the same rotation before it.
func TestBatchFailedListsTheRotationsItJoined(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	var wave batchJSON
	f.api(http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-1"]}`).json(t, &wave)
	// More batches join the rotation than it notes (joined_by): the last
	// ones note it in their own set instead.
	var joins []string
	for range 40 {
		var b batchJSON
		resp := f.api(http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-1"]}`)
		resp.json(t, &b)
		if b.Joined != 1 {
			t.Fatalf("POST again: %d %s; want the rotation in flight joined", resp.status, resp.body)
		}
		joins = append(joins, b.BatchID)
	}
	in, err := f.st.Instance(ctx, "inst-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Fail(ctx, "inst-1", in.InFlight, "retries_exhausted", "failed"); err != nil {
		t.Fatal(err)
	}
	type failedJSON struct {
		InstanceID string `json:"instance_id"`
		Code       string `json:"code"`
		Joined     bool   `json:"joined"`
	}
	for _, id := range append([]string{wave.BatchID}, joins[0], joins[len(joins)-1]) {
		var got struct {
			Failed   []failedJSON `json:"failed"`
			Unlisted *int64       `json:"unlisted"`
		}
		resp := f.api(http.MethodGet, "/api/v1/batches/"+id+"/failed", "")
		resp.json(t, &got)
		want := failedJSON{InstanceID: "inst-1", Code: "retries_exhausted", Joined: id != wave.BatchID}
		if resp.status != http.StatusOK || len(got.Failed) != 1 || got.Failed[0] != want || got.Unlisted == nil || *got.Unlisted != 0 {
			t.Errorf("GET failed of %s: %d %s; want %+v alone, none unlisted", id, resp.status, resp.body, want)
		}
	}
}
