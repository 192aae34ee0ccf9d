package e2e

import (
	"crypto/sha1" //nolint:gosec // Heroku's SSO tokens are SHA-1.
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/logging"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/web"
	"github.com/rekeyhq/rekey/tasks"
)

// The web process's own secrets in the secret-leak test.
const (
	leakAPIToken  = "leak-test-api-token-3f0a9c71"
	leakPassword  = "leak-test-operator-pw-77d1"
	leakSSOSalt   = "leak-test-sso-salt-5c2e0b8d"
	monitoringAPI = "/monitoring/api"
)

// webPlaces serves rekey's web handler over the world's store and reads
// what it shows: every instance's dashboard (HTML and status JSON) after
// signing in through SSO, the operators' API view of every instance, and
// asynqmon's JSON API (queues, and the tasks of every queue in every
// state), with the web process's log. Keys name the place.
func (w *world) webPlaces(ids []string) map[string]string {
	w.t.Helper()
	log := &syncBuffer{}
	h, err := web.New(web.Params{Store: w.store, Producer: fleet.NewProducer(w.store, w.queue), Registry: w.reg,
		Inspector: w.insp, Enqueuer: w.queue, APIToken: secret.New(leakAPIToken),
		DashboardPassword: secret.New(leakPassword), SSOSalt: secret.New(leakSSOSalt),
		Grace: testGrace, Logger: logging.New(logging.Options{Service: "web", Level: "debug", Out: log})})
	if err != nil {
		w.t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	var dash, api strings.Builder
	for _, id := range ids {
		c := w.signIn(srv.URL, id, leakSSOSalt)
		dash.WriteString(w.fetch(c, srv.URL+"/dashboard", nil))
		dash.WriteString(w.fetch(c, srv.URL+"/dashboard/status", nil))
		api.WriteString(w.fetch(http.DefaultClient, srv.URL+"/api/v1/instances/"+id, http.Header{"Authorization": {"Bearer " + leakAPIToken}}))
	}
	return map[string]string{
		"dashboard HTML and status":  dash.String(),
		"operators' API":             api.String(),
		"/monitoring API (asynqmon)": w.monitoringText(srv.URL),
		"web log":                    log.String(),
	}
}

// signIn signs in to id's dashboard through Heroku SSO, signed with salt,
// and returns a client holding the session.
func (w *world) signIn(base, id, salt string) *http.Client {
	w.t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		w.t.Fatal(err)
	}
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	sum := sha1.Sum([]byte(id + ":" + salt + ":" + ts)) //nolint:gosec // protocol-defined
	resp, err := c.PostForm(base+"/sso/login", url.Values{"resource_id": {id}, "timestamp": {ts},
		"resource_token": {hex.EncodeToString(sum[:])}, "app": {"app-" + id}})
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/dashboard" {
		w.t.Fatalf("sso login of %s: got %d at %s, want the dashboard", id, resp.StatusCode, resp.Request.URL.Path)
	}
	return c
}

// fetch GETs u and returns the answer's headers and body; anything but 200
// fails the test.
func (w *world) fetch(c *http.Client, u string, h http.Header) string {
	w.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		w.t.Fatalf("GET %s: %d %v: %s", u, resp.StatusCode, err, b)
	}
	return fmt.Sprintf("%v\n%s\n", resp.Header, b)
}

// monitoringText reads asynqmon's JSON API as an operator: the queue list,
// each queue, and its tasks in every state.
func (w *world) monitoringText(base string) string {
	w.t.Helper()
	auth := http.Header{"Authorization": {"Basic " + basicAuth("ops", leakPassword)}}
	get := func(path string) string { return w.fetch(http.DefaultClient, base+monitoringAPI+path, auth) }
	var b strings.Builder
	queues := get("/queues")
	b.WriteString(queues)
	b.WriteString(get("/queue_stats"))
	b.WriteString(get("/servers"))
	for _, q := range []string{tasks.QueueInteractive, tasks.QueueDefault, tasks.QueueBulk, tasks.QueueRevoke} {
		if !strings.Contains(queues, `"`+q+`"`) {
			continue
		}
		b.WriteString(get("/queues/" + q))
		for _, state := range []string{"active", "pending", "scheduled", "retry", "archived", "completed"} {
			b.WriteString(get(fmt.Sprintf("/queues/%s/%s_tasks?page=1&page_size=1000", q, state)))
		}
	}
	return b.String()
}

func basicAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// countTasks says how many tasks the /monitoring answers list, to check
// that the capture holds something.
func countTasks(text string) int {
	n := 0
	for _, line := range strings.Split(text, "\n") {
		var v struct {
			Tasks []json.RawMessage `json:"tasks"`
		}
		if json.Unmarshal([]byte(line), &v) == nil {
			n += len(v.Tasks)
		}
	}
	return n
}
