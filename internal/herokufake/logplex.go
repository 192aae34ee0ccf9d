package herokufake

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/rekeyhq/rekey/internal/logplex"
)

// logInputs is the fake's Logplex input: one token per app, and the lines
// written with it, per app. Heroku hands an add-on the app's log_input_url
// at provisioning; the URL carries the token as basic auth.
type logInputs struct {
	mu      sync.Mutex
	byToken map[string]string   // token -> app
	lines   map[string][]string // app -> messages, oldest first
	refused int                 // requests without a known token or frame
}

// LogInputURL returns the log_input_url of the add-on's owning app, at base
// (the fake's own address, such as an httptest server's URL), minting the
// app's token on first use. It returns "" for an unknown add-on.
func (f *Fake) LogInputURL(base, addonID string) string {
	f.mu.Lock()
	a, ok := f.addons[addonID]
	f.mu.Unlock()
	if !ok {
		return ""
	}
	token := f.logs.token(a.spec.App)
	scheme, host, _ := strings.Cut(base, "://")
	return scheme + "://token:" + token + "@" + strings.TrimRight(host, "/") + "/logs"
}

// LogLines returns the messages written to an app's log stream, oldest
// first.
func (f *Fake) LogLines(app string) []string {
	f.logs.mu.Lock()
	defer f.logs.mu.Unlock()
	return append([]string(nil), f.logs.lines[app]...)
}

// LogRefused counts log writes refused for a bad token or body.
func (f *Fake) LogRefused() int {
	f.logs.mu.Lock()
	defer f.logs.mu.Unlock()
	return f.logs.refused
}

func (l *logInputs) token(app string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byToken == nil {
		l.byToken, l.lines = map[string]string{}, map[string][]string{}
	}
	for t, a := range l.byToken {
		if a == app {
			return t
		}
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	t := "t." + hex.EncodeToString(b)
	l.byToken[t] = app
	return t
}

// logplexRoutes serves the Logplex input and its admin reader:
//
//	POST /logs                    basic auth token:<token>, application/logplex-1 -> 204
//	GET  /_fake/logs/{app}        -> {"lines":["..."]}
func (f *Fake) logplexRoutes() {
	f.mux.HandleFunc("POST /logs", f.logWrite)
	f.mux.HandleFunc("GET /_fake/logs/{app}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string][]string{"lines": f.LogLines(r.PathValue("app"))})
	})
}

func (f *Fake) logWrite(w http.ResponseWriter, r *http.Request) {
	user, token, ok := r.BasicAuth()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var lines []string
	if err == nil && r.Header.Get("Content-Type") == logplex.ContentType {
		lines, err = logplex.Parse(body)
	}
	f.logs.mu.Lock()
	defer f.logs.mu.Unlock()
	app, known := f.logs.byToken[token]
	if !ok || user != "token" || !known || err != nil || len(lines) == 0 {
		f.logs.refused++
		http.Error(w, "refused", http.StatusUnauthorized)
		return
	}
	f.logs.lines[app] = append(f.logs.lines[app], lines...)
	w.WriteHeader(http.StatusNoContent)
}

// AppOf returns the app that owns an add-on; "" when unknown.
func (f *Fake) AppOf(addonID string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.addons[addonID]; ok {
		return a.spec.App
	}
	return ""
}
