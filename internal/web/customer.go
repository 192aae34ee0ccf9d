package web

import (
	"strings"

	"github.com/rekeyhq/rekey/internal/store"
)

// This file is everything the customer's dashboard says about failures and
// about who asked for a rotation. The customer sees fixed sentences only:
// never an error's text (an issuer's or Heroku's answer may quote a
// secret or an internal host), never the operator's free-text reason
// ("INC-4711 leaked key in public gist"). The operators' API keeps both.

// customerReason is the reason the dashboard's button gives its rotations.
const customerReason = store.ReasonCustomer

// keepsWorking ends every failure sentence: what matters most to the customer.
const keepsWorking = " Your current credential keeps working."

// stepSentences say what failed, by the step of the failure code.
var stepSentences = map[string]string{
	"mint":     "The credential service could not create a new credential.",
	"verify":   "The new credential did not pass its check, so it was never used.",
	"push":     "Heroku did not accept the new credential for your app's config vars.",
	"readback": "rekey could not confirm your app's config vars with Heroku.",
	"token":    "rekey could not reach Heroku on behalf of this add-on.",
	"promote":  "The new credential could not be recorded.",
}

// classSentences say what failed, by the class of the failure code, where
// the class tells the customer more than the step does.
var classSentences = map[string]string{
	"config_mismatch": "The new credential did not carry the expected config vars, so it was never used.",
	"not_found":       "Heroku reports that this add-on could not be found on your app.",
	"heroku_404":      "Heroku reports that this add-on could not be found on your app.",
	"heroku_410":      "Heroku reports that this add-on could not be found on your app.",
	"forbidden":       "Heroku refused to update this add-on's config vars.",
	"heroku_403":      "Heroku refused to update this add-on's config vars.",
	"unauthorized":    "Heroku refused rekey's access to this add-on.",
	"heroku_401":      "Heroku refused rekey's access to this add-on.",
}

// genericFailure is the sentence for a failure code no table knows.
const genericFailure = "The rotation could not be completed."

// failureSentence is the customer's sentence for a failure, from its code
// ("mint:issuer_503", "push:not_found"). Without a code it takes the step
// from the front of the operator's sentence ("push: ..."), and nothing else
// from it.
func failureSentence(code, cause string) string {
	step, class, ok := strings.Cut(code, ":")
	if !ok {
		step, class = stepOf(cause), ""
	}
	if s, ok := classSentences[class]; ok {
		return s + keepsWorking
	}
	if s, ok := stepSentences[step]; ok {
		return s + keepsWorking
	}
	return genericFailure + keepsWorking
}

// codeOf returns s when it is a failure code ("push:not_found": a step and
// a class, no spaces), for events that carry the code as their detail.
func codeOf(s string) string {
	if strings.Count(s, ":") != 1 || strings.ContainsAny(s, " \t") {
		return ""
	}
	return s
}

// stepOf reads the step a failure sentence starts with ("mint: ...").
func stepOf(cause string) string {
	step, _, ok := strings.Cut(cause, ":")
	if !ok || strings.ContainsAny(step, " \t") {
		return ""
	}
	return step
}

// requester says who asked for a rotation, in fixed words.
func requester(reason string) string {
	switch reason {
	case customerReason:
		return "you"
	case store.ReasonScheduled:
		return "the rotation schedule"
	}
	return "an operator"
}

// customerRotation is the rotation in flight as the customer sees it:
// without the operator's reason, batch or queue.
type customerRotation struct {
	RotationID  string `json:"rotation_id"`
	State       string `json:"state"`
	RequestedAt string `json:"requested_at,omitempty"`
}

func forCustomer(r *rotationView) *customerRotation {
	if r == nil {
		return nil
	}
	c := &customerRotation{RotationID: r.RotationID, State: r.State}
	if !r.RequestedAt.IsZero() {
		c.RequestedAt = r.RequestedAt.UTC().Format("2006-01-02T15:04:05Z")
	}
	return c
}
