package herokufake

import (
	"encoding/json"
	"net/http"
	"time"
)

// adminRoutes serves the fake's own controls as JSON under /_fake/, for
// cmd/fakeheroku. They are not Heroku's API: not counted, not rate limited,
// never faulted. They answer config values, so serve them only to yourself.
//
//	POST /_fake/addons                    AddonSpec -> 201
//	POST /_fake/addons/{id}/code          -> {"code":"...","expires_at":"..."}
//	POST /_fake/addons/{id}/deprovision   -> 204
//	GET  /_fake/addons/{id}/config        -> {"NAME":"value"}
//	GET  /_fake/holders?name=&value=      -> {"configs":N,"dynos":N}
//	GET  /_fake/stats                     -> {"total":N,"rate_limited":N,"settled":B,"calls":{"patch_config 200":N}}
func (f *Fake) adminRoutes() {
	f.mux.HandleFunc("POST /_fake/addons", f.adminAdd)
	f.mux.HandleFunc("POST /_fake/addons/{id}/code", f.adminCode)
	f.mux.HandleFunc("POST /_fake/addons/{id}/deprovision", f.adminDeprovision)
	f.mux.HandleFunc("GET /_fake/addons/{id}/config", f.adminConfig)
	f.mux.HandleFunc("GET /_fake/holders", f.adminHolders)
	f.mux.HandleFunc("GET /_fake/stats", f.adminStats)
}

func (f *Fake) adminAdd(w http.ResponseWriter, r *http.Request) {
	var spec AddonSpec
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&spec); err != nil {
		http.Error(w, "body must be a JSON add-on spec", http.StatusBadRequest)
		return
	}
	if err := f.AddAddon(spec); err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	writeJSON(w, http.StatusCreated, spec)
}

func (f *Fake) adminCode(w http.ResponseWriter, r *http.Request) {
	expires := f.now().Add(codeTTL)
	code := f.GrantCode(r.PathValue("id"))
	writeJSON(w, http.StatusOK, map[string]any{
		"code": code, "expires_at": expires.UTC().Format(time.RFC3339), "type": "authorization_code",
	})
}

func (f *Fake) adminDeprovision(w http.ResponseWriter, r *http.Request) {
	f.Deprovision(r.PathValue("id"))
	w.WriteHeader(http.StatusNoContent)
}

func (f *Fake) adminConfig(w http.ResponseWriter, r *http.Request) {
	config := f.Config(r.PathValue("id"))
	if config == nil {
		http.Error(w, "no such live add-on", http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, config)
}

func (f *Fake) adminHolders(w http.ResponseWriter, r *http.Request) {
	h := f.Holders(r.URL.Query().Get("name"), r.URL.Query().Get("value"))
	writeJSON(w, http.StatusOK, map[string]int{"configs": h.Configs, "dynos": h.Dynos})
}

func (f *Fake) adminStats(w http.ResponseWriter, _ *http.Request) {
	s := f.Stats()
	calls := make(map[string]int, len(s.Calls))
	for k, n := range s.Calls {
		calls[k.String()] = n
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"total": s.Total, "rate_limited": s.RateLimited, "settled": f.Settled(), "calls": calls,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
