package health

import (
	"fmt"
	"strconv"
	"strings"
)

// MinRedisVersion is the oldest Redis rekey runs on. rekey's own commands
// need 6.0 (SET ... KEEPTTL in its scripts, SCAN ... TYPE in 'rekey keys
// reseal'); asynq needs 4.0.
const MinRedisVersion = "6.0.0"

// NoEviction is the maxmemory-policy under which Redis never drops a key
// to make room: the only one under which rekey's records, among them the
// index of credentials waiting for revocation, stay until rekey removes
// them.
const NoEviction = "noeviction"

// Server is what rekey reads of Redis's INFO at start.
type Server struct {
	// Version is INFO server's redis_version, "" when INFO did not say.
	Version string
	// MaxmemoryPolicy is INFO memory's maxmemory_policy, "" when INFO did
	// not say.
	MaxmemoryPolicy string
	// EvictedKeys is INFO stats' evicted_keys: how many keys Redis has
	// evicted since it started; -1 when INFO did not say.
	EvictedKeys int64
	// ConnectedReplicas is INFO replication's connected_slaves, -1 when
	// INFO did not say.
	ConnectedReplicas int
}

// ParseInfo reads a Server from the text of INFO (any sections; fields it
// does not know are ignored).
func ParseInfo(info string) Server {
	s := Server{ConnectedReplicas: -1, EvictedKeys: -1}
	for line := range strings.Lines(info) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch name {
		case "redis_version":
			s.Version = value
		case "maxmemory_policy":
			s.MaxmemoryPolicy = value
		case "evicted_keys":
			if n, err := strconv.ParseInt(value, 10, 64); err == nil {
				s.EvictedKeys = n
			}
		case "connected_slaves":
			if n, err := strconv.Atoi(value); err == nil {
				s.ConnectedReplicas = n
			}
		}
	}
	return s
}

// VersionError is the refusal of a Redis older than MinRedisVersion.
type VersionError struct{ Version string }

func (e *VersionError) Error() string {
	return fmt.Sprintf("Redis at REDIS_URL is version %s; rekey needs Redis %s or later (on Heroku, "+
		"`heroku redis:upgrade` upgrades a Key-Value Store)", e.Version, strings.TrimSuffix(MinRedisVersion, ".0"))
}

// CheckVersion returns a *VersionError when s's Redis is older than
// MinRedisVersion, and nil when it is not or its version is unknown (a
// Redis-compatible service that does not say is given the benefit of the
// doubt: a command it lacks fails with Redis's own error).
func (s Server) CheckVersion() error {
	if s.Version == "" || !older(s.Version, MinRedisVersion) {
		return nil
	}
	return &VersionError{Version: s.Version}
}

// EvictionWarning says, when Redis may evict keys to make room (a
// maxmemory-policy other than noeviction), what that risks and what to
// set; "" under noeviction or when the policy is unknown.
func (s Server) EvictionWarning() string {
	if s.MaxmemoryPolicy == "" || s.MaxmemoryPolicy == NoEviction {
		return ""
	}
	return "Redis's maxmemory-policy is " + s.MaxmemoryPolicy + ": when Redis fills up it may evict rekey's " +
		"records, among them the index of old credentials waiting for revocation, which are then never revoked; " +
		"set it to noeviction (Heroku Key-Value Store: `heroku redis:maxmemory REDIS --policy noeviction`; " +
		"elsewhere: maxmemory-policy noeviction in redis.conf)"
}

// ReplicasWarning says, when fewer replicas are connected to Redis than
// REKEY_REDIS_WAIT_REPLICAS (want) asks to acknowledge rekey's writes, that
// workers will not mint, push or revoke until they are; "" when enough
// are, or when INFO did not say.
func (s Server) ReplicasWarning(want int) string {
	if want == 0 || s.ConnectedReplicas < 0 || s.ConnectedReplicas >= want {
		return ""
	}
	return fmt.Sprintf("REKEY_REDIS_WAIT_REPLICAS is %d but Redis has %d replicas connected: workers mint, push and "+
		"revoke only once that many acknowledge rekey's writes, and retry until then; lower the setting, or connect "+
		"the replicas", want, s.ConnectedReplicas)
}

// older reports whether dotted version a is before b, comparing numbers
// part by part; a part that is no number counts as 0.
func older(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		x, y := part(as, i), part(bs, i)
		if x != y {
			return x < y
		}
	}
	return false
}

func part(parts []string, i int) int {
	if i >= len(parts) {
		return 0
	}
	n, _ := strconv.Atoi(parts[i])
	return n
}
