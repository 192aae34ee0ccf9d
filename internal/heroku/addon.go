package heroku

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/rekeyhq/rekey/internal/jsonkey"
	"github.com/rekeyhq/rekey/internal/secret"
)

// Add-on states AddonState returns: Heroku's own, and AddonMissing.
const (
	AddonProvisioning  = "provisioning"
	AddonProvisioned   = "provisioned"
	AddonDeprovisioned = "deprovisioned"
	// AddonMissing means Heroku answered 404 or 410 for the add-on itself:
	// it knows no such add-on (any more).
	AddonMissing = "missing"
)

// AddonGone reports whether state, from AddonState, means the add-on no
// longer exists for the partner. Only AddonDeprovisioned says so outright:
// Heroku then removes the add-on's config vars from its apps.
func AddonGone(state string) bool { return state == AddonDeprovisioned || state == AddonMissing }

// AddonState asks Heroku for the add-on's state (V3 GET /addons/{id}, one
// Platform API call under the Limiter and the add-on's OAuth token). It is
// how rekey tells an add-on that is really gone from a 403 or 404 that
// means something else (a suspended partner account, a revoked
// authorization): only the first sets an instance aside. A 404 or 410 on
// the add-on is AddonMissing, not an error; any other failure is returned
// as the typed error every call returns, and so is a 404 or 410 without
// Heroku's error id (herokusOwn). V1 add-ons have no such call:
// ErrNotConfigured.
func (c *Client) AddonState(ctx context.Context, t Target) (string, error) {
	if t.APIVersion != APIVersionV3 {
		return "", fmt.Errorf("heroku %s: api version %q has no add-on info: %w", EndpointGetAddon, t.APIVersion, ErrNotConfigured)
	}
	if t.AddonID == "" {
		return "", fmt.Errorf("heroku %s: empty add-on id: %w", EndpointGetAddon, ErrInvalidRequest)
	}
	u := c.apiURL + "/addons/" + escapeSegment(t.AddonID)
	body, err := c.withToken(ctx, t.AddonID, EndpointGetAddon, func(access secret.String) call {
		return call{endpoint: EndpointGetAddon, method: http.MethodGet, url: u, addonID: t.AddonID,
			authorize: v3Authorize(access)} // withToken adds the tokens to its secrets (holding)
	})
	if status := apiStatus(err); (status == http.StatusNotFound || status == http.StatusGone) && herokusOwn(err) {
		return AddonMissing, nil
	}
	if err != nil {
		return "", err
	}
	var info struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal(body, &info); err != nil || info.State == "" {
		return "", fmt.Errorf("heroku %s: malformed response body", EndpointGetAddon)
	}
	// A state named twice, in one case or two, holds two states, and
	// encoding/json keeps the last silently: read as "deprovisioned", it
	// would set the instance aside and prove its config empty.
	if !jsonkey.OnceEach(body, "state") {
		return "", fmt.Errorf("heroku %s: a 2xx whose add-on names its state twice: %w", EndpointGetAddon, ErrUnexpectedAnswer)
	}
	return info.State, nil
}

// herokusOwn reports whether err, an answer to GET /addons/{id}, carries
// Heroku's error id ("not_found"), as every answer of the Platform API
// does. A 404 without one is a proxy's in front of it (HEROKU_API_URL
// naming an egress proxy: its page for a route it does not pass on, Go's
// "404 page not found", a gateway's {"message":"Not Found"}) and says
// nothing of the add-on: taken for Heroku's, it would set aside every
// instance of the fleet that rotated through that proxy.
func herokusOwn(err error) bool {
	var api *APIError
	return errors.As(err, &api) && api.CarriesID()
}
