package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/reconcile"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// dashboardTimeout bounds the dashboard's writes, which run to the end even
// when the customer closes the tab.
const dashboardTimeout = 30 * time.Second

// noticeCookie carries, from a form's answer to the dashboard it redirects
// to, which notice to show once (notices). A cookie, not the URL: a link
// from anywhere to /dashboard?done=revoke would otherwise tell a signed-in
// customer that a revocation is under way when none is.
const noticeCookie = "rekey_notice"

// noticeTTL is how long a notice waits for the dashboard to show it.
const noticeTTL = time.Minute

// redirectWithNotice answers a form by sending the customer back to the
// dashboard, which shows notice key once.
func (s *server) redirectWithNotice(w http.ResponseWriter, r *http.Request, key string) {
	s.setCookie(w, r, noticeCookie, key, noticeTTL)
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}

// takeNotice returns the notice a form's answer left for the dashboard, and
// clears it. A HEAD leaves it: it changes nothing, and the GET that
// follows (a link checker's, a browser's prefetch) still shows it.
func (s *server) takeNotice(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(noticeCookie)
	if err != nil {
		return ""
	}
	if r.Method != http.MethodHead {
		s.setCookie(w, r, noticeCookie, "", 0)
	}
	return notices[c.Value]
}

// notices are the messages a redirect back to /dashboard may show, by key.
var notices = map[string]string{
	"rotate": "Rotation requested. Progress shows below.",
	"joined": "A rotation was already in progress; your request joined it.",
	// The click joined a rotation a click of the same sign-in or Heroku
	// user asked for (ownRotation): a double-click, whose browser shows
	// the answer to the second click.
	"joined-own": "Your rotation is in progress. Progress shows below.",
	"revoke":     "The old credential is being revoked now.",
	// Revoke now sent again once the revocation is done (a double-click,
	// a second tab): what the customer asked for has happened.
	"revoked": "That old credential is revoked; nothing more is needed from you.",
	// The revoke queue paused by hand: the customer is told the
	// revocation waits, not why in the operator's terms.
	"revoke-paused": "The old credential's revocation is queued, but it waits for the service's operator: " +
		"revocations are on hold for now. The old credential stays valid until they resume; nothing more is needed from you.",
}

// dashboard shows the signed-in instance: GET /dashboard.
func (s *server) dashboard(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r.Context())
	v, err := s.loadView(r.Context(), sess.InstanceID)
	if errors.Is(err, store.ErrNotFound) {
		s.page(w, r, http.StatusNotFound, "Add-on no longer known", goneSentence)
		return
	}
	if err != nil {
		s.instanceMissing(w, r, err)
		return
	}
	events, err := s.Store.Events(r.Context(), sess.InstanceID, timelineLen)
	if err != nil {
		s.instanceMissing(w, r, err)
		return
	}
	limit, err := s.customerLimit(r.Context(), v)
	if err != nil {
		s.instanceMissing(w, r, err)
		return
	}
	s.render(w, s.dashboardData(sess, v, events, s.takeNotice(w, r), limit))
}

// statusJSON is the progress the dashboard's script polls for. Like the
// page, it holds fixed sentences only (customer.go).
type statusJSON struct {
	InstanceID          string            `json:"instance_id"`
	Status              string            `json:"status"`
	Busy                bool              `json:"busy"`
	CurrentCredentialID string            `json:"current_credential_id,omitempty"`
	InFlightRotation    *customerRotation `json:"in_flight_rotation,omitempty"`
	PreviousCredentials []previousView    `json:"previous_credentials"`
	LastError           string            `json:"last_error,omitempty"`
	Timeline            []entry           `json:"timeline"`
}

// goneSentence is the status of an add-on the session signed in to whose
// record is gone: deprovisioned, its records expired after the audit
// retention.
const goneSentence = "This add-on is no longer known to the credential service: it was deprovisioned and its records were removed. Nothing more happens to its credentials here."

// goneJSON answers the status poll of an add-on whose record is gone:
// Gone tells the page's script to show Status and stop polling.
type goneJSON struct {
	Error  string `json:"error"`
	Gone   bool   `json:"gone"`
	Status string `json:"status"`
	Busy   bool   `json:"busy"`
}

// dashboardStatus answers the progress as JSON: GET /dashboard/status.
func (s *server) dashboardStatus(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r.Context())
	v, err := s.loadView(r.Context(), sess.InstanceID)
	if errors.Is(err, store.ErrNotFound) {
		// The session proves it was registered when the customer signed in.
		writeJSON(w, http.StatusNotFound, goneJSON{Error: "this add-on is not registered", Gone: true, Status: goneSentence})
		return
	}
	if err != nil {
		s.internalError(w, r, "read instance", err)
		return
	}
	events, err := s.Store.Events(r.Context(), sess.InstanceID, timelineLen)
	if err != nil {
		s.internalError(w, r, "read events", err)
		return
	}
	now := s.Now()
	writeJSON(w, http.StatusOK, statusJSON{InstanceID: v.ID, Status: statusText(v, now), Busy: busy(v, now),
		CurrentCredentialID: v.CurrentCredentialID, InFlightRotation: forCustomer(v.InFlightRotation),
		PreviousCredentials: v.PreviousCredentials, LastError: lastError(v), Timeline: timeline(events)})
}

// dashboardRotate starts a rotation for the customer: POST /dashboard/rotate.
func (s *server) dashboardRotate(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r.Context())
	ctx, cancel := requestContext(r, dashboardTimeout)
	defer cancel()
	limits := s.CustomerLimits
	v, err := s.loadView(ctx, sess.InstanceID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.refuseClick(w, r, "", err)
		return
	}
	if err == nil && underWay(v) {
		// Answered from the instance's state, with nothing written: a
		// customer clicking on while the rotation runs costs a read.
		s.redirectWithNotice(w, r, s.joinedNotice(sess, v.InFlightRotation.rotation))
		return
	}
	if err == nil && (v.InFlightRotationID == "" || !v.DeprovisionedAt.IsZero()) {
		// With a rotation in flight the claim joins it, whatever the
		// limits say: they count the rotations a customer starts.
		if refused, err := s.refusedByLimits(ctx, v); err != nil || refused != "" {
			s.refuseClick(w, r, refused, err)
			return
		}
	}
	res, err := s.Producer.Rotate(ctx, fleet.Request{InstanceIDs: []string{sess.InstanceID}, BatchID: s.customerBatchID(sess),
		Reason: customerReason, Queue: tasks.QueueInteractive, Customer: &limits})
	var unknown *fleet.UnknownError
	var capped *fleet.CapError
	switch {
	case errors.As(err, &unknown):
		s.page(w, r, http.StatusConflict, "Rotation not possible", "This add-on is deprovisioned, so its credentials are no longer rotated.")
		return
	case errors.As(err, &capped):
		s.page(w, r, http.StatusTooManyRequests, "Rotation not available yet", "Too many old credentials of this add-on still wait to be revoked. You can rotate again once one is revoked.")
		return
	case err == nil && res.Refused > 0:
		s.page(w, r, http.StatusTooManyRequests, "Rotation not available yet", refusalSentence(res.Items[0].Refused, limits, s.Now()))
		return
	case res.Gone > 0 && res.Enqueued+res.Joined == 0:
		// Deprovisioned between the check and the claim.
		s.page(w, r, http.StatusConflict, "Rotation not possible", "This add-on is deprovisioned, so its credentials are no longer rotated.")
		return
	case err != nil && res.Enqueued+res.Joined == 0:
		// Nothing was claimed (Redis failed): the page must not say a
		// rotation was requested.
		s.Logger.Error().Err(err).Str("instance_id", sess.InstanceID).Msg("customer rotation failed")
		s.failedPage(w, r, err, "The rotation could not be requested. Please try again in a minute.")
		return
	case err != nil:
		// Claimed but not enqueued: the reconcile sweep enqueues it.
		s.Logger.Warn().Err(err).Str("instance_id", sess.InstanceID).Msg("customer rotation claimed, enqueue failed")
	}
	done := "rotate"
	if res.Joined > 0 {
		done = "joined"
		if rot, err := s.Store.Rotation(ctx, res.Items[0].RotationID); err == nil {
			done = s.joinedNotice(sess, rot)
		}
	}
	s.redirectWithNotice(w, r, done)
}

// customerBatchID is the batch id a customer's click asks its rotation
// under: "bat_" and 24 hex digits, as tasks.NewID's, the last 8 of them a
// MAC (clickMAC) of the 16 random ones before. The rotation's record keeps
// it, so a later click tells that the rotation is its own customer's
// (ownRotation) from the record alone: nothing is written for it.
func (s *server) customerBatchID(sess session) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	return customerBatchPrefix + id + s.clickMAC(sess, id)
}

// customerBatchPrefix begins every batch id, tasks.NewID's too.
const customerBatchPrefix = "bat_"

// clickMAC binds the random part id of a customer's batch id to the
// add-on and to who clicked: the Heroku user when the sign-in verified
// one (userKey), else the sign-in. 32 bits: a match by chance only
// changes a notice's words.
func (s *server) clickMAC(sess session, id string) string {
	who := "sign-in\x00" + sess.Nonce
	if sess.User != "" {
		who = "user\x00" + sess.User
	}
	return hex.EncodeToString(s.mac("rotation asked by", sess.InstanceID+"\x00"+who+"\x00"+id)[:4])
}

// ownRotation reports whether rot is a rotation a click of the same
// sign-in, or of another sign-in of the same Heroku user, asked for.
func (s *server) ownRotation(sess session, rot store.Rotation) bool {
	id, ok := strings.CutPrefix(rot.BatchID, customerBatchPrefix)
	if !ok || len(id) != 24 || rot.Reason != customerReason || rot.InstanceID != sess.InstanceID {
		return false
	}
	return hmac.Equal([]byte(id[16:]), []byte(s.clickMAC(sess, id[:16])))
}

// joinedNotice is the notice of a click that joined rot: "joined-own"
// when the customer's own click asked for it moments ago (a
// double-click), else "joined".
func (s *server) joinedNotice(sess session, rot store.Rotation) string {
	if s.ownRotation(sess, rot) {
		return "joined-own"
	}
	return "joined"
}

// underWay reports whether the live instance v has a rotation in flight
// past its mint: a click could only join it, so it is answered from v,
// leaving no batch, no claim and no event behind. A rotation still
// requested goes to the claim, which decides atomically what a click does
// to it: move one waiting in a paced wave ahead of the wave (fleet.Overtakes;
// docs/design.md, "Pacing a wave"), end one of a cancelled batch and start
// the customer's own, or join it. A customer's join there writes its
// instance's history once a rotation, and leaves no batch
// (fleet.Request.Customer).
func underWay(v instanceView) bool {
	if !v.DeprovisionedAt.IsZero() || v.InFlightRotationID == "" {
		return false
	}
	// No record: the rotation finished as it was read; the claim finds that.
	rot := v.InFlightRotation
	return rot != nil && rot.rotation.State == store.RotationMinted
}

// dashboardRevokeNow revokes a previous credential at once, for a leaked
// one: POST /dashboard/revoke-now with credential_id and confirm=yes.
func (s *server) dashboardRevokeNow(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r.Context())
	credID := r.PostFormValue("credential_id")
	switch {
	case r.PostFormValue("confirm") != "yes":
		s.page(w, r, http.StatusBadRequest, "Please confirm", "Tick the box to confirm that you understand apps not yet restarted will fail, then try again.")
		return
	case !store.ValidID(credID):
		s.page(w, r, http.StatusBadRequest, "Unknown credential", "The form did not name a credential. Reload the dashboard and try again.")
		return
	}
	ctx, cancel := requestContext(r, dashboardTimeout)
	defer cancel()
	rev, moved, err := s.Store.Expedite(ctx, sess.InstanceID, credID, store.ExpeditedByCustomer)
	switch {
	case errors.Is(err, store.ErrRevocationDead):
		// Set aside for an operator: a click does not bring it back.
		s.page(w, r, http.StatusConflict, "Revocation needs an operator", "The credential service refused to revoke that old "+
			"credential, so its revocation needs an operator and was not started again. Your current credential is unaffected.")
		return
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConflict):
		s.nothingToRevoke(w, r, sess.InstanceID, credID)
		return
	case err != nil:
		s.Logger.Error().Err(err).Str("instance_id", sess.InstanceID).Msg("expedite revocation failed")
		s.failedPage(w, r, err, "The credential could not be revoked. Please try again in a minute.")
		return
	}
	if !moved {
		// Expedited by an earlier click: its revoke task was run then, or
		// the reconcile sweep runs it. A click again writes nothing, and
		// logs nothing: the first click warned of a paused queue.
		s.redirectWithNotice(w, r, s.revokeNotice(ctx))
		return
	}
	// The revocation is due now in the store: if its task cannot be run
	// at once (it is running, or Redis failed), the reconcile sweep runs it.
	p := reconcile.Params{Store: s.Store, Enqueuer: s.Enqueuer, Inspector: s.Inspector, Logger: s.Logger}
	if done, err := reconcile.TryRevokeNow(ctx, p, rev); err != nil || done == "" {
		s.Logger.Warn().Err(err).Str("instance_id", sess.InstanceID).Str("credential_id", credID).
			Msg("revoke task not run at once; the reconcile sweep runs it")
	}
	notice := s.revokeNotice(ctx)
	if notice == "revoke-paused" {
		s.Logger.Warn().Str("queue", tasks.QueueRevoke).Str("instance_id", sess.InstanceID).Str("credential_id", credID).
			Msg("customer's revoke now waits: the revoke queue is paused (by hand: asynq's CLI or Inspector); " +
				"resume it with `asynq queue unpause " + tasks.QueueRevoke + "`")
	}
	s.redirectWithNotice(w, r, notice)
}

// revokeNotice is the notice of a revoke now: "revoke-paused" while the
// revoke queue is paused by hand (reconcile.RevokeQueuePaused), which
// revokes nothing until it is resumed; else "revoke", also when the
// Inspector cannot tell.
func (s *server) revokeNotice(ctx context.Context) string {
	if ctx.Err() == nil && reconcile.RevokeQueuePaused(s.Inspector) {
		return "revoke-paused"
	}
	return "revoke"
}

// nothingToRevoke answers a revoke-now the store refused (409): the
// instance's current credential is never revoked (I1), and the page says
// so rather than suggest it was revoked already. A credential revoked
// already is what the customer asked for: the answer is the dashboard,
// saying so, as to the first click.
func (s *server) nothingToRevoke(w http.ResponseWriter, r *http.Request, instanceID, credID string) {
	state := ""
	if in, err := s.Store.Instance(r.Context(), instanceID); err == nil && in.CurrentCredential == credID {
		state = store.CredentialCurrent
	} else if c, err := s.Store.Credential(r.Context(), instanceID, credID); err == nil {
		state = c.State // the session's own instance's only: no other add-on's credential is looked up
	}
	switch state {
	case store.CredentialRevoked:
		s.redirectWithNotice(w, r, "revoked")
	case store.CredentialCurrent:
		s.page(w, r, http.StatusConflict, "Nothing to revoke", "That is your current credential, which your apps use: it is not revoked. "+
			"To replace it, rotate, then revoke the old one.")
	case store.CredentialPending:
		s.page(w, r, http.StatusConflict, "Nothing to revoke", "That is the new credential of the rotation in progress, "+
			"which is being given to your apps: it is not revoked.")
	case store.CredentialUnconfirmed:
		s.page(w, r, http.StatusConflict, "Nothing to revoke", "Heroku gave no clear answer when that credential was sent to your app, "+
			"so your app may be using it: it stays valid. Rotate to replace it; it is revoked after the grace period that follows.")
	default:
		s.page(w, r, http.StatusConflict, "Nothing to revoke", "That credential is not waiting to be revoked; it may have been revoked already.")
	}
}

// busy reports whether something is under way that the page should follow:
// a rotation, or an old credential's revocation that is due. A revocation
// held while the old credential is in use may wait for hours, and one
// dead-lettered waits for an operator: the page does not poll for them.
func busy(v instanceView, now time.Time) bool {
	if v.InFlightRotation != nil || v.InFlightRotationID != "" {
		return true
	}
	due := revocationsDue(v, now)
	return due.all > due.held+due.dead
}

// dueCount counts the old credentials whose revoke time has passed, and
// how many of those wait on a hold (in use) or on an operator (dead-lettered).
type dueCount struct{ all, held, dead int }

// revocationsDue counts the revocations of v that are due.
func revocationsDue(v instanceView, now time.Time) dueCount {
	var c dueCount
	for _, p := range v.PreviousCredentials {
		if p.RevokeAt.After(now) {
			continue
		}
		c.all++
		switch {
		case p.Dead:
			c.dead++
		case slices.ContainsFunc(v.Holds, func(h holdView) bool { return h.CredentialID == p.CredentialID }):
			c.held++
		}
	}
	return c
}

// statusText is the one sentence the status region shows.
func statusText(v instanceView, now time.Time) string {
	text, _ := status(v, now)
	return text
}

// status is statusText, and the time its sentence counts down to ("(in 1
// hour 29 minutes)", fromNow), zero when it names none.
func status(v instanceView, now time.Time) (text string, until time.Time) {
	switch {
	case !v.DeprovisionedAt.IsZero():
		return "This add-on is deprovisioned; its credentials are no longer rotated.", time.Time{}
	case v.InFlightRotation != nil && v.InFlightRotation.State == store.RotationMinted:
		return "Rotation in progress: a new credential is minted and being set in your app's config vars.", time.Time{}
	case v.InFlightRotationID != "":
		return "Rotation in progress: minting a new credential.", time.Time{}
	case busy(v, now):
		return "Revoking the old credential.", time.Time{}
	// A rotation's success clears the last error: one shown is newer than
	// the last rotation that succeeded.
	case v.LastError != "":
		return "The last rotation failed. " + lastError(v), time.Time{}
	}
	switch due := revocationsDue(v, now); {
	case due.dead > 0 && due.dead+due.held == due.all:
		return "Rotated. The old credential's revocation needs an operator; your current credential is unaffected.", time.Time{}
	case due.held > 0 && due.held == due.all:
		return "Rotated. The old credential is still in use, so its revocation waits (below).", time.Time{}
	}
	if len(v.PreviousCredentials) > 0 {
		at := v.PreviousCredentials[0].RevokeAt
		return "Rotated. The old credential stays valid until " + clock(at) + " (" + fromNow(now, at) + ") while your apps restart.", at
	}
	return "Up to date.", time.Time{}
}
