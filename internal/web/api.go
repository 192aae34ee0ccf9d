package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/health"
	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/store"
)

// apiTimeout bounds the work of one registration or deprovisioning, which
// may wait for Heroku's OAuth endpoint.
const apiTimeout = 2 * time.Minute

// pathID returns the path value name if it is a usable id, or writes 400.
func pathID(w http.ResponseWriter, r *http.Request, name string) (string, bool) {
	id := r.PathValue(name)
	if !store.ValidID(id) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s %q is not valid: use 1 to 128 letters, digits, '-', '_', '.', '@', not dots alone", name, clipID(id)))
		return "", false
	}
	return id, true
}

// noQuery answers 400 for a request to a route that reads no query
// parameter and carries one: dropped without a word, a ?dry_run=true
// would have a change applied in full, and a ?code=... filter a list
// answered whole, as the lists refuse a parameter they do not take.
func noQuery(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.RawQuery == "" || cacheBusterOnly(r) {
		return true
	}
	name, _, _ := strings.Cut(r.URL.RawQuery, "&")
	name, _, _ = strings.Cut(name, "=")
	if n, err := url.QueryUnescape(name); err == nil {
		name = n
	}
	after := ": send its fields in the JSON body; nothing was changed"
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		after = ""
	}
	writeError(w, http.StatusBadRequest, fmt.Sprintf("%s %s takes no query parameters (got %q)%s", r.Method, r.URL.Path, clipID(name), after))
	return false
}

// putInstance registers or updates an instance: PUT /api/v1/instances/{addon_id}.
func (s *server) putInstance(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) {
		return
	}
	id, ok := pathID(w, r, "addon_id")
	if !ok {
		return
	}
	var in registry.Input
	if err := decodeBody(w, r, maxInstanceBody, &in); err != nil {
		s.writeBodyError(w, err)
		return
	}
	if in.ID != "" && in.ID != id {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("field \"id\" (%q) does not match the addon_id in the path", clipID(in.ID)))
		return
	}
	in.ID = id
	ctx, cancel := requestContext(r, apiTimeout)
	defer cancel()
	if err := s.Registry.Put(ctx, in); err != nil {
		s.writeRegistryError(w, r, err)
		return
	}
	s.writeInstance(w, r, id)
}

// writeRegistryError answers a failed registration: the input's fault,
// Heroku refusing the grant, Heroku unreachable, the grant spent but the
// registration not stored, the registration stored but not its log input
// URL or database, another registration with the same grant still under
// way, or rekey's own failure. Each answer says what
// happened: a spent grant is never reported as "nothing happened".
func (s *server) writeRegistryError(w http.ResponseWriter, r *http.Request, err error) {
	var spent *registry.GrantSpentError
	if errors.As(err, &spent) {
		s.writeGrantSpent(w, r, spent)
		return
	}
	var incomplete *registry.IncompleteError
	if errors.As(err, &incomplete) {
		s.Logger.Error().Err(incomplete.Err).Str("instance_id", incomplete.ID).Str("route", r.Pattern).Msg("instance registered, log input or database not stored")
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("instance %s and its tokens were stored, but its log_input_url, database location or current_config fingerprint was not; "+
			"send the same request again (an oauth_grant it carries is not exchanged again)", incomplete.ID))
		return
	}
	var input *registry.InputError
	if errors.As(err, &input) {
		writeError(w, http.StatusUnprocessableEntity, input.Error()+"; nothing was stored")
		return
	}
	if errors.Is(err, registry.ErrStopping) {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "rekey is restarting: the oauth_grant was not exchanged and nothing was stored, send the same request again")
		return
	}
	if errors.Is(err, registry.ErrGrantBusy) {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "a registration of this instance with the same oauth_grant is still being stored; nothing was stored by this one, try again")
		return
	}
	if exchange := (*registry.ExchangeError)(nil); errors.As(err, &exchange) && errors.Is(err, heroku.ErrGrantWithoutRefreshToken) {
		// Heroku took the code: sending it again is refused (invalid_grant).
		writeError(w, http.StatusBadGateway, fmt.Sprintf("the oauth_grant of %s was exchanged with Heroku, but the answer carried no "+
			"refresh_token, so its tokens could not be renewed after about 8 hours; nothing was stored and the grant cannot be "+
			"used again: re-provision the add-on, or send \"oauth\" with tokens you hold", exchange.ID))
		return
	}
	if errors.Is(err, heroku.ErrUnexpectedAnswer) {
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusServiceUnavailable, "the answer to the oauth_grant exchange was not Heroku's (is HEROKU_ID_URL Heroku's?); nothing was stored, try again")
		return
	}
	if errors.Is(err, heroku.ErrNotConfigured) {
		writeError(w, http.StatusServiceUnavailable, "the web process cannot exchange oauth_grant codes: HEROKU_OAUTH_CLIENT_SECRET is not set; nothing was stored")
		return
	}
	// A wrong client secret is refused before the code is looked at: the
	// code is still good, and re-provisioning would meet the same refusal.
	if exchange := (*registry.ExchangeError)(nil); errors.As(err, &exchange) && heroku.ClientRefused(exchange.Err) {
		s.Logger.Error().Err(err).Str("route", r.Pattern).
			Str("fix", "set HEROKU_OAUTH_CLIENT_SECRET to the add-on's OAuth client secret").Msg("oauth_client_refused")
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusServiceUnavailable, "Heroku refused rekey's OAuth client, not the oauth_grant: "+err.Error()+
			"; the code was not used and nothing was stored. rekey's HEROKU_OAUTH_CLIENT_SECRET is not the add-on's client "+
			"secret: once its operators fix it, send the same request again before the code expires (about 5 minutes after "+
			"it was issued)")
		return
	}
	// Only the exchange's own answer is Heroku's: anything else is rekey's
	// storage failing before or after it.
	class := heroku.ClassNone
	if exchange := (*registry.ExchangeError)(nil); errors.As(err, &exchange) {
		class = heroku.Classify(exchange.Err)
	}
	switch {
	case class == heroku.ClassPermanent, class == heroku.ClassUnauthorized, class == heroku.ClassGone:
		writeError(w, http.StatusUnprocessableEntity, "Heroku refused the oauth_grant: "+err.Error()+"; nothing was stored. "+
			"Codes are single use (one already exchanged, or sent again after an answer was lost, is refused) and expire "+
			"about 5 minutes after they are issued, so this one cannot be used again: re-provision the add-on for a new grant, "+
			"or send \"oauth\" with tokens you hold (an instance already registered keeps its own)")
	case class == heroku.ClassRateLimited, class == heroku.ClassTransient && heroku.Refused(err):
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusServiceUnavailable, "Heroku could not be reached to exchange the oauth_grant; nothing was stored, try again")
	case class != heroku.ClassNone && answerLost(err):
		// A 408, a 5xx, an answer cut short or none: Heroku may have
		// taken the code before its answer was lost, and takes it once.
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusServiceUnavailable, "Heroku's answer to the oauth_grant exchange was lost (a timeout, a server error, "+
			"an answer cut short or no connection); nothing was stored. Send the same request again now, before the code expires "+
			"(about 5 minutes after it was issued); but the code may already have been used at Heroku, which takes a code once: "+
			"if Heroku then refuses it, re-provision the add-on for a new grant, or send \"oauth\" with tokens you hold")
	default:
		s.Logger.Error().Err(err).Str("op", "register instance").Str("route", r.Pattern).Msg("request failed")
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusServiceUnavailable, "rekey could not complete the registration; nothing was stored, try again (the operators have the details in the log)")
	}
}

// answerLost reports whether a call reached, or may have reached, Heroku
// without rekey reading its answer: a 408 or a 5xx (heroku.Refused), no
// answer or one cut short, or the wait for it given up. What the call
// asked may have been done.
func answerLost(err error) bool {
	var api *heroku.APIError
	var transport *heroku.TransportError
	switch {
	case heroku.Refused(err):
		return false
	case errors.As(err, &api), errors.As(err, &transport):
		return true
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// writeGrantSpent answers a registration whose grant Heroku exchanged but
// which was not stored: 409 when the stored state refused it, 503 when
// rekey's storage failed. The storage error itself stays in the log.
func (s *server) writeGrantSpent(w http.ResponseWriter, r *http.Request, spent *registry.GrantSpentError) {
	const lost = "; nothing was stored and the grant cannot be used again: re-provision the add-on, or send \"oauth\" with tokens you hold"
	var input *registry.InputError
	if errors.As(spent.Err, &input) && errors.Is(input, store.ErrDeletedSince) {
		// Its tokens are kept a while for the same PUT sent again.
		writeError(w, http.StatusConflict, fmt.Sprintf("the oauth_grant of %s was exchanged with Heroku, but %s", spent.ID, input.Error()))
		return
	}
	if errors.As(spent.Err, &input) {
		writeError(w, http.StatusConflict, fmt.Sprintf("the oauth_grant of %s was exchanged with Heroku, but the registration was refused (%s)%s", spent.ID, input.Error(), lost))
		return
	}
	s.Logger.Error().Err(spent.Err).Str("instance_id", spent.ID).Str("route", r.Pattern).Msg("grant exchanged, registration not stored")
	writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("the oauth_grant of %s was exchanged with Heroku, but storing the instance and its tokens failed%s (the operators have the details in the log)", spent.ID, lost))
}

// getInstance shows an instance's state: GET /api/v1/instances/{addon_id}.
func (s *server) getInstance(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) {
		return
	}
	if id, ok := pathID(w, r, "addon_id"); ok {
		s.writeInstance(w, r, id)
	}
}

// deleteInstance marks an instance deprovisioned: DELETE /api/v1/instances/{addon_id}.
func (s *server) deleteInstance(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) {
		return
	}
	id, ok := pathID(w, r, "addon_id")
	if !ok {
		return
	}
	ctx, cancel := requestContext(r, apiTimeout)
	defer cancel()
	// The grace is for the instance's unconfirmed credentials, which the
	// store now discards (store.DeprovisionWithGrace).
	err := s.Store.DeprovisionWithGrace(ctx, id, store.DeprovisionGrace{Default: s.Grace,
		PrivateSpace: s.PrivateSpaceGrace, Min: s.MinGrace, Max: s.MaxGrace})
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("instance %s is not registered", id))
	case err != nil:
		s.internalError(w, r, "deprovision instance", err)
	default:
		s.writeInstance(w, r, id)
	}
}

// writeInstance answers 200 with the instance's state, or 404.
func (s *server) writeInstance(w http.ResponseWriter, r *http.Request, id string) {
	v, err := s.loadView(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("instance %s is not registered", id))
	case err != nil:
		s.internalError(w, r, "read instance", err)
	default:
		writeJSON(w, http.StatusOK, v)
	}
}

// getBatch shows a batch's progress: GET /api/v1/batches/{batch_id}.
func (s *server) getBatch(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) {
		return
	}
	id, ok := pathID(w, r, "batch_id")
	if !ok {
		return
	}
	b, err := s.Store.Batch(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("batch %s does not exist (batches are kept for 30 days)", id))
	case err != nil:
		s.internalError(w, r, "read batch", err)
	default:
		writeJSON(w, http.StatusOK, b)
	}
}

// getBatchFailed lists the instances whose rotation of a batch failed:
// GET /api/v1/batches/{batch_id}/failed -> {"batch_id", "failed":
// [{"instance_id", "code", "joined"}], "unlisted"}, by code, then instance id
// (its own rotations' failures and those of the rotations it joined); the ids to send
// to POST /api/v1/rotations again once the failures' cause is fixed.
func (s *server) getBatchFailed(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) {
		return
	}
	id, ok := pathID(w, r, "batch_id")
	if !ok {
		return
	}
	failed, unlisted, err := s.Store.BatchFailed(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("batch %s does not exist (batches are kept for 30 days)", id))
		return
	case err != nil:
		s.internalError(w, r, "read batch failures", err)
		return
	}
	if failed == nil {
		failed = []store.FailedInstance{}
	}
	var n int64
	for _, c := range unlisted {
		n += c
	}
	writeJSON(w, http.StatusOK, struct {
		BatchID string                 `json:"batch_id"`
		Failed  []store.FailedInstance `json:"failed"`
		// Unlisted counts the batch's failures the list does not hold
		// (store.BatchFailed): an empty list with failures unlisted is not
		// "nothing failed".
		Unlisted int64 `json:"unlisted"`
	}{id, failed, n})
}

// maxListed bounds the limit of GET /api/v1/batches and /api/v1/instances.
const maxListed = 1000

// listBatches lists batches newest first: GET /api/v1/batches, with
// running=true for only those not done, limit (20 by default) and before
// (the batch_id of the last batch of the page before) ->
// {"batches": [...]}, each as GET /api/v1/batches/{batch_id} shows it.
func (s *server) listBatches(w http.ResponseWriter, r *http.Request) {
	q := store.BatchQuery{Limit: 20}
	v, ok := listQuery(w, r, "running", "limit", "before")
	if !ok {
		return
	}
	// running given without a value (?running, running=) is no "false":
	// read so, the client would take every batch for the running ones.
	if _, given := v["running"]; given {
		raw := v.Get("running")
		running, err := strconv.ParseBool(raw)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("running=%q: want true or false", clipID(raw)))
			return
		}
		q.Running = running
	}
	if q.Limit, ok = listLimit(w, v, q.Limit); !ok {
		return
	}
	q.Before = v.Get("before")
	batches, err := s.Store.Batches(r.Context(), q)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("before=%q: no such batch in the list (batches are kept for 30 days)", clipID(q.Before)))
		return
	case err != nil:
		s.internalError(w, r, "list batches", err)
		return
	}
	if batches == nil {
		batches = []store.Batch{}
	}
	writeJSON(w, http.StatusOK, struct {
		Batches []store.Batch `json:"batches"`
	}{batches})
}

// cacheBuster is the parameter browsers' HTTP libraries add to a GET so
// that no cache answers it (jQuery's cache: false, and others: "_=" and a
// timestamp). It asks for nothing: a GET carrying it once is answered as
// one without it, on every route; any other request still refuses it.
const cacheBuster = "_"

// cacheBusting reports whether r is a read, which may carry cacheBuster.
func cacheBusting(r *http.Request) bool {
	return r.Method == http.MethodGet || r.Method == http.MethodHead
}

// cacheBusterOnly reports whether r is a read whose query string holds
// cacheBuster once and nothing else.
func cacheBusterOnly(r *http.Request) bool {
	v, err := url.ParseQuery(r.URL.RawQuery)
	return err == nil && cacheBusting(r) && len(v) == 1 && len(v[cacheBuster]) == 1
}

// listQuery reads a list's query string, answering 400 for one it cannot
// read, a parameter it does not take (allowed) or one given twice: r.URL.Query drops the
// pairs it cannot read without a word, and the client would read an
// unfiltered list as the one it asked for.
func listQuery(w http.ResponseWriter, r *http.Request, allowed ...string) (url.Values, bool) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the query string cannot be read (%s): separate parameters with '&', not ';', and percent-encode values", clipID(err.Error())))
		return nil, false
	}
	if cacheBusting(r) && len(v[cacheBuster]) == 1 {
		delete(v, cacheBuster)
	}
	for name := range v {
		if !slices.Contains(allowed, name) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q: this list takes %s", clipID(name),
				strings.Join(allowed[:len(allowed)-1], ", ")+" and "+allowed[len(allowed)-1]))
			return nil, false
		}
		if len(v[name]) > 1 {
			// Readers disagree on which of two values counts (Go's takes
			// the first, many the last): answering with one would be a
			// list the client may not have asked for.
			writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter %q is given %d times: give it once", name, len(v[name])))
			return nil, false
		}
	}
	return v, true
}

// listLimit reads a list's limit, def when absent, answering 400 for one
// that is not from 1 to maxListed.
func listLimit(w http.ResponseWriter, v url.Values, def int) (int, bool) {
	raw := v.Get("limit")
	if raw == "" {
		return def, true
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > maxListed {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("limit=%q: want a whole number from 1 to %d", clipID(raw), maxListed))
		return 0, false
	}
	return n, true
}

// instanceListView is a live instance as GET /api/v1/instances lists it:
// what GET /api/v1/instances/{id} says of it without reading its
// credentials, rotation or holds.
type instanceListView struct {
	ID                  string        `json:"id"`
	APIVersion          string        `json:"api_version"`
	HerokuID            string        `json:"heroku_id,omitempty"`
	RegisteredAt        time.Time     `json:"registered_at"`
	CurrentCredentialID string        `json:"current_credential_id,omitempty"`
	InFlightRotationID  string        `json:"in_flight_rotation_id,omitempty"`
	LastRotatedAt       time.Time     `json:"last_rotated_at,omitzero"`
	LastErrorCode       string        `json:"last_error_code,omitempty"`
	NextRotationAt      time.Time     `json:"next_rotation_at,omitzero"`
	ScheduleOptOut      bool          `json:"schedule_opt_out,omitempty"`
	MaintenanceWindow   *store.Window `json:"maintenance_window,omitempty"`
	QuarantinedAt       time.Time     `json:"quarantined_at,omitzero"`
}

// listInstances answers GET /api/v1/instances: the live instances in
// registration order, a page at a time.
func (s *server) listInstances(w http.ResponseWriter, r *http.Request) {
	v, ok := listQuery(w, r, "limit", "after")
	if !ok {
		return
	}
	limit, ok := listLimit(w, v, 100)
	if !ok {
		return
	}
	after := v.Get("after")
	page, err := s.Store.InstancesAfter(r.Context(), after, int64(limit))
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("after=%q: no live instance has that id", clipID(after)))
		return
	case err != nil:
		s.internalError(w, r, "list instances", err)
		return
	}
	out := struct {
		Instances []instanceListView `json:"instances"`
		Total     int64              `json:"total"`
		// NextAfter is the after of the next page; absent on the last.
		NextAfter string `json:"next_after,omitempty"`
	}{Instances: make([]instanceListView, len(page.Instances)), Total: page.Total}
	window := s.fleetWindow(r.Context())
	for i, in := range page.Instances {
		out.Instances[i] = instanceListView{ID: in.ID, APIVersion: in.APIVersion, HerokuID: in.HerokuID,
			RegisteredAt: in.RegisteredAt, CurrentCredentialID: in.CurrentCredential, InFlightRotationID: in.InFlight,
			LastRotatedAt: in.LastRotatedAt, LastErrorCode: in.LastErrorCode, NextRotationAt: in.NextRotation(window),
			ScheduleOptOut: in.ScheduleOptOut, MaintenanceWindow: in.Window, QuarantinedAt: in.QuarantinedAt}
	}
	if page.More {
		out.NextAfter = page.Instances[len(page.Instances)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
}

// apiFallback answers API paths no route matched: 405 naming the methods
// the path takes, or 404.
func (s *server) apiFallback(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" && pattern != "/api/" {
			allowed = append(allowed, m)
			if m == http.MethodGet {
				allowed = append(allowed, http.MethodHead) // the mux serves HEAD wherever it serves GET
			}
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s: use %s", r.Method, r.URL.Path, strings.Join(allowed, " or ")))
		return
	}
	// A route with a slash after it is no endpoint, but no "not found"
	// either: a DELETE answered 404 reads as "rekey holds no such instance",
	// which a deprovisioning takes as done.
	if trimmed := strings.TrimRight(r.URL.Path, "/"); trimmed != r.URL.Path {
		probe := r.Clone(r.Context())
		probe.URL.Path, probe.URL.RawPath = trimmed, ""
		if _, pattern := s.mux.Handler(probe); pattern != "" && pattern != "/api/" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("there is no API endpoint at %s: send the request to %s, "+
				"without the slash after it", r.URL.Path, trimmed))
			return
		}
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("there is no API endpoint at %s", r.URL.Path))
}

// cleanAPIPaths refuses API requests whose path is not canonical (dot
// segments, doubled slashes, %2e%2e), and /api itself, with a JSON error,
// after checking the token, instead of letting the mux redirect them
// somewhere else with a page. A path is an API request when it starts
// with /api/ or cleans to /api or /api/... (//api/v1/instances/x).
func (s *server) cleanAPIPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if !isAPIPath(p) || (strings.HasPrefix(p, "/api/") && path.Clean(p) == strings.TrimSuffix(p, "/")) {
			next.ServeHTTP(w, r)
			return
		}
		if s.throttled(w, r, true) {
			return
		}
		if !s.bearerOK(r) {
			s.countFailure(r)
			w.Header().Set("WWW-Authenticate", `Bearer realm="rekey"`)
			writeError(w, http.StatusUnauthorized, "send the API token as Authorization: Bearer REKEY_API_TOKEN")
			return
		}
		if p == "/api" {
			writeError(w, http.StatusNotFound, "there is no API endpoint at /api: the endpoints are under /api/v1/")
			return
		}
		writeError(w, http.StatusBadRequest, "the request path has empty or dot segments; ids may not contain '/' and may not be '.' or '..'")
	})
}

// writeBodyError answers a body decodeBody refused.
func (s *server) writeBodyError(w http.ResponseWriter, err error) {
	var be *bodyError
	if errors.As(err, &be) {
		writeError(w, be.status, be.msg)
		return
	}
	writeError(w, http.StatusBadRequest, "request body could not be read")
}

// internalError logs err and answers without details, which stay in the
// log: 503 with Retry-After when Redis did not answer (a failover, a
// restart), as a registration that failed in rekey's storage is answered,
// since the same request may succeed in a moment; 500 otherwise.
func (s *server) internalError(w http.ResponseWriter, r *http.Request, op string, err error) {
	s.Logger.Error().Err(err).Str("op", op).Str("route", r.Pattern).Msg("request failed")
	if health.RedisUnreachable(err) {
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusServiceUnavailable, "rekey's storage (Redis) could not be reached; try again (the operators have the details in the log)")
		return
	}
	writeError(w, http.StatusInternalServerError, "internal error; the operators have the details in the log")
}
