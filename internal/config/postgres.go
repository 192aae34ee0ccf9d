package config

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/rekeyhq/rekey/internal/issuer/pgissuer"
)

// IssuerPostgres is REKEY_ISSUER=postgres, the built-in PostgreSQL issuer.
const IssuerPostgres = "postgres"

// postgresServers reads REKEY_POSTGRES_SERVERS, or the file named by
// REKEY_POSTGRES_SERVERS_FILE (README "The PostgreSQL issuer"). Its errors never
// quote the value: it holds admin passwords.
func (p *parser) postgresServers() []pgissuer.Server {
	inline, file := p.str("REKEY_POSTGRES_SERVERS", ""), p.str("REKEY_POSTGRES_SERVERS_FILE", "")
	name, data := "REKEY_POSTGRES_SERVERS", []byte(inline)
	switch {
	case inline != "" && file != "":
		p.fail(errors.New("set REKEY_POSTGRES_SERVERS or REKEY_POSTGRES_SERVERS_FILE, not both"))
		return nil
	case file != "":
		if strings.HasPrefix(file, "{") || strings.Contains(file, "://") {
			// The servers themselves, given where their file's path goes:
			// not quoted, they hold admin passwords.
			p.fail(errors.New("REKEY_POSTGRES_SERVERS_FILE names a file holding the servers' JSON, and this value " +
				"(not quoted here: it may hold a password) is the JSON or a URL itself: set it as REKEY_POSTGRES_SERVERS instead"))
			return nil
		}
		b, err := os.ReadFile(file)
		if err != nil {
			p.fail(fmt.Errorf("REKEY_POSTGRES_SERVERS_FILE: cannot read %s", p.shown(file)))
			return nil
		}
		name, data = "REKEY_POSTGRES_SERVERS_FILE", b
	case inline == "":
		return nil
	}
	servers, err := pgissuer.ParseServers(data)
	if err != nil {
		p.fail(fmt.Errorf("%s %w", name, err))
	}
	return servers
}

// postgresKey reads REKEY_POSTGRES_KEY, base64 of 32 bytes or more.
func (p *parser) postgresKey(name string) []byte {
	v := p.str(name, "")
	if v == "" {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(b) < 32 {
		p.fail(fmt.Errorf("%s must be base64 of 32 bytes or more (make one with: openssl rand -base64 32)", name))
	}
	return b
}

// PostgresDerivationKey is the key the PostgreSQL issuer derives role names
// and passwords from: REKEY_POSTGRES_KEY, or else one derived from the first
// key of REKEY_ENCRYPTION_KEYS. It must not change while rotations are in
// flight; set REKEY_POSTGRES_KEY before rotating the encryption keys.
func (c *Config) PostgresDerivationKey() []byte {
	if len(c.PostgresKey) > 0 {
		return c.PostgresKey
	}
	if len(c.EncryptionKeys) == 0 {
		return nil
	}
	h := hmac.New(sha256.New, c.EncryptionKeys[0])
	h.Write([]byte("rekey-postgres-issuer-key"))
	return h.Sum(nil)
}

// postgresMissing lists what REKEY_ISSUER=postgres needs and lacks.
func (c *Config) postgresMissing() []error {
	if c.Issuer != IssuerPostgres || len(c.PostgresServers) > 0 {
		return nil
	}
	return []error{errors.New("REKEY_POSTGRES_SERVERS or REKEY_POSTGRES_SERVERS_FILE must be set when REKEY_ISSUER is postgres")}
}

// postgresIgnored says which of the PostgreSQL issuer's variables are set
// while REKEY_ISSUER is http, which ignores them, or "" when none is: an
// operator who set the servers and left REKEY_ISSUER at its default has
// the webhook mint, or a worker that refuses to start for want of it.
func (c *Config) postgresIgnored() string {
	if c.Issuer != IssuerHTTP || len(c.postgresSet) == 0 {
		return ""
	}
	return c.postgresSetPhrase() + " but REKEY_ISSUER is http (its default), which ignores them: credentials are " +
		"minted by the webhook at REKEY_ISSUER_URL; set REKEY_ISSUER=postgres for the PostgreSQL issuer, or unset them"
}

// postgresSetPhrase says which of the PostgreSQL issuer's variables are
// set: "REKEY_POSTGRES_SERVERS is set".
func (c *Config) postgresSetPhrase() string {
	if len(c.postgresSet) > 1 {
		return strings.Join(c.postgresSet, " and ") + " are set"
	}
	return strings.Join(c.postgresSet, "") + " is set"
}
