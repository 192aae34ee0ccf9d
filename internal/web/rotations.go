package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/printable"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// maxRotationIDs is the most instance ids one rotation request may name.
// A request within it is handled in full; a longer list is refused with 413
// ({"all":true} has no limit).
const maxRotationIDs = 100_000

// rotationsTimeout bounds the claims and enqueues of one rotation request.
// The work goes on when the client goes away (Heroku's router gives up
// after 30 seconds), so a request that passed its checks is applied in
// full; 100,000 instances take seconds on one Redis.
const rotationsTimeout = 10 * time.Minute

// maxReasonLen bounds the free-text reason kept in the audit trail.
const maxReasonLen = tasks.MaxReasonLen

// rotationsRequest is the body of POST /api/v1/rotations.
type rotationsRequest struct {
	InstanceIDs []string `json:"instance_ids"`
	All         bool     `json:"all"`
	Reason      string   `json:"reason"`
	// Grace is a Go duration such as "2h"; empty means each instance's own.
	Grace string `json:"grace"`
	// SkipIfPrevious declines instances whose previous credential still
	// waits for revocation (docs/design.md, I4: "unless the request asks otherwise").
	SkipIfPrevious bool `json:"skip_if_previous"`
}

// rotationsResponse is the 202 answer.
type rotationsResponse struct {
	BatchID  string `json:"batch_id"`
	Enqueued int    `json:"enqueued"`
	Joined   int    `json:"joined"`
	Skipped  int    `json:"skipped"`
	// Gone counts instances deprovisioned meanwhile: of {"all":true}, or
	// named ones deprovisioned after the request's check.
	Gone int `json:"gone,omitempty"`
	// Refused counts instances of {"all":true} left out because they
	// already have REKEY_MAX_PREVIOUS superseded credentials waiting.
	Refused int `json:"refused,omitempty"`
}

// postRotations requests rotations: POST /api/v1/rotations. A request
// naming any unknown or deprovisioned instance is refused whole.
func (s *server) postRotations(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) {
		return
	}
	var body rotationsRequest
	if err := decodeBody(w, r, maxRotationsBody, &body); err != nil {
		s.writeBodyError(w, err)
		return
	}
	req, status, msg := body.fleetRequest()
	if status != 0 {
		writeError(w, status, msg)
		return
	}
	ctx, cancel := requestContext(r, rotationsTimeout)
	defer cancel()
	idem, ok := s.beginIdempotent(w, r, body)
	if !ok {
		return
	}
	if idem != nil {
		w = idem
		defer idem.finish(ctx)
	}
	if err := fleet.CheckGrace(req.Grace, s.Producer.MinGrace(), s.Producer.MaxGrace()); err != nil {
		// Refused before listing the fleet for {"all":true}.
		s.writeRotateResult(w, r, fleet.Result{}, err)
		return
	}
	if body.All {
		ids, err := s.allInstanceIDs(ctx)
		if err != nil {
			s.internalError(w, r, "list instances", err)
			return
		}
		if len(ids) == 0 {
			writeError(w, http.StatusUnprocessableEntity, "there are no live instances to rotate")
			return
		}
		req.InstanceIDs = ids
	}
	res, err := s.Producer.Rotate(ctx, req)
	s.writeRotateResult(w, r, res, err)
}

// fleetRequest checks the body and turns it into a fleet request, or
// returns the status and sentence to refuse it with.
func (b rotationsRequest) fleetRequest() (fleet.Request, int, string) {
	req := fleet.Request{InstanceIDs: b.InstanceIDs, Reason: b.Reason, SkipIfPrevious: b.SkipIfPrevious}
	switch {
	case b.All && len(b.InstanceIDs) > 0:
		return req, http.StatusBadRequest, `send "instance_ids" or "all": true, not both`
	case !b.All && len(b.InstanceIDs) == 0:
		return req, http.StatusBadRequest, `name at least one instance in "instance_ids", or send "all": true`
	case len(b.InstanceIDs) > maxRotationIDs:
		return req, http.StatusRequestEntityTooLarge, fmt.Sprintf(`"instance_ids" names %d instances; send at most %d per request, or "all": true`, len(b.InstanceIDs), maxRotationIDs)
	case len(b.Reason) > maxReasonLen:
		return req, http.StatusBadRequest, fmt.Sprintf(`"reason" is longer than %d bytes`, maxReasonLen)
	case strings.ContainsFunc(b.Reason, printable.Unsafe):
		// A reason is one line of text. The CLI shows stored reasons
		// escaped (printable.Text), as it must for those sent through the
		// tasks package, but one sent here is refused rather than kept
		// garbled.
		return req, http.StatusBadRequest, `"reason" holds a line break, a control or a bidi character: send one line of text`
	}
	if err := fleet.CheckReason(b.Reason); err != nil {
		return req, http.StatusBadRequest, `"reason": ` + err.Error()
	}
	for i, id := range b.InstanceIDs {
		if !store.ValidID(id) {
			return req, http.StatusBadRequest, fmt.Sprintf(`"instance_ids"[%d] %q is not a valid instance id`, i, clipID(id))
		}
	}
	if b.Grace != "" {
		d, err := time.ParseDuration(b.Grace)
		if err != nil || d <= 0 {
			// 422, as a registration's grace and a grace below the
			// floor are answered.
			return req, http.StatusUnprocessableEntity, fmt.Sprintf(`"grace" %q is not a positive Go duration such as "2h"%s`,
				clipID(b.Grace), printable.RefusedDurationHint(err, b.Grace))
		}
		req.Grace = d
	}
	if req.Reason == "" {
		req.Reason = "api request"
	}
	if b.All {
		// An instance deprovisioned while the request runs is left out
		// rather than stopping the others.
		req.Queue, req.SkipGone = tasks.QueueBulk, true
	}
	return req, 0, ""
}

// clipID shortens a bad value quoted back in an error.
func clipID(s string) string { return clip(s, 64) }

// allInstanceIDs reads every live instance id, page by page.
func (s *server) allInstanceIDs(ctx context.Context) ([]string, error) {
	var ids []string
	err := s.Store.InstanceIDs(ctx, 5000, func(page []string) error {
		ids = append(ids, page...)
		return nil
	})
	return ids, err
}

// writeRotateResult answers a rotation request: 202, 422 when it named
// instances that cannot be rotated, or 503 with Retry-After when rekey
// failed part-way (the batch id then tells what did start; repeating the
// request is safe, because an instance already rotating joins its
// rotation).
func (s *server) writeRotateResult(w http.ResponseWriter, r *http.Request, res fleet.Result, err error) {
	var unknown *fleet.UnknownError
	var grace *fleet.GraceError
	var capped *fleet.CapError
	switch {
	case errors.As(err, &unknown):
		writeError(w, http.StatusUnprocessableEntity, unknown.Error())
	case errors.As(err, &capped):
		writeError(w, http.StatusConflict, capped.Error())
	case err == nil && res.Refused > 0 && res.Refused+res.Gone == len(res.Items):
		writeError(w, http.StatusConflict, fmt.Sprintf("rotation refused, nothing enqueued: every instance already has the most superseded credentials waiting for revocation that REKEY_MAX_PREVIOUS allows (batch %s)", res.BatchID))
	case errors.As(err, &grace):
		writeError(w, http.StatusUnprocessableEntity, "rotation refused, nothing enqueued: "+grace.Error())
	case err != nil && res.BatchID == "" && res.Gone > 0, err == nil && res.Gone > 0 && res.Gone == len(res.Items):
		writeError(w, http.StatusUnprocessableEntity, "every instance was deprovisioned meanwhile; nothing to rotate")
	case err != nil && res.BatchID == "":
		s.internalError(w, r, "request rotations", err)
	case err != nil:
		s.Logger.Error().Err(err).Str("batch_id", res.BatchID).Msg("rotation request failed part-way")
		w.Header().Set("Retry-After", "30")
		writeJSON(w, http.StatusServiceUnavailable, struct {
			apiError
			rotationsResponse
		}{apiError{fmt.Sprintf("rekey failed part-way through the request; batch %s shows what started, and sending the request again is safe", res.BatchID)},
			response(res)})
	default:
		writeJSON(w, http.StatusAccepted, response(res))
	}
}

func response(res fleet.Result) rotationsResponse {
	return rotationsResponse{BatchID: res.BatchID, Enqueued: res.Enqueued, Joined: res.Joined,
		Skipped: res.Skipped, Gone: res.Gone, Refused: res.Refused}
}
