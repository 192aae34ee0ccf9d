package pgissuer

import (
	"net"
	"net/url"
	"strings"

	"github.com/rekeyhq/rekey/internal/secret"
)

// configVars fills the instance's registered config vars (README
// "The PostgreSQL issuer"): a name ending in _URL gets the postgres:// URL, with
// user and password escaped by net/url; _USER, _USERNAME, _PASSWORD,
// _HOST, _PORT and _DATABASE (or _NAME, _DB) get their part. Any other name
// is a permanent failure before anything is created: rekey would otherwise
// push a var it cannot fill.
func configVars(loc Location, base *url.URL, role, password string) (map[string]secret.String, error) {
	u := *base
	u.User = url.UserPassword(role, password)
	u.Path = "/" + loc.Database
	host, port, err := net.SplitHostPort(base.Host)
	if err != nil {
		host, port = base.Host, "5432"
	}
	out := make(map[string]secret.String, len(loc.ConfigVars))
	for _, name := range loc.ConfigVars {
		v, ok := part(name, u.String(), role, password, host, port, loc.Database)
		if !ok {
			return nil, permanent("mint", CodeBadConfigVar, "config var %s has no PostgreSQL meaning: name it *_URL, *_USER, *_PASSWORD, *_HOST, *_PORT or *_DATABASE", name)
		}
		out[name] = secret.New(v)
	}
	return out, nil
}

func part(name, dsn, role, password, host, port, database string) (string, bool) {
	suffixes := []struct {
		suffix, value string
	}{
		{"_URL", dsn}, {"_USERNAME", role}, {"_USER", role}, {"_PASSWORD", password},
		{"_HOST", host}, {"_PORT", port}, {"_DATABASE", database}, {"_NAME", database}, {"_DB", database},
	}
	for _, s := range suffixes {
		if strings.HasSuffix(name, s.suffix) || name == strings.TrimPrefix(s.suffix, "_") {
			return s.value, true
		}
	}
	return "", false
}
