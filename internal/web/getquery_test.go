package web_test

import (
	"net/http"
	"strings"
	"testing"
)

// GET /api/v1/batches/{id}/failed, /api/v1/batches/{id} and
// /api/v1/instances/{id} take no query parameter, and refuse one (400,
// naming it) as the lists refuse one they do not take: a client filtering
// the failures by ?code=retries_exhausted, as rekey batches failed --code
// does, would otherwise get every failure and send them all to
// POST /api/v1/rotations again.
func TestSingleResourceRoutesRefuseQuery(t *testing.T) {
	t.Parallel()
	f, batchID := fixtureWithABatch(t)
	for _, path := range []string{
		"/api/v1/batches/" + batchID + "/failed?code=retries_exhausted",
		"/api/v1/batches/" + batchID + "?running=true",
		"/api/v1/instances/inst-1?fields=id",
	} {
		resp := f.api(http.MethodGet, path, "")
		name := path[strings.Index(path, "?")+1 : strings.Index(path, "=")]
		if resp.status != http.StatusBadRequest || !strings.Contains(resp.body, `\"`+name+`\"`) {
			t.Errorf("GET %s: %d %s, want 400 naming %q", path, resp.status, resp.body, name)
		}
	}
	if resp := f.api(http.MethodGet, "/api/v1/batches/"+batchID+"/failed", ""); resp.status != http.StatusOK {
		t.Errorf("GET without a query: %d %s", resp.status, resp.body)
	}
}

// A GET carrying the cache-buster browsers' HTTP libraries add (jQuery's
// cache: false, and others: "_" and a timestamp) is answered as without
// it, on the single-resource routes and the lists alike: it asks for no
// filter, and refusing it broke partners' dashboards that send it. It
// stays refused on a request that changes something, and given twice.
func TestGetsTakeTheCacheBuster(t *testing.T) {
	t.Parallel()
	f, batchID := fixtureWithABatch(t)
	for _, path := range []string{
		"/api/v1/batches/" + batchID + "/failed?_=1764979200000",
		"/api/v1/batches/" + batchID + "?_=1764979200000",
		"/api/v1/instances/inst-1?_=1764979200000",
		"/api/v1/instances?_=1764979200000",
		"/api/v1/instances?limit=5&_=1764979200000",
		"/api/v1/batches?_=1764979200000&running=true",
	} {
		if resp := f.api(http.MethodGet, path, ""); resp.status != http.StatusOK {
			t.Errorf("GET %s: %d %s, want 200 as without _", path, resp.status, resp.body)
		}
	}
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/api/v1/instances?_=1&_=2"},
		{http.MethodGet, "/api/v1/instances/inst-1?_=1&fields=id"},
		{http.MethodDelete, "/api/v1/instances/inst-1?_=1764979200000"},
		{http.MethodPost, "/api/v1/rotations?_=1764979200000"},
	} {
		if resp := f.api(c.method, c.path, `{"instance_ids":["inst-1"]}`); resp.status != http.StatusBadRequest {
			t.Errorf("%s %s: %d %s, want 400", c.method, c.path, resp.status, resp.body)
		}
	}
	if r := f.api(http.MethodGet, "/api/v1/instances/inst-1", ""); r.status != http.StatusOK || strings.Contains(r.body, `"deprovisioned_at"`) {
		t.Errorf("the instance after the refused DELETE: %d %s, want it live", r.status, r.body)
	}
}

// fixtureWithABatch is a fixture with the instance inst-1 registered and
// a batch rotating it, whose id it returns.
func fixtureWithABatch(t *testing.T) (*fixture, string) {
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	var res struct {
		BatchID string `json:"batch_id"`
	}
	f.api(http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-1"]}`).json(t, &res)
	return f, res.BatchID
}
