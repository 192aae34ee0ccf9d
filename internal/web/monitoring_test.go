package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/web"
	"github.com/rekeyhq/rekey/tasks"
)

func TestMonitoringIsReadOnlyForOperators(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	f.api(http.MethodPost, "/api/v1/rotations", `{"instance_ids":["inst-1"],"reason":"free text stays hidden"}`)
	ops := http.Header{"Authorization": {basic("anyone", dashPassword)}}
	tests := []struct {
		method, path string
		want         int
		wantIn       string
	}{
		{http.MethodGet, "/monitoring", http.StatusOK, "<!doctype html>"},
		{http.MethodGet, "/monitoring/", http.StatusOK, "<!doctype html>"},
		{http.MethodGet, "/monitoring/api/queues", http.StatusOK, `"queue":"interactive"`},
		{http.MethodGet, "/monitoring/api/queues/interactive/pending_tasks", http.StatusOK, `"payload":"instance_id=inst-1 rotation_id=rot_`},
		{http.MethodPost, "/monitoring/api/queues/interactive:pause", http.StatusMethodNotAllowed, "read only"},
		{http.MethodDelete, "/monitoring/api/queues/interactive", http.StatusMethodNotAllowed, "read only"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp := f.do(tt.method, tt.path, nil, ops)
			if resp.status != tt.want || !strings.Contains(resp.body, tt.wantIn) {
				t.Errorf("got %d %.300s, want %d containing %q", resp.status, resp.body, tt.want, tt.wantIn)
			}
			if strings.Contains(resp.body, "free text stays hidden") {
				t.Error("monitoring shows the free-text reason, want ids only")
			}
		})
	}
	if paused, _ := f.insp.GetQueueInfo(tasks.QueueInteractive); paused == nil || paused.Paused {
		t.Errorf("got queue info %+v, want the queue running", paused)
	}
}

// TestMonitoringMethodNotAllowedNamesAllow: RFC 9110 §15.5.6 says a 405
// MUST carry an Allow header, so a client (or an operator with curl -i)
// is told that GET and HEAD work on read-only monitoring.
func TestMonitoringMethodNotAllowedNamesAllow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ops := http.Header{"Authorization": {basic("anyone", dashPassword)}}
	for _, p := range []string{"/monitoring", "/monitoring/api/queues/interactive:pause"} {
		resp := f.do(http.MethodPost, p, nil, ops)
		if resp.status != http.StatusMethodNotAllowed || resp.header.Get("Allow") != "GET, HEAD" {
			t.Errorf("POST %s: got %d with Allow %q, want 405 with Allow: GET, HEAD", p, resp.status, resp.header.Get("Allow"))
		}
	}
}

func TestMonitoringPayloads(t *testing.T) {
	t.Parallel()
	rotate, _ := tasks.NewRotateTask(tasks.RotatePayload{InstanceID: "inst-1", RotationID: "rot-1", Reason: "secret-ish text"})
	revoke, _ := tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: "inst-1", CredentialID: "cred-0"}, start)
	tests := []struct {
		name    string
		task    *asynq.Task
		want    string
		typName string
	}{
		{name: "rotate", task: rotate, want: "instance_id=inst-1 rotation_id=rot-1"},
		{name: "revoke", task: revoke, want: "instance_id=inst-1 credential_id=cred-0"},
		{name: "not JSON", task: asynq.NewTask(tasks.TypeRotate, []byte("password=hunter2")), want: "[unparseable payload]"},
		{name: "missing ids", task: asynq.NewTask(tasks.TypeRevoke, []byte(`{"instance_id":"inst-1"}`)), want: "[unparseable payload]"},
		{name: "unknown type", task: asynq.NewTask("other:task", []byte(`{"token":"x"}`)), want: "[unparseable payload]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := web.FormatPayload(tt.task.Type(), tt.task.Payload()); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHealthAndMetrics(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	noMetrics := newFixture(t, func(p *web.Params) { p.Metrics = nil })
	tests := []struct {
		name   string
		f      *fixture
		path   string
		header http.Header
		want   int
		body   string
	}{
		{name: "health is open", f: f, path: "/healthz", want: http.StatusOK, body: `{"status":"ok"}` + "\n"},
		{name: "metrics with the api token", f: f, path: "/metrics", header: http.Header{"Authorization": {"Bearer " + apiToken}}, want: http.StatusOK, body: "rekey_up 1\n"},
		{name: "metrics with the operators' password", f: f, path: "/metrics", header: http.Header{"Authorization": {basic("x", dashPassword)}}, want: http.StatusOK, body: "rekey_up 1\n"},
		{name: "metrics without credentials", f: f, path: "/metrics", want: http.StatusUnauthorized},
		{name: "no metrics handler", f: noMetrics, path: "/metrics", header: http.Header{"Authorization": {"Bearer " + apiToken}}, want: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := tt.f.do(http.MethodGet, tt.path, nil, tt.header)
			if resp.status != tt.want || tt.body != "" && resp.body != tt.body {
				t.Errorf("got %d %q, want %d %q", resp.status, resp.body, tt.want, tt.body)
			}
		})
	}
}

func TestHealthWhenRedisIsDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if err := f.st.Redis().Close(); err != nil {
		t.Fatal(err)
	}
	resp := f.do(http.MethodGet, "/healthz", nil, nil)
	want := `{"error":"Redis is unreachable; rekey keeps retrying","status":"unavailable"}` + "\n"
	if resp.status != http.StatusServiceUnavailable || resp.body != want {
		t.Errorf("got %d %q, want 503 unavailable", resp.status, resp.body)
	}
}

func TestNewRefusesMissingSecrets(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var zeroSecret secret.String
	tests := []struct {
		name string
		edit func(*web.Params)
	}{
		{"no api token", func(p *web.Params) { p.APIToken = zeroSecret }},
		{"no dashboard password", func(p *web.Params) { p.DashboardPassword = zeroSecret }},
		{"no sso salt", func(p *web.Params) { p.SSOSalt = zeroSecret }},
		{"no store", func(p *web.Params) { p.Store = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := f.params
			tt.edit(&p)
			if _, err := web.New(p); err == nil {
				t.Error("got no error, want New to refuse")
			}
		})
	}
}

// /monitoring may not be framed (clickjacking an operator's session) nor
// kept in a cache, like every other answer; its CSP says only that, since
// asynqmon loads its own scripts.
func TestMonitoringIsNotFramedNorCached(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ops := http.Header{"Authorization": {basic("anyone", dashPassword)}}
	for _, path := range []string{"/monitoring", "/monitoring/", "/monitoring/api/queues", "/monitoring/queues/interactive"} {
		resp := f.do(http.MethodGet, path, nil, ops)
		h := resp.header
		if resp.status != http.StatusOK || h.Get("X-Frame-Options") != "DENY" ||
			h.Get("Content-Security-Policy") != "frame-ancestors 'none'" || h.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: %d, X-Frame-Options %q, CSP %q, Cache-Control %q; want DENY, frame-ancestors 'none', no-store",
				path, resp.status, h.Get("X-Frame-Options"), h.Get("Content-Security-Policy"), h.Get("Cache-Control"))
		}
	}
}
