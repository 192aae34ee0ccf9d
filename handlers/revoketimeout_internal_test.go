package handlers

import (
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/tasks"
)

// A revoke task's run outlasts the issuer calls it may make, each at its
// own limit: a usage question while holds are on, then DELETE, and after a
// 404 or an answer that does not say revoked, verify and a probe's verify.
// At a minute, an issuer answering each call in 20 s had every such run cut
// off by asynq and retried, its revocation gone dead after the last retry.
func TestARevokeRunOutlastsItsIssuerCalls(t *testing.T) {
	const margin = 10 * time.Second // Redis's share of the run
	if need := usageTimeout + 3*issuer.CallTimeout + margin; tasks.RevokeTimeout < need {
		t.Errorf("tasks.RevokeTimeout is %s; a run's issuer calls may take %s", tasks.RevokeTimeout, need)
	}
}
