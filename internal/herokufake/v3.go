package herokufake

import (
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// acceptV3 is the media type every V3 request must accept, spaces removed.
const acceptV3 = "application/vnd.heroku+json;version=3"

// configVar is one entry of a V3 config array.
type configVar struct {
	Name  string  `json:"name"`
	Value *string `json:"value"`
}

// addonInfo is the body of GET /addons/{id}.
type addonInfo struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	State      string   `json:"state"`
	App        appRef   `json:"app"`
	ConfigVars []string `json:"config_vars"`
}

type appRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// authorize runs the checks V3 add-on endpoints share, in order: media type
// (406), bearer token (401), rate limit (429), then whether the token may
// see the add-on (403) and whether it exists (404). It answers the request
// itself when a check fails and otherwise returns the add-on ID.
func (x *exchange) authorize(allowGone bool) (string, bool) {
	owner, ok := x.authenticate()
	if !ok {
		return "", false
	}
	if !x.f.take(x.bucket) {
		x.rateLimited()
		return "", false
	}
	id, exists, gone := x.f.resolve(x.r.PathValue("addon"))
	switch {
	case exists && id != owner:
		x.fail(http.StatusForbidden, "forbidden", "This OAuth authorization does not grant access to the add-on.")
	case !exists || (gone && !allowGone):
		x.fail(http.StatusNotFound, "not_found", "Couldn't find that add-on.")
	default:
		return id, true
	}
	return "", false
}

// authenticate checks the media type and the bearer token and returns the
// add-on the token is bound to.
func (x *exchange) authenticate() (string, bool) {
	if !x.acceptsV3() {
		return "", false
	}
	owner, ok := x.f.bearer(x.r)
	if !ok {
		x.fail(http.StatusUnauthorized, "unauthorized", "Invalid credentials provided.")
		return "", false
	}
	x.bucket = x.f.bucketKey(owner)
	return owner, true
}

// acceptsV3 checks the Accept header and answers 406 when it lacks version 3.
func (x *exchange) acceptsV3() bool {
	accept := strings.ReplaceAll(x.r.Header.Get("Accept"), " ", "")
	if strings.Contains(accept, acceptV3) {
		return true
	}
	x.fail(http.StatusNotAcceptable, "not_acceptable", "Please specify a version along with Heroku's API MIME type. For example, `Accept: application/vnd.heroku+json; version=3`.")
	return false
}

// resolve finds an add-on by ID or global name.
func (f *Fake) resolve(ref string) (id string, exists, gone bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n, ok := f.names[ref]; ok {
		ref = n
	}
	a, ok := f.addons[ref]
	if !ok {
		return "", false, false
	}
	return ref, true, a.deprovisioned
}

// getConfig serves GET /addons/{id}/config.
func (f *Fake) getConfig(x *exchange) {
	id, ok := x.authorize(false)
	if !ok {
		return
	}
	config := f.Config(id)
	if config == nil {
		x.fail(http.StatusNotFound, "not_found", "Couldn't find that add-on.")
		return
	}
	x.json(http.StatusOK, configArray(config))
}

// patchConfig serves PATCH /addons/{id}/config.
func (f *Fake) patchConfig(x *exchange) {
	id, ok := x.authorize(false)
	if !ok {
		return
	}
	var body struct {
		Config []configVar `json:"config"`
	}
	if err := x.decode(&body); err != nil || body.Config == nil {
		x.fail(http.StatusBadRequest, "bad_request", "Request body must be JSON with a config array.")
		return
	}
	updates, ok := configMap(body.Config)
	if !ok {
		x.fail(http.StatusUnprocessableEntity, "invalid_params", "Every config entry needs a name and a string value.")
		return
	}
	config, err := f.setConfig(id, updates)
	x.answerWrite(err, configArray(config))
}

// answerWrite answers the outcome of a config write, V3 or V1, with body
// when it succeeded.
func (x *exchange) answerWrite(err error, body any) {
	var undeclared errUndeclared
	switch {
	case errors.As(err, &undeclared):
		x.fail(http.StatusUnprocessableEntity, "invalid_params", undeclared.Error())
	case err != nil:
		x.fail(http.StatusNotFound, "not_found", "Couldn't find that add-on.")
	default:
		x.json(http.StatusOK, body)
	}
}

// configMap turns a V3 config array into a map; the last entry for a name wins.
func configMap(vars []configVar) (map[string]string, bool) {
	out := make(map[string]string, len(vars))
	for _, v := range vars {
		if v.Name == "" || v.Value == nil {
			return nil, false
		}
		out[v.Name] = *v.Value
	}
	return out, true
}

// configArray turns a config into a V3 array sorted by name.
func configArray(config map[string]string) []configVar {
	out := make([]configVar, 0, len(config))
	for _, name := range slices.Sorted(maps.Keys(config)) {
		v := config[name]
		out = append(out, configVar{Name: name, Value: &v})
	}
	return out
}

// getAddon serves GET /addons/{id}. Unlike the config endpoints it still
// answers for a deprovisioned add-on, with state "deprovisioned".
func (f *Fake) getAddon(x *exchange) {
	id, ok := x.authorize(true)
	if !ok {
		return
	}
	x.json(http.StatusOK, f.info(id))
}

func (f *Fake) info(id string) addonInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.addons[id]
	state := "provisioned"
	if a.deprovisioned {
		state = "deprovisioned"
	}
	ap := f.apps[a.spec.App]
	return addonInfo{
		ID: id, Name: a.name, State: state,
		App:        appRef{ID: ap.id, Name: ap.name},
		ConfigVars: slices.Clone(a.spec.ConfigVars),
	}
}

// rateLimits serves GET /account/rate-limits. It takes no token from the
// bucket and needs no bearer token; given a valid one with per-add-on
// buckets, it reports that add-on's bucket.
func (f *Fake) rateLimits(x *exchange) {
	if !x.acceptsV3() {
		return
	}
	if owner, ok := f.bearer(x.r); ok {
		x.bucket = f.bucketKey(owner)
	}
	x.json(http.StatusOK, map[string]int{"remaining": f.remaining(x.bucket)})
}
