package store

// This file holds the words rekey writes into Redis and compares there:
// rotation states, credential states and audit event types. The Lua
// scripts write and compare the same words as literals;
// TestScriptsUseTheVocabulary (vocabulary_test.go) fails when a script
// uses one that is not declared here. A word never changes once released:
// stored records and audit streams keep it.

// Rotation states (docs/design.md, "What one rotation does"), stored as
// a rotation hash's "state".
const (
	// RotationRequested: claimed (claimScript), nothing minted yet.
	RotationRequested = "requested"
	// RotationMinted: the issuer minted a pending credential (savePendingScript);
	// it may be pushed to Heroku.
	RotationMinted = "minted"
	// RotationPromoted: the pushed credential became current (promoteScript).
	// Final.
	RotationPromoted = "promoted"
	// RotationFailed: the rotation ended without a promotion (failScript);
	// the instance keeps its current credential. Final.
	RotationFailed = "failed"
	// RotationCancelled: a requested rotation whose batch was cancelled
	// before any work (claimScript). Final.
	RotationCancelled = "cancelled"
)

// Credential states (docs/design.md, "What one rotation does"), stored
// as a credential hash's "state".
const (
	// CredentialPending: minted for a rotation, its config sealed, not yet
	// promoted. Never revoked (I1).
	CredentialPending = "pending"
	// CredentialCurrent: the credential the instance's apps are meant to
	// hold. Never revoked (I1).
	CredentialCurrent = "current"
	// CredentialPrevious: superseded by a promotion, revoked at its
	// revoke_at, after the grace (I3).
	CredentialPrevious = "previous"
	// CredentialRevoked: a previous credential the issuer revoked. Final,
	// but for a mint that answers it again (savePendingScript), which makes
	// it discarded, due again at once.
	CredentialRevoked = "revoked"
	// CredentialDiscarded: a pending credential that was never published
	// (its rotation failed before any push, or it came too late); revoked
	// at once. Also an unconfirmed credential, or a pending one whose push
	// had an unknown outcome, of a deprovisioned instance: revoked after
	// the grace. Its state stays discarded after the revocation; revoked_at
	// records it.
	CredentialDiscarded = "discarded"
	// CredentialUnconfirmed is a credential of a failed rotation whose push
	// was attempted with an unknown outcome: Heroku may hold it, so it is
	// never revoked on its own (I1). A promotion sets the current credential
	// aside so too while a push of it is unanswered, and a registration
	// again after a DELETE the credentials Heroku may still hold. The
	// instance's next promotion, which replaces its config vars on Heroku,
	// makes it previous (promote).
	CredentialUnconfirmed = "unconfirmed"
)

// Audit event types, stored as an event's "type" (Event.Type). The
// dashboard's timeline turns each into a fixed sentence (internal/web).
const (
	// EventRegistered: an instance was registered, or registered again
	// after a deprovisioning.
	EventRegistered = "registered"
	// EventDeprovisioned: the partner deprovisioned the instance.
	EventDeprovisioned = "deprovisioned"
	// EventRequested: a rotation was claimed; the detail is its reason.
	EventRequested = "requested"
	// EventJoined: a request joined the rotation already in flight (I4).
	EventJoined = "joined"
	// EventCancelled: a requested rotation was cancelled with its batch.
	EventCancelled = "cancelled"
	// EventRefused: a rotation request was refused by a limit on the
	// instance's superseded credentials.
	EventRefused = "refused"
	// EventMinted: the issuer minted the rotation's pending credential.
	EventMinted = "minted"
	// EventPushed: the pending credential reached Heroku's config.
	EventPushed = "pushed"
	// EventPromoted: the pushed credential became current.
	EventPromoted = "promoted"
	// EventRevokeScheduled: a superseded credential was given its revoke
	// time; the detail is that time in ms.
	EventRevokeScheduled = "revoke_scheduled"
	// EventRevokeExpedited: a previous credential's revoke time was moved
	// to now; the detail names who asked.
	EventRevokeExpedited = "revoke_expedited"
	// EventRevoked: the issuer revoked a credential; the detail is the
	// state it had (previous or discarded).
	EventRevoked = "revoked"
	// EventRevokeFailed: a revocation failed permanently (handlers).
	EventRevokeFailed = "revoke_failed"
	// EventRevocationDead: a revocation was set aside in the dead-letter
	// set; the detail is its reason.
	EventRevocationDead = "revocation_dead"
	// EventRevocationRetried: an operator brought a dead revocation back;
	// the detail names who.
	EventRevocationRetried = "revocation_retried"
	// EventFailed: a rotation failed permanently; the detail is the cause.
	EventFailed = "failed"
	// EventDiscarded: a pending credential was discarded, due for
	// revocation at once.
	EventDiscarded = "discarded"
	// EventPushUnknown: a failed rotation's credential was kept unrevoked
	// because its push had an unknown outcome (CredentialUnconfirmed).
	EventPushUnknown = "push_unknown"
	// EventRetrying: a step hit a transient failure and will be retried
	// (handlers).
	EventRetrying = "retrying"
	// EventScheduled: the scheduler enqueued a scheduled rotation.
	EventScheduled = "scheduled"
	// EventDeferred: the scheduler moved a due rotation to the instance's
	// maintenance window; the detail says why.
	EventDeferred = "deferred"
	// EventScheduleChanged: an instance's opt-out or window changed.
	EventScheduleChanged = "schedule_changed"
	// EventQuarantined: an instance was set aside from scheduled rotation;
	// the detail is the reason.
	EventQuarantined = "quarantined"
	// EventUnquarantined: an instance's quarantine ended.
	EventUnquarantined = "unquarantined"
	// EventExpiring: a deprovisioned instance's keys were given their
	// expiry; the detail is the retention.
	EventExpiring = "expiring"
	// EventRevocationHeld: a due revocation was held because the issuer
	// reported the credential in use within the quiet period; the detail
	// says when and by whom (handlers, hold.go).
	EventRevocationHeld = "revocation_held"
	// EventHoldRechecked: a held revocation was asked about again and is
	// still held; the detail is the latest evidence.
	EventHoldRechecked = "hold_rechecked"
	// EventHoldReleased: a hold ended (the credential went quiet, the
	// issuer stopped reporting usage, an operator or the customer released
	// it); the revocation goes ahead. The detail is the reason.
	EventHoldReleased = "hold_released"
	// EventHoldCapped: a hold reached REKEY_HOLD_MAX; the detail says
	// what rekey does (revoke, or keep holding).
	EventHoldCapped = "hold_capped"
)

// AnswerLostCause is what a rotation's failure (its "failed" event and its
// error) says when the issuer may hold a credential minted for rotation
// rotationID that rekey never received (a mint's answer lost): no record
// of rekey's names it, so nothing revokes it unless the partner does, at
// the issuer. It names the rotation only, never a secret.
func AnswerLostCause(rotationID string) string {
	return "the issuer may hold a credential minted for rotation " + rotationID +
		" that rekey never received (a mint's answer lost): revoke it at the issuer"
}
