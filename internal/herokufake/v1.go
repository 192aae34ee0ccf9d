package herokufake

import (
	"net/http"
	"net/url"
)

// v1App is the body of GET /vendor/apps/{heroku_id}.
type v1App struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Config      map[string]string `json:"config"`
	CallbackURL string            `json:"callback_url"`
	Domains     []string          `json:"domains"`
}

// v1Authorize checks the manifest credentials (401), draws on the account's
// bucket (429) and finds the live add-on of the heroku_id in the path (404).
// It answers the request itself when a check fails.
func (x *exchange) v1Authorize() (*addon, bool) {
	user, pass, _ := x.r.BasicAuth()
	if !equal(user, x.f.set.manifestID) || !equal(pass, x.f.set.manifestPass) {
		x.fail(http.StatusUnauthorized, "unauthorized", "Invalid credentials provided.")
		return nil, false
	}
	if !x.f.take(x.bucket) {
		x.rateLimited()
		return nil, false
	}
	a := x.f.byHerokuID(x.r.PathValue("heroku_id"))
	if a == nil {
		x.fail(http.StatusNotFound, "not_found", "Couldn't find that app.")
		return nil, false
	}
	return a, true
}

// byHerokuID returns a snapshot of the live add-on with the V1 heroku_id.
func (f *Fake) byHerokuID(herokuID string) *addon {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.addons[f.herokuIDs[herokuID]]
	if !ok || a.deprovisioned {
		return nil
	}
	snapshot := *a
	return &snapshot
}

// v1Put serves PUT /vendor/apps/{heroku_id}.
func (f *Fake) v1Put(x *exchange) {
	a, ok := x.v1Authorize()
	if !ok {
		return
	}
	var body struct {
		Config map[string]string `json:"config"`
	}
	if err := x.decode(&body); err != nil || body.Config == nil {
		x.fail(http.StatusBadRequest, "bad_request", "Request body must be JSON with a config object.")
		return
	}
	_, err := f.setConfig(a.spec.ID, body.Config)
	x.answerWrite(err, struct{}{})
}

// v1Get serves GET /vendor/apps/{heroku_id}.
func (f *Fake) v1Get(x *exchange) {
	a, ok := x.v1Authorize()
	if !ok {
		return
	}
	x.json(http.StatusOK, v1App{
		ID:          a.spec.HerokuID,
		Name:        a.spec.App,
		Config:      a.config,
		CallbackURL: "https://api.heroku.com/vendor/apps/" + url.QueryEscape(a.spec.HerokuID),
		Domains:     []string{a.spec.App + ".herokuapp.com"},
	})
}
