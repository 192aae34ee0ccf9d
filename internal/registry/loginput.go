package registry

import (
	"context"
	"errors"
	"net/url"

	"github.com/rekeyhq/rekey/internal/secret"
)

// checkLogInput refuses a log_input_url that is not an absolute http(s)
// URL. The sentence never repeats the value: it carries a token.
func checkLogInput(u secret.String) error {
	if u.IsZero() {
		return nil
	}
	p, err := url.Parse(u.Reveal())
	if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
		return &InputError{errors.New("log_input_url must be an absolute http(s) URL, as Heroku sends it at provisioning")}
	}
	return nil
}

// saveLogInput stores the instance's log_input_url, sealed (I5). A
// registration without one keeps the one stored before.
func (r *Registry) saveLogInput(ctx context.Context, in Input) error {
	if in.LogInputURL.IsZero() {
		return nil
	}
	return r.store.SaveLogInput(ctx, in.ID, in.LogInputURL)
}
