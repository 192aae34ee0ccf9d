package registry

import (
	"context"
	"errors"
	"net/url"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/secret"
)

// checkLogInput refuses a log_input_url that is not an absolute https URL
// (http only to this machine, for a local Heroku stand-in): Heroku sends
// https, and the URL carries a token that plain http would show to the
// network, to a host the workers would post to blindly. The sentence never
// repeats the value.
func checkLogInput(u secret.String) error {
	if u.IsZero() {
		return nil
	}
	p, err := url.Parse(u.Reveal())
	if err != nil || p.Host == "" || p.Scheme != "https" && (p.Scheme != "http" || !issuer.IsLoopback(p.Hostname())) {
		return &InputError{errors.New("log_input_url must be an absolute https URL, as Heroku sends it at provisioning " +
			"(http only to localhost)")}
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
