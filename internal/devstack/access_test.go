package devstack

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestDevWebPassesAPIPathsAsTheyCame: a request to rekey dev's web address
// that is not dev's own sign-in reaches the web process as it came, so
// that an API path with empty or dot segments (//api/v1/instances/x,
// /x/../api/v1/...) gets the web process's JSON answer, as under `rekey
// web`, rather than a 307 redirect page that dev's router answered first.
func TestDevWebPassesAPIPathsAsTheyCame(t *testing.T) {
	web := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"path":"`+r.URL.Path+`"}`)
	})
	login := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "login") })
	srv := httptest.NewServer(withLogin(web, login))
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var header http.Header
	get := func(path string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = "//" + req.URL.Host + path // sent as written, not cleaned by the client
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		header = res.Header
		return res.StatusCode, string(body)
	}
	for _, path := range []string{"//api/v1/instances/x", "/x/../api/v1/instances/x", "/api//v1/batches", "/api/v1/./batches"} {
		code, body := get(path)
		if code != http.StatusOK || body != `{"path":"`+path+`"}` {
			t.Errorf("GET %s: %d %s, want the web process's answer for %s", path, code, body, path)
		}
	}
	if code, body := get(LoginPath); code != http.StatusOK || body != "login" {
		t.Errorf("GET %s: %d %s, want dev's sign-in", LoginPath, code, body)
	}
	// The sign-in page holds the run's dashboard password: neither framed
	// nor cached, as every answer of the web process.
	if header.Get("X-Frame-Options") != "DENY" || header.Get("Cache-Control") != "no-store" {
		t.Errorf("GET %s: headers %v, want X-Frame-Options DENY and Cache-Control no-store", LoginPath, header)
	}
	if code, _ := get("/"); code != http.StatusFound || header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("GET /: %d %v, want 302 to %s, not framed", code, header, LoginPath)
	}
	if code, body := get("/api/v1/instances"); code != http.StatusOK || body != `{"path":"/api/v1/instances"}` {
		t.Errorf("GET /api/v1/instances: %d %s", code, body)
	}
}
