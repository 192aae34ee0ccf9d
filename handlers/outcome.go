package handlers

// Outcomes of one run of a rotate task, as Observer.Rotation hears them and
// metrics label them. The strings never change.
const (
	// OutcomeRotated: this run pushed and promoted the credential.
	OutcomeRotated = "rotated"
	// OutcomeAlreadyDone: the rotation had finished (promoted or failed)
	// before this run; only its revocation was made sure of.
	OutcomeAlreadyDone = "already_done"
	// OutcomeJoined: another rotation of the instance was in flight; the
	// request is served by it (I4).
	OutcomeJoined = "joined"
	// OutcomeMoved: a bulk task of a rotation that a customer's or an
	// operator's request moved to its own queue; that queue's task runs it.
	OutcomeMoved = "moved"
	// OutcomeSkipped: the request declined to overlap a running grace.
	OutcomeSkipped = "skipped"
	// OutcomeRefused: a limit of the instance (REKEY_MAX_PREVIOUS, or a
	// customer's limits) refused the rotation; a "refused" event says why.
	OutcomeRefused = "refused"
	// OutcomeFailed: the rotation ended for good; the instance keeps its
	// current credential.
	OutcomeFailed = "failed"
	// OutcomeRetry: a transient failure; asynq runs the task again.
	OutcomeRetry = "retry"
	// OutcomeRateLimited: waiting for Heroku's budget, which is no failure.
	OutcomeRateLimited = "rate_limited"
)

// Outcomes returns every Outcome constant, for metrics to export each
// from the start (outcome_test.go fails on one left out).
func Outcomes() []string {
	return []string{OutcomeRotated, OutcomeAlreadyDone, OutcomeJoined, OutcomeMoved, OutcomeSkipped,
		OutcomeRefused, OutcomeFailed, OutcomeRetry, OutcomeRateLimited}
}

// Outcomes of a revoke task, as Observer.Revocation hears them.
const (
	RevocationRevoked = "revoked"
	RevocationFailed  = "failed"
)

// RevocationOutcomes returns every Revocation constant, as Outcomes does
// the Outcome ones.
func RevocationOutcomes() []string { return []string{RevocationRevoked, RevocationFailed} }

// Steps of a rotation, as they start failure codes ("push:not_found") and
// error sentences.
const (
	stepMint   = "mint"
	stepVerify = "verify"
	stepPush   = "push"
	// stepReadBack is a read of the config Heroku holds: before an
	// instance's first mint (currentconfig.go).
	stepReadBack = "readback"
)
