package web

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"unicode"
)

// Heroku's single sign-on form carries nav-data: base64 (URL alphabet,
// padding dropped) of a small JSON document naming the add-on and the app
// ({"addon":"Rekey","appname":"my-app","addons":[...]}). Heroku asks add-on
// dashboards to set it as the heroku-nav-data cookie and to show Heroku's
// navigation header from it (README "Customer dashboard"). rekey renders
// that header itself, on the server: the page loads nothing from elsewhere
// and reads right without the internet.

// navData is the part of nav-data the header shows.
type navData struct {
	Addon   string `json:"addon"`
	AppName string `json:"appname"`
}

// maxNameLen bounds a name taken from the sign-in form, which the session
// cookie carries.
const maxNameLen = 100

// maxNavDataLen is the longest nav-data set as the heroku-nav-data
// cookie: Heroku's is a few hundred bytes, and browsers drop a cookie of
// more than about 4 KB, so a longer one is not set at all.
const maxNavDataLen = 3000

// parseNavData reads nav-data; a value that does not decode gives nothing,
// and the page shows what the rest of the form said.
func parseNavData(raw string) navData {
	raw = strings.TrimRight(strings.TrimSpace(raw), "=")
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(raw)
	}
	var nd navData
	if err != nil || json.Unmarshal(b, &nd) != nil {
		return navData{}
	}
	return navData{Addon: cleanName(nd.Addon), AppName: cleanName(nd.AppName)}
}

// base64Text reports whether s is written in base64's letters (standard
// or URL alphabet, padding included), as Heroku's nav-data is: only such
// nav-data is set as the heroku-nav-data cookie. The token does not cover
// nav-data, so the customer's browser may post anything in it, and a byte
// no cookie value may hold ('"', ';', '\\', a space, a control) made Go's
// net/http log a line of its own, outside rekey's JSON lines, and set
// what was left.
func base64Text(s string) bool {
	return strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=") == ""
}

// cleanName keeps a name printable and short.
func cleanName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, strings.TrimSpace(s))
	if r := []rune(s); len(r) > maxNameLen {
		s = string(r[:maxNameLen])
	}
	return s
}

// appNamePattern is Heroku's rule for app names; only such a name becomes
// part of a link.
var appNamePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{1,29}$`)

// navHeader is Heroku's navigation header as the dashboard shows it.
type navHeader struct {
	// Addon and App are the names the sign-in gave; empty when unknown.
	Addon, App string
	// AppURL is the app's resources page in the Heroku Dashboard, where
	// the customer came from; empty when App is not a Heroku app name.
	AppURL string
	// CSRF, when set, adds the sign-out button, whose form needs it.
	CSRF string
	// InstanceID is the session's add-on, which the sign-out form names
	// (formAddonField).
	InstanceID string
}

// herokuDashboard is where the header's Heroku links lead.
const herokuDashboard = "https://dashboard.heroku.com"

func newNavHeader(addon, app string) navHeader {
	h := navHeader{Addon: addon, App: app}
	if appNamePattern.MatchString(app) {
		h.AppURL = herokuDashboard + "/apps/" + url.PathEscape(app) + "/resources"
	}
	return h
}
