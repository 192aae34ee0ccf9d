package devstack

import (
	"context"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // Heroku's SSO protocol defines resource_token as SHA-1.
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/web"
)

// LoginPath is dev's stand-in for Heroku's side of the SSO sign-in: it
// answers a page with the form Heroku would post, signed with this run's
// HEROKU_SSO_SALT, that the browser posts to /sso/login. It exists only in
// `rekey dev`, never in `rekey web`.
const LoginPath = "/dev/login"

// webSecrets are the web process's credentials for one dev run, fresh each
// time and printed once, since they protect nothing but this run.
type webSecrets struct {
	apiToken, password, ssoSalt secret.String
}

func newWebSecrets() webSecrets {
	return webSecrets{apiToken: secret.New(randomHex(16)), password: secret.New(randomHex(8)),
		ssoSalt: secret.New(randomHex(16))}
}

func (w webSecrets) addTo(vars map[string]string) {
	vars["REKEY_API_TOKEN"] = w.apiToken.Reveal()
	vars["REKEY_DASHBOARD_PASSWORD"] = w.password.Reveal()
	vars["HEROKU_SSO_SALT"] = w.ssoSalt.Reveal()
}

// serveWeb serves the web process, and LoginPath (also at /, the base URL
// it prints, which the web process answers 404), on WebAddr (r.lis, taken
// before the run started anything), prints how to reach them, and returns
// a function that stops the server.
func (r *run) serveWeb(ctx context.Context, samples []sandbox.Sample) (func(), error) {
	h, err := r.st.WebHandler()
	if err != nil {
		return nil, err
	}
	l := r.lis
	srv := &http.Server{Handler: withLogin(h, r.loginPage(samples)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	fmt.Fprint(r.o.Stdout, r.access(l.Addr(), samples[0].ID))
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(r.o.Stderr, "rekey dev: web: shutdown: %v\n", err)
		}
	}, nil
}

// withLogin serves login at LoginPath and sends the base URL there (the
// first URL dev prints, and the one a browser is pointed at first; the
// web process itself serves nothing there), both with the headers every
// answer of the web process carries (no framing, no caching: the page
// holds this run's dashboard password). Every other request reaches
// webProcess as it came: a ServeMux in front would answer a path with
// empty or dot segments (//api/v1/...) with a redirect of its own, where
// the web process answers the API's JSON.
func withLogin(webProcess, login http.Handler) http.Handler {
	own := web.SecurityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == LoginPath {
			login.ServeHTTP(w, r)
			return
		}
		http.Redirect(w, r, LoginPath, http.StatusFound)
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		get := r.Method == http.MethodGet || r.Method == http.MethodHead
		if get && (r.URL.Path == LoginPath || r.URL.Path == "/") {
			own.ServeHTTP(w, r)
			return
		}
		webProcess.ServeHTTP(w, r)
	})
}

// access is the text dev prints once: where everything is and how to get in.
func (r *run) access(addr net.Addr, instanceID string) string {
	base, everywhere := browseBase(addr)
	token, pass := r.web.apiToken.Reveal(), r.web.password.Reveal()
	var s strings.Builder
	fmt.Fprintf(&s, "\nrekey dev serves the web process at %s until Ctrl-C (this run's credentials, made afresh each run):\n", base)
	if everywhere {
		fmt.Fprintf(&s, "  it listens on every interface (--web-addr %s), and %s signs anyone in without a password:\n"+
			"  whoever reaches this machine on the network reaches the dashboard (--web-addr 127.0.0.1:PORT keeps it here)\n",
			r.o.WebAddr, LoginPath)
	}
	fmt.Fprintf(&s, "  customer dashboard  %s%s?instance=%s\n", base, LoginPath, instanceID)
	fmt.Fprintf(&s, "                      signs in as Heroku's SSO would, with this run's HEROKU_SSO_SALT\n")
	fmt.Fprintf(&s, "  monitoring          %s/monitoring  (asynqmon; any user name, password %s)\n", base, pass)
	fmt.Fprintf(&s, "  metrics             %s/metrics  (Authorization: Bearer %s)\n", base, token)
	fmt.Fprintf(&s, "  HTTP API            %s/api/v1  (REKEY_API_TOKEN=%s)\n", base, token)
	fmt.Fprintf(&s, "  try it              curl -sS -H 'Authorization: Bearer %s' %s/api/v1/instances/%s\n", token, base, instanceID)
	// The operator commands need this run's Redis and keys; a REDIS_URL of
	// the environment (which may hold a password) is named, not printed.
	redisURL := `"$REDIS_URL"`
	if r.o.RedisURL == "" {
		redisURL = r.cfg.RedisURL
	}
	fmt.Fprintf(&s, "  CLI                 REDIS_URL=%s REKEY_ENCRYPTION_KEYS=%s rekey instances show %s\n\n",
		redisURL, r.sb.EncryptionKey.Reveal(), instanceID)
	return s.String()
}

// browseBase is the base URL dev prints for the address it listens on.
// Browsers refuse to open the unspecified address (0.0.0.0, [::]) that
// --web-addr :8080 listens on, so such a listener is printed as
// 127.0.0.1, which it serves too; everywhere reports it.
func browseBase(addr net.Addr) (base string, everywhere bool) {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String(), false
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "http://" + net.JoinHostPort("127.0.0.1", port), true
	}
	return "http://" + net.JoinHostPort(host, port), false
}

// loginTemplate is the form Heroku's dashboard posts at SSO sign-in.
var loginTemplate = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rekey dev: sign in</title></head>
<body onload="document.forms[0].submit()">
<p>rekey dev signs you in to the dashboard of add-on {{.ID}} as Heroku's SSO would.</p>
<form method="post" action="/sso/login">
<input type="hidden" name="resource_id" value="{{.ID}}">
<input type="hidden" name="resource_token" value="{{.Token}}">
<input type="hidden" name="timestamp" value="{{.Timestamp}}">
<input type="hidden" name="app" value="{{.App}}">
<input type="hidden" name="email" value="dev@example.com">
<input type="hidden" name="user_id" value="dev-user">
<button type="submit">Sign in</button>
</form>
</body></html>
`))

// loginPage answers LoginPath with a freshly signed SSO form for the
// instance named by ?instance= (default the first sample), so the link
// works however long after the start it is opened.
func (r *run) loginPage(samples []sandbox.Sample) http.Handler {
	apps := make(map[string]string, len(samples))
	for _, s := range samples {
		apps[s.ID] = s.App
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		id := req.URL.Query().Get("instance")
		if id == "" {
			id = samples[0].ID
		}
		app, ok := apps[id]
		if !ok {
			http.Error(w, "rekey dev signs in only to its own sample instances", http.StatusNotFound)
			return
		}
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		sum := sha1.Sum([]byte(id + ":" + r.web.ssoSalt.Reveal() + ":" + ts)) //nolint:gosec // protocol-defined
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = loginTemplate.Execute(w, map[string]string{"ID": id, "Token": hex.EncodeToString(sum[:]),
			"Timestamp": ts, "App": app})
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
