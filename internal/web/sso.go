package web

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Heroku's SSO protocol defines its tokens as SHA-1.
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

// ssoMarkMargin is how much longer than the form's own life a used SSO
// form, and a signed-out session, stay marked.
const ssoMarkMargin = time.Minute

// ssoMaxSkew is how far an SSO timestamp may be from now, either way.
// Heroku's test tool requires that a 6-minute-old one is refused.
const ssoMaxSkew = 5 * time.Minute

// ssoForm is a sign-in Heroku posted, V3 or V1.
type ssoForm struct {
	// ID is the instance: V3 resource_id (the add-on uuid), or V1 id (the
	// id the partner gave Heroku at provisioning, which the partner
	// registers with rekey as the instance id).
	ID        string
	Timestamp string
	// Token is resource_token (V3) or token (V1): hex sha1(id:salt:timestamp).
	Token string
	// UserToken is V3's user_scoped_resource_token: hex
	// sha256(id:salt:timestamp:user_id:email), checked instead of Token when sent.
	UserToken   string
	UserID      string
	Email       string
	App         string
	NavData     string
	userContext bool
}

// readSSOForm reads the form from the request body only: values in the
// query string are ignored, so a token in a URL never signs anyone in.
func readSSOForm(w http.ResponseWriter, r *http.Request) ssoForm {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	v := func(k string) string { return r.PostFormValue(k) }
	f := ssoForm{Timestamp: v("timestamp"), UserID: v("user_id"), Email: v("email"),
		App: v("app"), NavData: v("nav-data")}
	if id := v("resource_id"); id != "" {
		f.ID, f.Token = id, v("resource_token")
		f.UserToken = v("user_scoped_resource_token")
		f.userContext = f.UserToken != ""
	} else {
		f.ID, f.Token = v("id"), v("token")
	}
	return f
}

// errSSO is any sign-in that does not verify; the customer sees one page.
var errSSO = errors.New("sso token does not verify")

// verify checks the form's token and timestamp against the salt. It
// returns the sign-in's tokens, the one that verified first, and how long
// Heroku's form stays acceptable.
func (s *server) verify(f ssoForm) ([]string, time.Duration, error) {
	ts, err := strconv.ParseInt(f.Timestamp, 10, 64)
	if err != nil || f.ID == "" || (f.Token == "" && f.UserToken == "") {
		return nil, 0, errSSO
	}
	skew := s.Now().Sub(time.Unix(ts, 0))
	if skew > ssoMaxSkew || skew < -ssoMaxSkew {
		return nil, 0, errSSO
	}
	salt := s.SSOSalt.Reveal()
	sum := sha1.Sum([]byte(f.ID + ":" + salt + ":" + f.Timestamp)) //nolint:gosec // protocol-defined
	resource := hex.EncodeToString(sum[:])
	tokens, sent := []string{resource}, f.Token
	if f.userContext {
		sum := sha256.Sum256([]byte(f.ID + ":" + salt + ":" + f.Timestamp + ":" + f.UserID + ":" + f.Email))
		tokens, sent = []string{hex.EncodeToString(sum[:]), resource}, f.UserToken
	}
	if !hexEqual(sent, tokens[0]) {
		return nil, 0, errSSO
	}
	return tokens, ssoMaxSkew - skew, nil
}

// ssoLogin signs a customer in from Heroku: POST /sso/login. On success it
// spends the form's tokens (a form is accepted once), sets the
// heroku-nav-data cookie and a session bound to the instance, and sends the
// browser to /dashboard.
func (s *server) ssoLogin(w http.ResponseWriter, r *http.Request) {
	f := readSSOForm(w, r)
	tokens, valid, err := s.verify(f)
	if err != nil {
		s.Logger.Warn().Str("sso_id", clipID(f.ID)).Msg("sso refused")
		s.page(w, r, http.StatusForbidden, "Sign-in refused",
			"This sign-in link is not valid or has expired. Open the dashboard again from your add-on's page in the Heroku Dashboard.")
		return
	}
	if !store.ValidID(f.ID) {
		s.page(w, r, http.StatusNotFound, "Add-on not found", "This add-on is not known to the credential service.")
		return
	}
	// Read before the instance: a DELETE between the two ends the session.
	deletes, err := s.Store.DeleteMark(r.Context(), f.ID)
	if err != nil {
		s.failed(w, r, err, "Please try again in a minute.")
		return
	}
	in, err := s.Store.Instance(r.Context(), f.ID)
	if err != nil {
		s.instanceMissing(w, r, err)
		return
	}
	if signedBefore(f, in.RegisteredAgainAt) {
		// Heroku signed the form for the add-on this id named before its
		// DELETE, maybe another customer's: it does not open this one.
		s.Logger.Warn().Str("instance_id", f.ID).Msg("sso form older than the registration")
		s.page(w, r, http.StatusForbidden, "Sign-in refused",
			"This sign-in link was made before this add-on was registered again. Open the dashboard again from your add-on's page in the Heroku Dashboard.")
		return
	}
	if !s.spend(w, r, f, tokens, valid) {
		return
	}
	nav := parseNavData(f.NavData)
	if f.NavData != "" && len(f.NavData) <= maxNavDataLen && base64Text(f.NavData) {
		s.setCookie(w, r, navDataCookie, f.NavData, sessionTTL)
	}
	app := cleanName(f.App)
	if app == "" {
		app = nav.AppName
	}
	user := ""
	if f.userContext {
		user = s.userKey(f.UserID) // verified with the email by user_scoped_resource_token
	}
	s.setCookie(w, r, sessionCookie, s.sign(s.newSession(in, app, nav.Addon, user, deletes)), sessionTTL)
	s.Logger.Info().Str("instance_id", f.ID).Bool("user_scoped", f.userContext).Msg("sso signed in")
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}

// signedBefore reports whether Heroku signed form f in a second before the
// one its instance was registered again in (again; zero: never). A form
// signed in that second passes: the timestamp has no finer grain.
func signedBefore(f ssoForm, again time.Time) bool {
	ts, err := strconv.ParseInt(f.Timestamp, 10, 64)
	return !again.IsZero() && err == nil && ts < again.Unix()
}

// spend marks the sign-in's tokens used until the form would expire, and
// answers a form that was used before. It reports whether to go on.
func (s *server) spend(w http.ResponseWriter, r *http.Request, f ssoForm, tokens []string, valid time.Duration) bool {
	cover := ""
	if len(tokens) > 1 {
		cover = tokens[1]
	}
	// Kept past the form's life by the widest skew two processes' clocks
	// may have (each reads Redis's, within a measured offset), and then
	// some: a process a little behind must still find the form used.
	first, err := s.Store.SpendSSOToken(r.Context(), tokens[0], cover, valid+ssoMarkMargin)
	switch {
	case err != nil:
		s.failed(w, r, err, "Please try again in a minute.")
		return false
	case !first:
		s.Logger.Warn().Str("instance_id", f.ID).Msg("sso token replayed")
		// A second click on Heroku's button posts the same form again, and
		// the browser shows the answer to the second: the first signed the
		// customer in, so the page leads to the dashboard, which the session
		// cookie opens (it is not sent with this cross-site post).
		s.writeHTML(w, http.StatusForbidden, "page.html", pageData{Title: "Sign-in link already used",
			Message: "This sign-in link was already used, and each one works once. If you opened the dashboard a moment " +
				"ago (a second click), you are signed in: go back to it below. Otherwise open it again from your add-on's " +
				"page in the Heroku Dashboard.", Back: true, Style: template.CSS(dashboardCSS)})
		return false
	}
	return true
}

// logout signs the customer out: POST /dashboard/logout. The session is
// marked ended in Redis until it would have expired, so a copy of the
// cookie stops working too, both cookies are removed, and the browser is
// sent to the signed-out page.
func (s *server) logout(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r.Context())
	// A browser closed at once after the click, or Heroku's router giving
	// up on a slow Redis, must not leave the sign-out undone or half done:
	// that browser never sees its cookie removed, and stays signed in.
	ctx, cancel := requestContext(r, dashboardTimeout)
	defer cancel()
	err := s.Store.EndSession(ctx, sess.Nonce, s.left(sess)+ssoMarkMargin)
	if err == nil && sess.User != "" {
		// The forms of the user's earlier sign-ins to the add-on, open in
		// other tabs, stop acting too (checkCSRF).
		err = s.Store.EndSignIns(ctx, sess.InstanceID, sess.User, s.Now(), sessionTTL+ssoMarkMargin)
	}
	if err != nil {
		s.failed(w, r, err, "You are still signed in. Please try again in a minute.")
		return
	}
	s.setCookie(w, r, sessionCookie, "", 0)
	s.setCookie(w, r, navDataCookie, "", 0)
	s.setCookie(w, r, signedOutCookie, s.signNames(sess), sessionTTL)
	s.Logger.Info().Str("instance_id", sess.InstanceID).Msg("sso signed out")
	// Post/Redirect/Get: reloading the page the browser shows asks for it
	// again, not to send the sign-out's form again, which the ended
	// session refuses.
	http.Redirect(w, r, signedOutPath, http.StatusSeeOther)
}

// alreadySignedOut answers a sign-out without a live session: the second
// post of a double-click, whose cookie is the session the first ended, or
// another tab's once the cookie is gone. The customer is signed out, so
// the browser is sent to the signed-out page, as the first post's is. A
// session of rekey's that ended or expired (sess, read with a valid MAC)
// has its cookies removed and its names kept for the page, as a sign-out
// does: the browser may have dropped the first answer. Without one (no
// cookie, as a cross-site post comes under SameSite=Lax) no cookie is
// set, so that such a post signs nothing out; the page sends a browser
// whose session lives on to the dashboard.
func (s *server) alreadySignedOut(w http.ResponseWriter, r *http.Request, sess session) {
	if sess.InstanceID != "" {
		s.setCookie(w, r, sessionCookie, "", 0)
		s.setCookie(w, r, navDataCookie, "", 0)
		s.setCookie(w, r, signedOutCookie, s.signNames(sess), sessionTTL)
	}
	http.Redirect(w, r, signedOutPath, http.StatusSeeOther)
}

// signedOutPath is the page a sign-out leads to.
const signedOutPath = "/dashboard/signed-out"

// signedOutCookie keeps, for the signed-out page, the app's and the
// add-on's names of the session signed out, for its navigation header;
// signed, so that nothing but a sign-out sets the names it shows.
const signedOutCookie = "rekey_signed_out"

// signNames encodes the session's app and add-on names as payload.mac.
func (s *server) signNames(sess session) string {
	payload, _ := json.Marshal([2]string{sess.App, sess.Addon})
	p := base64.RawURLEncoding.EncodeToString(payload)
	return p + "." + base64.RawURLEncoding.EncodeToString(s.mac("signed out", p))
}

// signedOutNames returns the names signNames encoded in the request's
// signedOutCookie, or none.
func (s *server) signedOutNames(r *http.Request) (app, addon string) {
	c, err := r.Cookie(signedOutCookie)
	if err != nil {
		return "", ""
	}
	p, sig, ok := strings.Cut(c.Value, ".")
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if !ok || err != nil || !hmac.Equal(mac, s.mac("signed out", p)) {
		return "", ""
	}
	var names [2]string
	if payload, err := base64.RawURLEncoding.DecodeString(p); err != nil || json.Unmarshal(payload, &names) != nil {
		return "", ""
	}
	return names[0], names[1]
}

// signedOut says the customer is signed out: GET /dashboard/signed-out,
// where a sign-out leads, as often as it is reloaded. A browser signed in
// (again, or never signed out: a link to this page) is sent to the
// dashboard instead, rather than told it is signed out. Whether its
// session ended is read from Redis: when that fails, the page answers as
// the dashboard does then, and tells nothing it does not know.
func (s *server) signedOut(w http.ResponseWriter, r *http.Request) {
	if sess, ok := s.readSession(r); ok {
		lives, answered := s.sessionLives(w, r, sess)
		if answered {
			return
		}
		if lives {
			http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
			return
		}
	}
	app, addon := s.signedOutNames(r)
	s.writeHTML(w, http.StatusOK, "page.html", pageData{Title: "Signed out",
		Message: "You are signed out of the credentials dashboard. To come back, open it again from your add-on's page in the Heroku Dashboard.",
		Nav:     newNavHeader(addon, app), Style: template.CSS(dashboardCSS)})
}

// instanceMissing answers a lookup of the signed-in instance that failed.
func (s *server) instanceMissing(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrNotFound) {
		s.page(w, r, http.StatusNotFound, "Add-on not found",
			"This add-on is not registered with the credential service yet. Try again in a few minutes.")
		return
	}
	s.failed(w, r, err, "Please try again in a minute.")
}
