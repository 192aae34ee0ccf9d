package health_test

import (
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/health"
)

// TestCheckVersionRefusesOnlyRedisBeforeTheMinimum compares versions part
// by part (10.0 is after 6.0) and lets a server that names none through.
func TestCheckVersionRefusesOnlyRedisBeforeTheMinimum(t *testing.T) {
	t.Parallel()
	for version, refused := range map[string]bool{"5.0.7": true, "4.0.14": true, "6.0.0": false, "6.2.14": false,
		"7.4.1": false, "10.0.0": false, "": false} {
		err := health.ParseInfo("# Server\r\nredis_version:" + version + "\r\n").CheckVersion()
		if (err != nil) != refused {
			t.Errorf("Redis %q: %v, want refused %v", version, err, refused)
		}
		if err != nil && !strings.Contains(err.Error(), "6.0") {
			t.Errorf("Redis %q: %v does not name the minimum", version, err)
		}
	}
}

// TestEvictionWarningOnlyForPoliciesThatEvict warns of every policy but
// noeviction, naming it and the command that sets noeviction.
func TestEvictionWarningOnlyForPoliciesThatEvict(t *testing.T) {
	t.Parallel()
	for policy, warns := range map[string]bool{"noeviction": false, "": false, "allkeys-lru": true,
		"volatile-lru": true, "volatile-ttl": true, "allkeys-random": true} {
		w := health.ParseInfo("# Memory\r\nmaxmemory_policy:" + policy + "\r\n").EvictionWarning()
		if (w != "") != warns || warns && (!strings.Contains(w, policy) || !strings.Contains(w, "--policy noeviction")) {
			t.Errorf("policy %q: warning %q, want one: %v", policy, w, warns)
		}
	}
}

// TestReplicasWarningWhenFewerAreConnectedThanWaitedFor warns only when
// REKEY_REDIS_WAIT_REPLICAS asks for more replicas than INFO replication
// counts, naming both; a Redis whose INFO does not say is not warned of.
func TestReplicasWarningWhenFewerAreConnectedThanWaitedFor(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		info  string
		want  int
		warns bool
	}{
		{"connected_slaves:0", 0, false}, {"connected_slaves:0", 1, true}, {"connected_slaves:1", 1, false},
		{"connected_slaves:1", 2, true}, {"connected_slaves:3", 2, false}, {"role:master", 1, false},
	} {
		w := health.ParseInfo("# Replication\r\n" + c.info + "\r\n").ReplicasWarning(c.want)
		if (w != "") != c.warns || c.warns && !strings.Contains(w, "REKEY_REDIS_WAIT_REPLICAS") {
			t.Errorf("%s, waiting for %d: warning %q, want one: %v", c.info, c.want, w, c.warns)
		}
	}
}
