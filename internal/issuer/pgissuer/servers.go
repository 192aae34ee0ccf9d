package pgissuer

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/rekeyhq/rekey/internal/secret"
)

// Server is one PostgreSQL server rekey administers, as the partner
// configures it in REKEY_POSTGRES_SERVERS (README "The PostgreSQL issuer").
type Server struct {
	// ID names the server in registrations ("database": {"server": ID}).
	ID string
	// AdminURL is the postgres:// URL of a role with CREATEROLE (and the
	// ADMIN option on the owner roles) or a superuser, sslmode included.
	// It is a secret: it never leaves the issuer.
	AdminURL secret.String
	// AppURL is the host, port and query (sslmode and the like) customers'
	// apps connect with, without credentials or database; empty means
	// AdminURL's.
	AppURL string
}

// serverIDPattern is what a server id must look like: it travels in
// registrations and error sentences.
var serverIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// serverEntry is one server in the JSON: a bare admin URL, or an object.
type serverEntry struct {
	AdminURL string `json:"admin_url"`
	AppURL   string `json:"app_url"`
}

func (e *serverEntry) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		e.AdminURL = s
		return nil
	}
	type plain serverEntry
	return json.Unmarshal(b, (*plain)(e))
}

// ParseServers reads REKEY_POSTGRES_SERVERS' JSON: an object from server id
// to the admin URL, or to {"admin_url": ..., "app_url": ...}. Its errors
// name the server, never a URL's text, which holds a password.
func ParseServers(data []byte) ([]Server, error) {
	var m map[string]serverEntry
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, errors.New("is not a JSON object from server id to a postgres:// URL")
	}
	if len(m) == 0 {
		return nil, errors.New("names no server")
	}
	servers := make([]Server, 0, len(m))
	for id, e := range m {
		s, err := newServer(id, e)
		if err != nil {
			return nil, err
		}
		servers = append(servers, s)
	}
	sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
	return servers, nil
}

func newServer(id string, e serverEntry) (Server, error) {
	if !serverIDPattern.MatchString(id) {
		if strings.ContainsAny(id, ":@/") || secret.LooksGenerated(id) {
			// A URL where the id goes, the JSON written the wrong way
			// round ({"postgres://admin:pw@host/db": "main"}): its
			// password is not quoted.
			return Server{}, errors.New("has a server id that looks like a URL or a secret (not quoted here): " +
				"write it as {\"ID\": \"postgres://user:password@host/db\"}, the id first, in lowercase letters, digits, '-' and '_'")
		}
		return Server{}, fmt.Errorf("server id %q is not valid: use lowercase letters, digits, '-' and '_'", id)
	}
	u, err := url.Parse(e.AdminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return Server{}, fmt.Errorf("server %s: admin_url is not a postgres://user:password@host/db URL", id)
	}
	if e.AppURL != "" {
		a, err := url.Parse(e.AppURL)
		if err != nil || (a.Scheme != "postgres" && a.Scheme != "postgresql") || a.Host == "" || a.User != nil {
			return Server{}, fmt.Errorf("server %s: app_url must be a postgres://host:port URL without credentials", id)
		}
	}
	return Server{ID: id, AdminURL: secret.New(e.AdminURL), AppURL: e.AppURL}, nil
}

// appOnlyParams are the URL parameters that name who logs in, with what
// secret, or to which database: an admin URL written in libpq's
// ?user=…&password=… form lends customers none of them.
var appOnlyParams = []string{"user", "password", "passfile", "sslpassword", "dbname"}

// appBase is the URL customers connect to, without user or database.
func (s Server) appBase() *url.URL {
	raw := s.AppURL
	if raw == "" {
		raw = s.AdminURL.Reveal()
	}
	u, _ := url.Parse(raw) // checked by newServer
	rawQuery := u.RawQuery
	if q := u.Query(); rawQuery != "" {
		for _, p := range appOnlyParams {
			q.Del(p)
		}
		rawQuery = q.Encode()
	}
	return &url.URL{Scheme: "postgres", Host: u.Host, RawQuery: rawQuery}
}
