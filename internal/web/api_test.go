package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/web"
	"github.com/rekeyhq/rekey/tasks"
)

// instanceJSON is the part of GET /api/v1/instances/{id} the tests read.
type instanceJSON struct {
	ID                  string    `json:"id"`
	APIVersion          string    `json:"api_version"`
	ConfigVars          []string  `json:"config_vars"`
	Grace               string    `json:"grace"`
	CurrentCredentialID string    `json:"current_credential_id"`
	DeprovisionedAt     time.Time `json:"deprovisioned_at"`
	PreviousCredentials []struct {
		CredentialID string    `json:"credential_id"`
		RevokeAt     time.Time `json:"revoke_at"`
	} `json:"previous_credentials"`
	InFlightRotation *struct {
		RotationID string `json:"rotation_id"`
		State      string `json:"state"`
		Reason     string `json:"reason"`
		Queue      string `json:"queue"`
	} `json:"in_flight_rotation"`
	LastError      string     `json:"last_error"`
	NextRotationAt *time.Time `json:"next_rotation_at"`
}

// batchJSON is a batch as the API shows it.
type batchJSON struct {
	BatchID  string `json:"batch_id"`
	Total    int    `json:"total"`
	Enqueued int    `json:"enqueued"`
	Joined   int    `json:"joined"`
	Skipped  int    `json:"skipped"`
	InFlight int    `json:"in_flight"`
	Done     bool   `json:"done"`
}

const v3Body = `{"api_version":"v3","config_vars":["MYADDON_URL","MYADDON_KEY"],"grace":"3h","current_credential_id":"cred-0",
	"oauth":{"access_token":"a-tok","refresh_token":"r-tok","expires_at":"2030-01-01T00:00:00Z"}}`

func TestInstanceLifecycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var got instanceJSON
	resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", v3Body)
	resp.json(t, &got)
	if resp.status != http.StatusOK || got.ID != "inst-1" || got.CurrentCredentialID != "cred-0" || got.Grace != "3h0m0s" ||
		!slices.Equal(got.ConfigVars, []string{"MYADDON_URL", "MYADDON_KEY"}) {
		t.Fatalf("register: got %d %+v, want 200 with the registration", resp.status, got)
	}
	if got.InFlightRotation != nil {
		t.Errorf("register: got in_flight_rotation %v, want it left out", got.InFlightRotation)
	}
	if resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", v3Body); resp.status != http.StatusOK {
		t.Errorf("register again: got status %d, want 200 (idempotent)", resp.status)
	}
	f.rotate("inst-1", "rot-1", "cred-1", 3*time.Hour)
	f.api(http.MethodGet, "/api/v1/instances/inst-1", "").json(t, &got)
	if got.CurrentCredentialID != "cred-1" || len(got.PreviousCredentials) != 1 || got.PreviousCredentials[0].CredentialID != "cred-0" ||
		!got.PreviousCredentials[0].RevokeAt.Equal(start.Add(3*time.Hour)) {
		t.Errorf("after a rotation: got %+v, want cred-1 current and cred-0 revoked at start+3h", got)
	}
	resp = f.api(http.MethodDelete, "/api/v1/instances/inst-1", "")
	resp.json(t, &got)
	if resp.status != http.StatusOK || got.DeprovisionedAt.IsZero() {
		t.Errorf("delete: got %d %+v, want 200 with deprovisioned_at", resp.status, got)
	}
	if resp := f.api(http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-1"]}`); resp.status != http.StatusUnprocessableEntity {
		t.Errorf("rotate a deprovisioned instance: got status %d, want 422: %s", resp.status, resp.body)
	}
	// Heroku may retry a provisioning: a registration after a deprovision
	// registers the instance again.
	if resp := f.api(http.MethodPut, "/api/v1/instances/inst-1", v3Body); resp.status >= 300 {
		t.Errorf("register a deprovisioned instance again: got status %d, want 2xx: %s", resp.status, resp.body)
	}
	got = instanceJSON{}
	f.api(http.MethodGet, "/api/v1/instances/inst-1", "").json(t, &got)
	if !got.DeprovisionedAt.IsZero() {
		t.Errorf("registered again: got deprovisioned_at %s, want it cleared", got.DeprovisionedAt)
	}
}

func TestNextRotation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	f.register("inst-2", "cred-0")
	ctx := context.Background()
	if err := f.st.SetSchedule(ctx, "inst-2", store.Schedule{OptOut: true}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id   string
		want bool
	}{
		{"inst-1", true},
		{"inst-2", false},
	}
	// An instance with a maintenance window is told the time the scheduler
	// runs its rotation, inside the window, and the window itself.
	t.Run("window", func(t *testing.T) {
		f.register("inst-3", "cred-0")
		in, err := f.st.Instance(ctx, "inst-3")
		if err != nil {
			t.Fatal(err)
		}
		w, _ := store.ParseWindow(map[bool]string{true: "14-15", false: "02-03"}[in.NextRotationAt.Hour() < 12])
		if err := f.st.SetSchedule(ctx, "inst-3", store.Schedule{Window: &w}); err != nil {
			t.Fatal(err)
		}
		var got struct {
			NextRotationAt time.Time `json:"next_rotation_at"`
			Window         string    `json:"maintenance_window"`
		}
		f.api(http.MethodGet, "/api/v1/instances/inst-3", "").json(t, &got)
		if !w.Contains(got.NextRotationAt) || got.NextRotationAt.Before(in.NextRotationAt) || got.Window != w.String() {
			t.Errorf("next_rotation_at %v, maintenance_window %q; want a time in %s after %v, and the window",
				got.NextRotationAt, got.Window, w, in.NextRotationAt)
		}
	})
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			in, err := f.st.Instance(ctx, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			var got instanceJSON
			f.api(http.MethodGet, "/api/v1/instances/"+tt.id, "").json(t, &got)
			if (got.NextRotationAt != nil) != tt.want || tt.want && !got.NextRotationAt.Equal(in.NextRotationAt) {
				t.Errorf("got next_rotation_at %v, want %v (shown: %v)", got.NextRotationAt, in.NextRotationAt, tt.want)
			}
		})
	}
}

// The next rotation an instance without a window of its own is told keeps
// to the window the running clocks announce, as they schedule it, not to
// the web process's own REKEY_MAINTENANCE_WINDOW, which an operator may
// have left unset or stale there.
func TestNextRotationKeepsToTheClocksWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	own := new(store.Window) // the web process's, set below
	f := newFixture(t, func(p *web.Params) { p.Window = own })
	f.register("inst-1", "cred-0")
	in, err := f.st.Instance(ctx, "inst-1")
	if err != nil {
		t.Fatal(err)
	}
	// The clock's window and the web process's are both away from the
	// time the next rotation falls at without one.
	early := in.NextRotationAt.Hour() >= 12
	clock, _ := store.ParseWindow(map[bool]string{true: "02-03", false: "14-15"}[early])
	*own, _ = store.ParseWindow(map[bool]string{true: "05-06", false: "17-18"}[early])
	if err := f.st.AnnounceSharedSettings(ctx, "clock.1",
		"REKEY_HEROKU_RATE=4000 "+store.WindowSetting+"="+clock.String(), time.Minute); err != nil {
		t.Fatal(err)
	}
	var one struct {
		NextRotationAt time.Time `json:"next_rotation_at"`
	}
	f.api(http.MethodGet, "/api/v1/instances/inst-1", "").json(t, &one)
	var list struct {
		Instances []struct {
			NextRotationAt time.Time `json:"next_rotation_at"`
		} `json:"instances"`
	}
	f.api(http.MethodGet, "/api/v1/instances", "").json(t, &list)
	if !clock.Contains(one.NextRotationAt) || len(list.Instances) != 1 || !list.Instances[0].NextRotationAt.Equal(one.NextRotationAt) {
		t.Errorf("next_rotation_at %v, listed %+v; want a time in the clock's window %s (the web process has %s)",
			one.NextRotationAt, list.Instances, clock, *own)
	}
}

func TestRegisterWithGrant(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	code, tok := f.registerWithGrant("inst-1")
	if tok.AccessToken.IsZero() || tok.RefreshToken.IsZero() {
		t.Fatalf("got token %+v, want the exchanged tokens stored", tok)
	}
	body := `{"api_version":"v3","config_vars":["MYADDON_URL"],"oauth_grant":{"code":"` + code + `"}}`
	resp := f.api(http.MethodPut, "/api/v1/instances/inst-2", body)
	if resp.status != http.StatusUnprocessableEntity || !strings.Contains(resp.body, "oauth_grant") {
		t.Errorf("reused grant: got %d %s, want 422 naming oauth_grant", resp.status, resp.body)
	}
	if _, err := f.st.Instance(context.Background(), "inst-2"); err == nil {
		t.Error("reused grant: got the instance stored, want nothing stored")
	}
}

func TestRotations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		body      string
		wantQueue string
		want      batchJSON
	}{
		{name: "one instance", body: `{"instance_ids":["inst-1"]}`, wantQueue: tasks.QueueInteractive,
			want: batchJSON{Total: 1, Enqueued: 1, InFlight: 1}},
		{name: "one instance named twice", body: `{"instance_ids":["inst-1","inst-1"]}`, wantQueue: tasks.QueueInteractive,
			want: batchJSON{Total: 1, Enqueued: 1, InFlight: 1}},
		{name: "a list", body: `{"instance_ids":["inst-1","inst-2"],"reason":"leak","grace":"30m"}`, wantQueue: tasks.QueueDefault,
			want: batchJSON{Total: 2, Enqueued: 2, InFlight: 2}},
		{name: "the whole fleet", body: `{"all":true}`, wantQueue: tasks.QueueBulk,
			want: batchJSON{Total: 3, Enqueued: 3, InFlight: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			for _, id := range []string{"inst-1", "inst-2", "inst-3"} {
				f.register(id, "cred-0")
			}
			var got batchJSON
			resp := f.api(http.MethodPost, "/api/v1/rotations", tt.body)
			resp.json(t, &got)
			if resp.status != http.StatusAccepted || got.Enqueued != tt.want.Enqueued || got.Joined != 0 || got.BatchID == "" {
				t.Fatalf("got %d %s, want 202 with %d enqueued", resp.status, resp.body, tt.want.Enqueued)
			}
			if q := f.queued(tt.wantQueue); len(q) != tt.want.Enqueued {
				t.Errorf("got %v queued on %s, want %d tasks", q, tt.wantQueue, tt.want.Enqueued)
			}
			var batch batchJSON
			f.api(http.MethodGet, "/api/v1/batches/"+got.BatchID, "").json(t, &batch)
			tt.want.BatchID = got.BatchID
			if batch != tt.want {
				t.Errorf("got batch %+v, want %+v", batch, tt.want)
			}
			f.api(http.MethodPost, "/api/v1/rotations", tt.body).json(t, &got)
			if got.Joined != tt.want.Enqueued || got.Enqueued != 0 {
				t.Errorf("repeated request: got %+v, want every instance joined", got)
			}
		})
	}
}

// GET /api/v1/batches lists batches newest first as GET
// /api/v1/batches/{id} shows each, running=true only those not done, and
// pages with limit and before.
func TestListBatches(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	f.register("inst-2", "cred-0")
	var first, second batchJSON
	f.api(http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-1"],"reason":"one"}`).json(t, &first)
	f.rotate("inst-2", "rot-x", "cred-1", 2*time.Hour)
	f.clock.Advance(time.Second) // batches of one millisecond list in no set order
	f.api(http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-2"],"skip_if_previous":true}`).json(t, &second)
	if first.BatchID == "" || second.BatchID == "" || second.Skipped != 1 {
		t.Fatalf("batches %+v and %+v, want the second skipped and so done", first, second)
	}
	list := func(query string) []batchJSON {
		t.Helper()
		var got struct{ Batches []batchJSON }
		resp := f.api(http.MethodGet, "/api/v1/batches"+query, "")
		if resp.status != http.StatusOK {
			t.Fatalf("GET /api/v1/batches%s: %d %s", query, resp.status, resp.body)
		}
		resp.json(t, &got)
		return got.Batches
	}
	var one batchJSON
	f.api(http.MethodGet, "/api/v1/batches/"+first.BatchID, "").json(t, &one)
	if got := list(""); len(got) != 2 || got[0].BatchID != second.BatchID || got[1] != one {
		t.Errorf("list = %+v, want %s then %+v", got, second.BatchID, one)
	}
	if got := list("?running=true"); len(got) != 1 || got[0].BatchID != first.BatchID {
		t.Errorf("running = %+v, want only %s", got, first.BatchID)
	}
	if got := list("?limit=1"); len(got) != 1 || got[0].BatchID != second.BatchID {
		t.Errorf("limit=1: %+v, want %s", got, second.BatchID)
	}
	if got := list("?limit=1&before=" + second.BatchID); len(got) != 1 || got[0].BatchID != first.BatchID {
		t.Errorf("before the second: %+v, want %s", got, first.BatchID)
	}
	resp := f.api(http.MethodGet, "/api/v1/batches?before="+first.BatchID, "")
	if resp.status != http.StatusOK || !strings.Contains(resp.body, `"batches":[]`) {
		t.Errorf("past the oldest: %d %s, want 200 with an empty list", resp.status, resp.body)
	}
}

func TestRotationSkipIfPrevious(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	f.rotate("inst-1", "rot-1", "cred-1", 2*time.Hour)
	var got batchJSON
	f.api(http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-1"],"skip_if_previous":true}`).json(t, &got)
	if got.Skipped != 1 || got.Enqueued != 0 {
		t.Errorf("got %+v, want the instance skipped while its old credential waits", got)
	}
}

func TestAPIErrorsAreJSON(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, "/api/v1/instances/inst-1", http.StatusMethodNotAllowed},
		{http.MethodGet, "/api/v1/rotations", http.StatusMethodNotAllowed},
		{http.MethodGet, "/api/v2/instances/inst-1", http.StatusNotFound},
		{http.MethodGet, "/api/v1/instances/inst-unknown", http.StatusNotFound},
		{http.MethodDelete, "/api/v1/instances/inst-unknown", http.StatusNotFound},
		{http.MethodGet, "/api/v1/batches/bat_unknown", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp := f.api(tt.method, tt.path, "")
			var e struct{ Error string }
			resp.json(t, &e)
			if resp.status != tt.want || e.Error == "" {
				t.Errorf("got %d %s, want %d with an error sentence", resp.status, resp.body, tt.want)
			}
		})
	}
}

// A route with a slash after it (a base URL joined with a trailing slash)
// is answered 400 naming the route, never 404: a DELETE's 404 says rekey
// holds no such instance, which a deprovisioning takes as done while the
// instance stays live and rotating.
func TestAPIRouteWithATrailingSlashIsNoNotFound(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	for _, c := range []struct{ method, path string }{
		{http.MethodDelete, "/api/v1/instances/inst-1/"},
		{http.MethodPost, "/api/v1/rotations/"},
		{http.MethodGet, "/api/v1/instances/"},
	} {
		resp := f.api(c.method, c.path, "")
		var e struct{ Error string }
		resp.json(t, &e)
		if resp.status != http.StatusBadRequest || !strings.Contains(e.Error, "without the slash") {
			t.Errorf("%s %s: got %d %s; want 400 naming the route without the slash", c.method, c.path, resp.status, resp.body)
		}
	}
	var got instanceJSON
	if resp := f.api(http.MethodGet, "/api/v1/instances/inst-1", ""); resp.status != http.StatusOK {
		t.Fatalf("GET inst-1: %d %s", resp.status, resp.body)
	} else if resp.json(t, &got); !got.DeprovisionedAt.IsZero() {
		t.Fatalf("inst-1 after the DELETE with a slash: %s; want it live", resp.body)
	}
}

// TestAPIMethodNotAllowedNamesHEAD: the API's 405 names every method the
// path serves, HEAD included wherever GET is, and each of them is served.
func TestAPIMethodNotAllowedNamesHEAD(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	resp := f.api(http.MethodPost, "/api/v1/instances/inst-1", "")
	if want := "GET, HEAD, PUT, DELETE"; resp.status != http.StatusMethodNotAllowed || resp.header.Get("Allow") != want {
		t.Fatalf("POST /api/v1/instances/inst-1: got %d with Allow %q, want 405 with Allow: %s", resp.status, resp.header.Get("Allow"), want)
	}
	if head := f.api(http.MethodHead, "/api/v1/instances/inst-1", ""); head.status != http.StatusOK {
		t.Errorf("HEAD /api/v1/instances/inst-1: got %d, want 200, as the Allow header says", head.status)
	}
}

// TestAPIPathsTheMuxWouldRedirectAreAnsweredInJSON: /api, and paths that
// clean to /api/... (a doubled slash, dot segments before /api), are API
// requests: answered in JSON after the token is checked (401 without it),
// never with the mux's redirect page.
func TestAPIPathsTheMuxWouldRedirectAreAnsweredInJSON(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	tests := []struct {
		path string
		want int // with the token
	}{
		{"/api", http.StatusNotFound},
		{"//api/v1/instances/inst-1", http.StatusBadRequest},
		{"//api", http.StatusBadRequest},
		{"/dashboard/../api/v1/batches", http.StatusBadRequest},
		{"/./api/v1/instances/inst-1", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			for _, c := range []struct {
				name   string
				header http.Header
				want   int
			}{
				{"without the token", http.Header{}, http.StatusUnauthorized},
				{"with the token", http.Header{"Authorization": {"Bearer " + apiToken}}, tt.want},
			} {
				resp := f.do(http.MethodGet, tt.path, nil, c.header)
				var e struct{ Error string }
				if !strings.HasPrefix(resp.header.Get("Content-Type"), "application/json") ||
					json.Unmarshal([]byte(resp.body), &e) != nil || resp.status != c.want || e.Error == "" {
					t.Errorf("%s: got %d %q Location=%q %q; want %d with a JSON error", c.name, resp.status,
						resp.header.Get("Content-Type"), resp.header.Get("Location"), strings.TrimSpace(resp.body), c.want)
				}
			}
		})
	}
}
