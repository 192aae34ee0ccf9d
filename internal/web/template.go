package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/health"
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
		"fromNow": fromNow,
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

// dashboardPage is what dashboard.html renders. It holds only what a
// customer may read (customer.go): ids, times, names and fixed sentences,
// never an error's text or an operator's reason, so no template can show
// them by mistake. Each section of the page is a template of its own
// (assets/section_*.html), listed once in dashboard.html.
type dashboardPage struct {
	Nav navHeader
	// AddonID is the instance's id, for a support request.
	AddonID string
	// ConfigVars are the names of the config vars a rotation sets.
	ConfigVars []string
	Notice     string
	Status     string
	Busy       bool
	CurrentID  string
	CurrentAge string
	// StatusUntil is the time Status counts down to, zero when it names
	// none; StatusBefore and StatusAfter are Status around the count
	// (fromNow), which the page's script keeps current (data-until).
	StatusUntil               time.Time
	StatusBefore, StatusAfter string
	// InFlightID and InFlightAt are the rotation under way, if any.
	InFlightID string
	InFlightAt time.Time
	// LastError is the customer's sentence for the last failure.
	LastError    string
	LastErrorAt  time.Time
	NextRotation string
	Grace        string
	// Rules says the customer's limits on rotations as sentences; empty
	// when there are none.
	Rules string
	// Limit says when the customer may rotate again, or how much of the
	// day's allowance is used; empty when nothing is worth saying.
	Limit         customerLimit
	Deprovisioned bool
	CSRF          string
	Previous      []previousView
	// Unconfirmed are credentials kept valid because Heroku may hold them
	// (store.Unconfirmed).
	Unconfirmed []store.UnconfirmedCredential
	// Holds are the customer's sentences for old credentials whose
	// revocation waits because they are still in use.
	Holds []string
	// Timeline is the instance's last steps, oldest first.
	Timeline []entry
	Style    template.CSS
	Script   template.JS
	// Now is when the page was drawn, for the times it says from now.
	Now time.Time
}

func (s *server) dashboardData(sess session, v instanceView, events []store.Event, notice string, limit customerLimit) dashboardPage {
	now := s.Now()
	csrf := s.csrfToken(sess)
	p := dashboardPage{Nav: s.nav(sess, csrf), AddonID: v.ID, ConfigVars: v.ConfigVars, Notice: notice,
		Status: statusText(v, now), Busy: busy(v, now), CurrentID: v.CurrentCredentialID,
		CurrentAge: age(now, v.CurrentSince), InFlightID: v.InFlightRotationID,
		LastError: lastError(v), LastErrorAt: v.LastErrorAt, NextRotation: nextRotation(v),
		Grace: s.graceText(v), Rules: s.rules(v), Limit: limit, Deprovisioned: !v.DeprovisionedAt.IsZero(),
		CSRF: csrf, Previous: v.PreviousCredentials, Unconfirmed: v.UnconfirmedCredentials, Timeline: timeline(events),
		Style: template.CSS(dashboardCSS), Script: template.JS(dashboardJS), Now: now}
	if r := v.InFlightRotation; r != nil {
		p.InFlightID, p.InFlightAt = r.RotationID, r.RequestedAt
	}
	if text, until := status(v, now); !until.IsZero() {
		if before, after, ok := strings.Cut(text, fromNow(now, until)); ok {
			p.StatusUntil, p.StatusBefore, p.StatusAfter = until, before, after
		}
	}
	for _, h := range v.Holds {
		p.Holds = append(p.Holds, h.Sentence)
	}
	return p
}

// nav is the navigation header of a signed-in page, with its sign-out button.
func (s *server) nav(sess session, csrf string) navHeader {
	h := newNavHeader(sess.Addon, sess.App)
	h.CSRF, h.InstanceID = csrf, sess.InstanceID
	return h
}

// nextRotation says when the schedule rotates the instance next.
func nextRotation(v instanceView) string {
	switch {
	case !v.QuarantinedAt.IsZero():
		return "Paused after repeated failures; a successful rotation here resumes it"
	case v.ScheduleOptOut:
		return "Not scheduled (opted out)"
	case v.InFlightRotationID != "":
		return "Set when the rotation in progress finishes"
	case v.NextRotationAt.IsZero():
		return "Not scheduled"
	}
	return clock(v.NextRotationAt)
}

// grace is how long an old credential of v stays valid, as the worker
// decides it: the instance's own grace, the Private Space grace, the
// default, lowered to the ceiling (an instance registered before it may
// hold a longer grace); zero when none is configured.
func (s *server) grace(v instanceView) time.Duration {
	d := s.Grace
	if v.PrivateSpace && s.PrivateSpaceGrace > 0 {
		d = s.PrivateSpaceGrace
	}
	if g, err := time.ParseDuration(v.Grace); err == nil && g > 0 {
		d = g
	}
	if s.MaxGrace > 0 {
		d = min(d, s.MaxGrace)
	}
	return d
}

// graceText says the grace for people.
func (s *server) graceText(v instanceView) string {
	d := s.grace(v)
	if d <= 0 {
		return "a grace period"
	}
	return plainDuration(d)
}

// plainDuration writes a duration exactly, in the largest units that
// add up to it: 2h is "2 hours", 90s "1 minute 30 seconds", 90m "1 hour 30
// minutes". A grace is never rounded, so the page never promises an old
// credential more time than it has.
func plainDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d < time.Second {
		return "less than a second"
	}
	var parts []string
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}} {
		if n := d / u.d; n > 0 {
			parts = append(parts, plural(int(n), u.name))
			d -= n * u.d
		}
	}
	return strings.Join(parts, " ")
}

// render writes the dashboard.
func (s *server) render(w http.ResponseWriter, data dashboardPage) {
	s.writeHTML(w, http.StatusOK, "dashboard.html", data)
}

// pageData is what page.html renders: a title and one fixed sentence.
type pageData struct {
	Title, Message string
	// Back offers the way back to the dashboard.
	Back  bool
	Nav   navHeader
	Style template.CSS
}

// page writes a small page with a title and one message. A signed-in
// customer's page keeps the navigation header with its names and sign-out
// button, and a way back to the dashboard.
func (s *server) page(w http.ResponseWriter, r *http.Request, status int, title, message string) {
	p := pageData{Title: title, Message: message, Style: template.CSS(dashboardCSS)}
	if sess, ok := r.Context().Value(sessionCtxKey{}).(session); ok {
		p.Back, p.Nav = true, s.nav(sess, s.csrfToken(sess))
	}
	s.writeHTML(w, status, "page.html", p)
}

// failed logs err, which kept rekey from serving a dashboard request, and
// answers with failedPage.
func (s *server) failed(w http.ResponseWriter, r *http.Request, err error, message string) {
	s.Logger.Error().Err(err).Str("route", r.Pattern).Msg("request failed")
	s.failedPage(w, r, err, message)
}

// failedPage answers a dashboard request that err kept rekey from serving
// with a page saying message: 503 with Retry-After when Redis did not
// answer (a failover, a restart: the same request may succeed in a
// moment, and the API answers so then), 500 otherwise.
func (s *server) failedPage(w http.ResponseWriter, r *http.Request, err error, message string) {
	status := http.StatusInternalServerError
	if health.RedisUnreachable(err) {
		w.Header().Set("Retry-After", "30")
		status = http.StatusServiceUnavailable
	}
	s.page(w, r, status, "Something went wrong", message)
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
