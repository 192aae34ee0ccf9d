package pgissuer

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"strings"
)

// RolePrefix starts the name of every role rekey mints. With the comment
// mark (roleMark) it is how rekey knows a role is its own.
const RolePrefix = "rekey_"

// derive holds the key that turns a rotation into its role name and
// password. Deriving them (HMAC-SHA256 of the instance and rotation ids)
// rather than drawing them makes a rerun of a mint find the same role and
// return the same password without storing anything: the password exists
// only in the issuer's answer, sealed by the store while pending. The key
// must stay the same while rotations are in flight (docs/design.md I6).
type derive struct{ key []byte }

// roleName is RolePrefix and 20 hex digits: unguessable without the key,
// short of PostgreSQL's 63-byte limit, and lowercase, so it reads the same
// quoted or not.
func (d derive) roleName(instanceID, rotationID string) string {
	return RolePrefix + hex.EncodeToString(d.mac("role", instanceID, rotationID))[:20]
}

// password is 256 bits in base64url, whose characters are all unreserved
// in a URL, so the URL and the split vars carry it alike.
func (d derive) password(instanceID, rotationID string) string {
	return base64.RawURLEncoding.EncodeToString(d.mac("password", instanceID, rotationID))
}

// lockKey is the advisory lock key of a role's mints and revokes
// (locked): the first 8 bytes of an HMAC of its name, as a bigint. A key
// other roles of the server can compute (hashtext of the name, which
// pg_roles lists to everyone) is one they can hold, keeping a revocation
// waiting while the old credential still works.
func (d derive) lockKey(role string) int64 {
	return int64(binary.BigEndian.Uint64(d.mac("lock", role)))
}

func (d derive) mac(purpose string, parts ...string) []byte {
	h := hmac.New(sha256.New, d.key)
	h.Write([]byte("rekey-postgres-" + purpose))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return h.Sum(nil)
}

// scramIterations is PostgreSQL's own default for SCRAM-SHA-256.
const scramIterations = 4096

// scramVerifier turns a password into the SCRAM-SHA-256 verifier
// PostgreSQL stores (RFC 5802, RFC 7677), so CREATE ROLE sends the verifier
// and never the password: it then appears in no server log or
// pg_stat_statements, whatever the server logs.
func scramVerifier(password string) string {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	salted, _ := pbkdf2.Key(sha256.New, password, salt, scramIterations, sha256.Size)
	clientKey := hmacSHA256(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	var b strings.Builder
	b.WriteString("SCRAM-SHA-256$4096:")
	b.WriteString(b64(salt) + "$" + b64(stored[:]) + ":" + b64(serverKey))
	return b.String()
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// quoteLiteral quotes s as an SQL string literal for the statements that
// take no parameters (CREATE ROLE's PASSWORD, COMMENT ON). Every value it
// quotes is rekey's own (a verifier, ids checked by store.ValidID), and
// standard_conforming_strings is on in every supported PostgreSQL.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, "\x00", ""), "'", "''") + "'"
}
