package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"net/http"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

// The dashboard loads nothing from elsewhere: its style and its one small
// script are inline, allowed by hash in the Content-Security-Policy.
var (
	//go:embed assets
	assets embed.FS

	dashboardCSS = mustRead("assets/dashboard.css")
	dashboardJS  = mustRead("assets/dashboard.js")
	templates    = template.Must(template.New("").Funcs(template.FuncMap{
		"clock":   clock,
		"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	}).ParseFS(assets, "assets/*.html"))

	// pageCSP allows only the inline style and script above, same-origin
	// fetches and forms, and no framing.
	pageCSP = "default-src 'none'; style-src " + hashSource(dashboardCSS) + "; script-src " + hashSource(dashboardJS) +
		"; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

func mustRead(name string) string {
	b, err := assets.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func hashSource(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// dashboardPage is what dashboard.html renders.
type dashboardPage struct {
	View          instanceView
	App           string
	CSRF          string
	Notice        string
	Status        string
	Busy          bool
	CurrentAge    string
	Grace         string
	Deprovisioned bool
	// LastError is the customer's sentence for the last failure.
	LastError string
	// Limit says when the customer may rotate again, or how much of the
	// day's allowance is used; empty when nothing is worth saying.
	Limit    customerLimit
	Timeline []entry
	Style    template.CSS
	Script   template.JS
}

func (s *server) dashboardData(sess session, v instanceView, events []store.Event, notice string, limit customerLimit) dashboardPage {
	now := s.Now()
	return dashboardPage{View: v, App: sess.App, CSRF: s.csrfToken(sess), Notice: notice,
		Status: statusText(v, now), Busy: busy(v, now), CurrentAge: age(now, v.CurrentSince),
		Grace: s.graceText(v), Deprovisioned: !v.DeprovisionedAt.IsZero(), Timeline: timeline(events),
		LastError: lastError(v), Limit: limit,
		Style: template.CSS(dashboardCSS), Script: template.JS(dashboardJS)}
}

// graceText says how long an old credential stays valid, as the worker
// decides it: the instance's own grace, the Private Space grace, the default.
func (s *server) graceText(v instanceView) string {
	d := s.Grace
	if v.PrivateSpace && s.PrivateSpaceGrace > 0 {
		d = s.PrivateSpaceGrace
	}
	if g, err := time.ParseDuration(v.Grace); err == nil && g > 0 {
		d = g
	}
	if d <= 0 {
		return "a grace period"
	}
	return plainDuration(d)
}

// plainDuration writes 2h as "2 hours" and 90m as "90 minutes".
func plainDuration(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return plural(int(d/time.Hour), "hour")
	case d >= time.Minute:
		return plural(int(d/time.Minute), "minute")
	}
	return plural(int(d.Round(time.Second)/time.Second), "second")
}

// render writes the dashboard.
func (s *server) render(w http.ResponseWriter, data dashboardPage) {
	s.writeHTML(w, http.StatusOK, "dashboard.html", data)
}

// page writes a small page with a title and one message.
func (s *server) page(w http.ResponseWriter, status int, title, message string) {
	s.writeHTML(w, status, "page.html", struct {
		Title, Message string
		Back           bool
		Style          template.CSS
	}{title, message, status != http.StatusUnauthorized, template.CSS(dashboardCSS)})
}

func (s *server) writeHTML(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, name, data); err != nil {
		s.Logger.Error().Err(err).Str("template", name).Msg("render failed")
		http.Error(w, "Something went wrong.", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
