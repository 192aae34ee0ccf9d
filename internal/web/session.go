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
}

// newSession starts a session for in, whose DELETEs so far deletes marks.
func (s *server) newSession(in store.Instance, app, addon string, deletes store.DeleteMark) session {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return session{InstanceID: in.ID, App: app, Addon: addon, Expires: s.Now().Add(sessionTTL).Unix(),
		Nonce: hex.EncodeToString(b[:]), Deletes: deletes.String(), Gone: in.Deprovisioned(), Again: unixMS(in.RegisteredAgainAt)}
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

// csrfToken is the session's token for forms and state-changing requests.
func (s *server) csrfToken(sess session) string {
	return hex.EncodeToString(s.mac("csrf", sess.Nonce+"\x00"+sess.InstanceID))
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

// requireSession lets through requests with a dashboard session, and, when
// csrf is set, the session's CSRF token in the form field csrf_token.
func (s *server) requireSession(next http.HandlerFunc, csrf bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, ok := s.readSession(r)
		if ok {
			ended, err := s.sessionEnded(r.Context(), sess)
			if err != nil {
				s.Logger.Error().Err(err).Str("route", r.Pattern).Msg("request failed")
				s.page(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again in a minute.")
				return
			}
			ok = !ended
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
			if !hexEqual(r.PostFormValue("csrf_token"), s.csrfToken(sess)) {
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
				s.page(w, r.WithContext(withSession(r.Context(), sess)), http.StatusForbidden, "Form expired",
					"This form could not be verified. Go back to the dashboard, reload it and try again.")
				return
			}
		}
		next(w, r.WithContext(withSession(r.Context(), sess)))
	})
}
