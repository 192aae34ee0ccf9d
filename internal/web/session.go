package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

// Dashboard sessions live in a signed cookie, so the web process keeps no
// session state and any number of web dynos can serve a customer. A session
// is bound to the one instance the customer signed in to through Heroku.
const (
	sessionCookie = "rekey_session"
	navDataCookie = "heroku-nav-data"
	// sessionTTL is how long a sign-in lasts; Heroku signs the customer in
	// again whenever they open the dashboard from Heroku.
	sessionTTL = time.Hour
)

// session is what the cookie carries. It holds no secret.
type session struct {
	InstanceID string `json:"i"`
	// App and Addon are the app's and the add-on's names, from the sign-in
	// form's app and nav-data, for the navigation header.
	App     string `json:"a,omitempty"`
	Addon   string `json:"d,omitempty"`
	Expires int64  `json:"e"`
	// Nonce makes every sign-in's CSRF token different.
	Nonce string `json:"n"`
	// Deletes is the instance's DELETE mark at sign-in
	// (store.DeleteMark): a DELETE since ends the session, so that it
	// does not open the add-on registered again under the same id.
	Deletes string `json:"x"`
	// Gone says the instance was deprovisioned at sign-in: registered
	// again under the same id, with the same DELETE mark, it is another
	// add-on, which this session does not open.
	Gone bool `json:"g,omitempty"`
	// Again is when the instance had last been registered again after a
	// deprovisioning, at sign-in (Unix ms, 0: never): once it is registered
	// again since, deprovisioned again or not, the add-on is another one.
	Again int64 `json:"r,omitempty"`
	// User is a keyed digest of the Heroku user the sign-in's
	// user_scoped_resource_token verified (userKey), empty when the form
	// had none (V1, or a V3 form without it): a form drawn under an
	// earlier sign-in of the same user to the same add-on is accepted
	// (checkCSRF).
	User string `json:"u,omitempty"`
}

// newSession starts a session for in, whose DELETEs so far deletes marks,
// signed in by user (userKey; empty: no verified user).
func (s *server) newSession(in store.Instance, app, addon, user string, deletes store.DeleteMark) session {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return session{InstanceID: in.ID, App: app, Addon: addon, Expires: s.Now().Add(sessionTTL).Unix(),
		Nonce: hex.EncodeToString(b[:]), Deletes: deletes.String(), Gone: in.Deprovisioned(), Again: unixMS(in.RegisteredAgainAt),
		User: user}
}

// userKey is what a session keeps of the Heroku user id a sign-in's
// user_scoped_resource_token verified: a keyed digest, so that the cookie
// names no user.
func (s *server) userKey(userID string) string {
	return hex.EncodeToString(s.mac("user", userID)[:16])
}

// unixMS is t in Unix milliseconds, 0 for the zero time.
func unixMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// left is how long the session has to run.
func (s *server) left(sess session) time.Duration {
	return time.Unix(sess.Expires, 0).Sub(s.Now())
}

// sign encodes a session as payload.mac.
func (s *server) sign(sess session) string {
	payload, _ := json.Marshal(sess)
	p := base64.RawURLEncoding.EncodeToString(payload)
	return p + "." + base64.RawURLEncoding.EncodeToString(s.mac("session", p))
}

// mac is the HMAC of msg under the session key, for one purpose.
func (s *server) mac(purpose, msg string) []byte {
	m := hmac.New(sha256.New, s.sessionKey)
	m.Write([]byte(purpose + "\x00" + msg))
	return m.Sum(nil)
}

// readSession returns the request's valid, unexpired session.
func (s *server) readSession(r *http.Request) (session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false
	}
	p, sig, ok := strings.Cut(c.Value, ".")
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if !ok || err != nil || !hmac.Equal(mac, s.mac("session", p)) {
		return session{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	var sess session
	if err != nil || json.Unmarshal(payload, &sess) != nil || sess.InstanceID == "" {
		return session{}, false
	}
	return sess, s.Now().Unix() < sess.Expires
}

// csrfToken is the session's token for forms and state-changing requests:
// the sign-in's nonce, its expiry, and a MAC binding them to the add-on,
// the add-on's registration as the sign-in saw it (a DELETE and a
// registration again make it another add-on) and the Heroku user.
func (s *server) csrfToken(sess session) string {
	exp := strconv.FormatInt(sess.Expires, 10)
	gone := strconv.FormatBool(sess.Gone)
	again := strconv.FormatInt(sess.Again, 10)
	msg := strings.Join([]string{sess.Nonce, exp, sess.InstanceID, sess.Deletes, gone, again, sess.User}, "\x00")
	return sess.Nonce + "." + exp + "." + hex.EncodeToString(s.mac("csrf", msg))
}

// csrfCheck is what checkCSRF found of a form's token.
type csrfCheck int

const (
	csrfRefused csrfCheck = iota
	csrfOK
	// csrfEarlier: a token of an earlier sign-in to the same add-on, which
	// is not accepted (signed out, past its hour, or no verified user).
	csrfEarlier
)

// checkCSRF checks a form's token against sess. The session's own token
// passes. So does one drawn under an earlier sign-in of the same Heroku
// user (verified by user_scoped_resource_token) to the same add-on, in
// the same registration, while that sign-in's hour runs and neither it
// nor a later sign-in of the user's to the add-on was signed out
// (EndSignIns): two tabs of one add-on, the second opened from Heroku, both
// act. Its MAC binds all of that, so no other site, no page of another
// add-on or user, and no page older than its sign-in's hour makes one.
func (s *server) checkCSRF(ctx context.Context, sess session, token string) (csrfCheck, error) {
	if hexEqual(token, s.csrfToken(sess)) {
		return csrfOK, nil
	}
	nonce, rest, ok := strings.Cut(strings.ToLower(token), ".")
	exp, _, ok2 := strings.Cut(rest, ".")
	if _, err := hex.DecodeString(nonce); !ok || !ok2 || err != nil || len(nonce) != 32 || nonce == sess.Nonce {
		return csrfRefused, nil
	}
	earlier := sess
	earlier.Nonce = nonce
	var err error
	if earlier.Expires, err = strconv.ParseInt(exp, 10, 64); err != nil || !hexEqual(token, s.csrfToken(earlier)) {
		return csrfRefused, nil
	}
	if sess.User == "" || s.Now().Unix() >= earlier.Expires {
		return csrfEarlier, nil
	}
	switch ended, err := s.Store.SessionEnded(ctx, nonce); {
	case err != nil:
		return csrfRefused, err
	case ended:
		return csrfEarlier, nil
	}
	// The user signed out since that sign-in (in another tab), and signed
	// in again: the sign-out ended it too.
	switch out, ok, err := s.Store.SignInsEnded(ctx, sess.InstanceID, sess.User); {
	case err != nil:
		return csrfRefused, err
	case ok && earlier.Expires-int64(sessionTTL/time.Second) <= out.Unix():
		return csrfEarlier, nil
	}
	return csrfOK, nil
}

// overHTTPS reports whether r reached rekey over https: directly, or
// through Heroku's router, which ends TLS and says so in X-Forwarded-Proto.
func overHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// secure reports whether cookies set in answer to r must be Secure: always,
// unless REKEY_INSECURE_COOKIES allows plain http and r came over it.
func (s *server) secure(r *http.Request) bool {
	return !s.InsecureCookies || overHTTPS(r)
}

// setCookie sets an HttpOnly, SameSite=Lax cookie for the whole site; a
// ttl of zero or less removes it.
func (s *server) setCookie(w http.ResponseWriter, r *http.Request, name, value string, ttl time.Duration) {
	maxAge := int(ttl.Seconds())
	if ttl <= 0 {
		maxAge = -1
	}
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: s.secure(r), SameSite: http.SameSiteLaxMode})
}

// sessionCtxKey is the context key of a request's session.
type sessionCtxKey struct{}

func withSession(ctx context.Context, sess session) context.Context {
	return context.WithValue(ctx, sessionCtxKey{}, sess)
}

// sessionFrom returns the session requireSession checked.
func sessionFrom(ctx context.Context) session {
	sess, _ := ctx.Value(sessionCtxKey{}).(session)
	return sess
}

// formAddonField names, in every dashboard form, the add-on the page was
// drawn for. It is only compared with the session's: a form is applied to
// the session's add-on, which its CSRF token binds.
const formAddonField = "addon_id"

// maxDashboardForm bounds the body of a dashboard form; a larger one is
// refused with 413.
const maxDashboardForm = 64 << 10

// sessionEnded reports whether sess was signed out, or its instance
// deleted since it signed in (the mark is kept a day, a session lasts an
// hour), or deprovisioned when it signed in, and registered again: an
// add-on id registered again after a DELETE is opened by a new sign-in
// only, and so is it once deprovisioned again. Deleted and not registered
// again, the session goes on showing the add-on deprovisioned.
func (s *server) sessionEnded(ctx context.Context, sess session) (bool, error) {
	ended, err := s.Store.SessionEnded(ctx, sess.Nonce)
	if err != nil || ended {
		return ended, err
	}
	mark, err := s.Store.DeleteMark(ctx, sess.InstanceID)
	if err != nil || (mark.Same(store.ParseDeleteMark(sess.Deletes)) && !sess.Gone) {
		return false, err
	}
	in, err := s.Store.Instance(ctx, sess.InstanceID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil // the page says so
	}
	return err == nil && (!in.Deprovisioned() || unixMS(in.RegisteredAgainAt) != sess.Again), err
}

// sessionLives reports whether sess, read from the request's cookie, has
// not ended. It answers the request itself, and says so, when it may not
// look: too many requests of the session (429), or Redis unreadable (503,
// as every dashboard page answers then: failed).
func (s *server) sessionLives(w http.ResponseWriter, r *http.Request, sess session) (lives, answered bool) {
	if wait := s.polls.take(sess); wait > 0 {
		s.tooManyRequests(w, r, wait)
		return false, true
	}
	ended, err := s.sessionEnded(r.Context(), sess)
	if err != nil {
		s.failed(w, r, err, "Please try again in a minute.")
		return false, true
	}
	return !ended, false
}

// requireSession lets through requests with a dashboard session, and,
// under accessSessionCSRF and accessSignOut, the session's CSRF token in
// the form field csrf_token. Under accessSignOut a request without a live
// session is sent to the signed-out page (alreadySignedOut).
func (s *server) requireSession(next http.HandlerFunc, rule access) http.Handler {
	csrf := rule != accessSession
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, ok := s.readSession(r)
		if ok {
			lives, answered := s.sessionLives(w, r, sess)
			if answered {
				return
			}
			ok = lives
		}
		if !ok && rule == accessSignOut {
			s.alreadySignedOut(w, r, sess)
			return
		}
		if !ok {
			s.page(w, r, http.StatusUnauthorized, "Sign in through Heroku",
				"Your session has ended or you are not signed in. Open this dashboard again from your add-on's page in the Heroku Dashboard.")
			return
		}
		if csrf {
			r.Body = http.MaxBytesReader(w, r.Body, maxDashboardForm)
			if tooBig := (*http.MaxBytesError)(nil); errors.As(r.ParseForm(), &tooBig) {
				s.page(w, r.WithContext(withSession(r.Context(), sess)), http.StatusRequestEntityTooLarge, "Form too large",
					"This form is larger than the dashboard takes. Go back to the dashboard, reload it and try again.")
				return
			}
			check, err := s.checkCSRF(r.Context(), sess, r.PostFormValue("csrf_token"))
			if err != nil {
				s.failed(w, r, err, "Nothing was changed. Please try again in a minute.")
				return
			}
			if check != csrfOK {
				if id := r.PostFormValue(formAddonField); id != "" && id != sess.InstanceID {
					// The page was drawn for another add-on than the one
					// this browser signed in to since (another tab): the
					// dashboard a reload shows is that other one's, so the
					// page leads back to Heroku, not to it.
					s.page(w, r, http.StatusForbidden, "Signed in to another add-on",
						"Since this page was opened, this browser signed in to another add-on's dashboard, so nothing was changed. "+
							"To act on this add-on, open its dashboard again from its page in the Heroku Dashboard.")
					return
				}
				if check == csrfEarlier {
					s.page(w, r.WithContext(withSession(r.Context(), sess)), http.StatusForbidden, "Signed in again",
						"Since this page was opened, this browser signed in again to this add-on's dashboard (in another tab, "+
							"or from Heroku), so this form no longer applies and nothing was changed. Go back to the dashboard, reload it and try again.")
					return
				}
				s.page(w, r.WithContext(withSession(r.Context(), sess)), http.StatusForbidden, "Form expired",
					"This form could not be verified. Go back to the dashboard, reload it and try again.")
				return
			}
		}
		next(w, r.WithContext(withSession(r.Context(), sess)))
	})
}
