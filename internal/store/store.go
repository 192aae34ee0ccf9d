// Package store is rekey's state in Redis: the instance registry, each
// instance's credentials as they move through pending -> current -> previous
// -> revoked (or pending -> discarded), rotations, and the audit event
// streams. It is the only package that knows rekey's Redis keys.
//
// Every state change that touches more than one field is one Lua script, so
// a crash between two Redis calls cannot leave an instance half-rotated, and
// every script is idempotent: running a step twice, or twice at once, has
// the effect of running it once (docs/design.md, I6).
//
// Secret values (a pending credential's config, OAuth tokens) are sealed
// with a seal.Sealer before they reach Redis, bound to the key they are
// stored under, and a pending credential's config is dropped as soon as it
// is promoted or discarded.
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/seal"
)

// Errors returned by the store. Wrap-aware: test with errors.Is.
var (
	// ErrNotFound means the instance, credential or rotation does not exist.
	ErrNotFound = errors.New("not found")
	// ErrDeprovisioned means the instance was deprovisioned: no further rotations.
	ErrDeprovisioned = errors.New("instance is deprovisioned")
	// ErrRegistrationChanged means the instance was registered again, since
	// a rotation's claim, under another API version, config vars, V1
	// heroku_id or database location: a push under the claim's would set
	// what the apps no longer read, go to what is no longer the instance's
	// app, or hand the apps a credential to a database no longer theirs.
	ErrRegistrationChanged = errors.New("instance registered again under another app, config vars, API version or database")
	// ErrConflict means a step does not fit the rotation's state, for example
	// an issuer returning a second credential for one rotation.
	ErrConflict = errors.New("conflict with the stored state")
	// ErrRevocationDead means a revocation the issuer refused for good,
	// set aside in the dead-letter set, was asked to run now: only an
	// operator brings it back (RetryDeadRevocation). It is an ErrConflict.
	ErrRevocationDead = fmt.Errorf("%w: the revocation is dead-lettered", ErrConflict)
	// ErrUnreadable means a sealed value in Redis cannot be opened (a key
	// that was dropped from REKEY_ENCRYPTION_KEYS, a damaged value). It does
	// not go away by retrying.
	ErrUnreadable = errors.New("stored value cannot be opened")
	// ErrCredentialReused means the issuer answered a mint with the id of a
	// credential the instance already has. The rotation cannot go on, and
	// nothing may be revoked by that id: it names another credential.
	ErrCredentialReused = errors.New("issuer reused a credential id")
	// ErrConfigReused means the issuer answered a mint with the config of
	// another credential of the instance under a new id: the current one,
	// one still waiting for its revocation, or one minted within the
	// rotation ttl and revoked or discarded since. Pushing it changes
	// nothing on Heroku, brings an old one back or puts a revoked secret in
	// the apps' config, and revoking either credential would break the
	// apps that hold it: the rotation cannot go on, and nothing is recorded.
	ErrConfigReused = errors.New("the issuer answered with the config of another credential under another id")
	// ErrConfigLiveElsewhere means the issuer answered a mint with the
	// config of a credential of another instance that may still work (the
	// fleet's index of live configs): an issuer that mixed its tenants up.
	// Pushing it would hand that instance's secret to this one's apps, and
	// revoking it would break that instance's: the rotation cannot go on,
	// and nothing is recorded. The instance it belongs to is not named.
	ErrConfigLiveElsewhere = errors.New("the issuer answered with the config of another instance's live credential")
	// ErrReminted means the issuer answered a rotation's mint again with the
	// credential saved for it but another config: a run that overlapped the
	// first (a task's short deadline, a lost lease) was answered a password
	// reset, say. Which config the issuer keeps cannot be told, so neither
	// may be pushed: the rotation fails, and the credential, not pushed,
	// is discarded and revoked.
	ErrReminted = errors.New("the issuer answered the rotation again with the same credential and another config")
	// ErrMintedAgain means a revocation reached the issuer while a mint
	// answered the same credential again (a late run of its rotation,
	// under an issuer that mints by rotation): the issuer may have made it
	// anew after revoking it, so it is not recorded revoked but due again
	// at once, and the revocation is to run again.
	ErrMintedAgain = errors.New("a mint answered the credential again while it was being revoked: it is revoked again")
	// ErrCredentialRevoked means a registration names as the instance's
	// current credential one of its credentials that was revoked: an app
	// given it could not connect. Nothing is stored.
	ErrCredentialRevoked = errors.New("the current credential named was revoked")
	// ErrCredentialRevokeDue means a registration names as the instance's
	// current credential a previous or discarded one whose revoke time has
	// passed or comes within RevokeDueMargin: its revoke task may be
	// revoking it at the issuer already (I1). Nothing is stored.
	ErrCredentialRevokeDue = errors.New("the current credential named is due for revocation")
	// ErrDeletedSince refuses a registration that began before a DELETE of
	// its instance (Registration.Deletes): the partner deprovisioned the
	// add-on meanwhile. Nothing is stored.
	ErrDeletedSince = errors.New("the instance was deprovisioned (DELETE) after the registration began")
	// ErrHerokuIDTaken refuses a V1 registration whose heroku_id another
	// live V1 instance holds with a config var of the same name
	// (v1AppsKey): Heroku's V1 calls name the app alone, so each
	// instance's pushes would land in the other's config. Nothing is
	// stored; the error names the other instance and the var.
	ErrHerokuIDTaken = errors.New("another live v1 instance of this heroku_id sets a config var of the same name")
	// ErrInvalidCredentialID means the issuer answered a mint with an id
	// rekey cannot use (ValidID). The issuer answers every retry of the
	// rotation the same, so the rotation cannot go on; the credential it
	// minted is not recorded, and is left for the issuer to revoke. The id
	// itself is kept out of the error: it is the issuer's text.
	ErrInvalidCredentialID = errors.New("the issuer's credential id is not one rekey can use " +
		"(1 to 128 letters, digits, '-', '_', '.', '@', not dots alone)")
)

// Store reads and writes rekey's state. It is safe for concurrent use by
// any number of goroutines and processes.
type Store struct {
	rdb    redis.UniversalClient
	sealer *seal.Sealer
	now    func() time.Time
	// eventsPerInstance caps the entries of each instance's history list
	// (history.go); one entry holds the events of one rotation, or a few.
	eventsPerInstance int64
	// eventsGlobal caps the fleet-wide audit stream (approximately).
	eventsGlobal int64
	// finishedTTL is how long finished (and cancelled) rotations and revoked
	// credentials stay.
	finishedTTL time.Duration
	// maxPrevious caps the superseded credentials waiting per instance
	// (WithMaxPrevious); 0 means no cap.
	maxPrevious int
	// auditRetention is how long a deprovisioned instance's keys stay once
	// nothing waits on them (retention.go).
	auditRetention time.Duration
	// pushWindow is UnansweredPushWindow, or a test's.
	pushWindow time.Duration
	// maxGrace bounds the grace a request joining a rotation in flight
	// lengthens it to (WithMaxGrace); 0 means no bound.
	maxGrace time.Duration
	// waitReplicas is how many replicas Durable waits for
	// (WithDurability); 0 means it does not wait.
	waitReplicas int

	// fpMu guards fpKeys, the fingerprint key as last read (fingerprint.go).
	fpMu   sync.Mutex
	fpKeys *fingerprintKeys
}

// FinishedRetention is how long a finished (or cancelled) rotation's record
// and a revoked credential's stay: past it, rekey no longer knows the
// rotation id.
const FinishedRetention = 30 * 24 * time.Hour

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock, for tests.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithEventCaps sets how many entries each instance's history list keeps
// (an entry holds the events of one rotation, or a few: history.go) and the
// approximate length of the fleet-wide audit stream. Defaults:
// DefaultHistoryEntries and 100,000.
func WithEventCaps(perInstance, global int64) Option {
	return func(s *Store) { s.eventsPerInstance, s.eventsGlobal = perInstance, global }
}

// WithMaxGrace bounds the grace a rotation takes from a request that
// joined it while in flight (REKEY_MAX_GRACE): the grace the rotation's own
// task brings is bounded by its worker.
func WithMaxGrace(d time.Duration) Option { return func(s *Store) { s.maxGrace = d } }

// New returns a Store over rdb. Secrets are sealed with sealer.
func New(rdb redis.UniversalClient, sealer *seal.Sealer, opts ...Option) *Store {
	s := &Store{
		rdb:               rdb,
		sealer:            sealer,
		now:               time.Now,
		eventsPerInstance: DefaultHistoryEntries,
		eventsGlobal:      100_000,
		finishedTTL:       FinishedRetention,
		auditRetention:    DefaultAuditRetention,
		pushWindow:        UnansweredPushWindow,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Redis returns the client the store uses, for components that share the
// connection pool (the rate limiter, health checks).
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

// keyPrefix starts every key rekey owns, so they are easy to find and never
// collide with asynq's "asynq:" keys in the same database.
const keyPrefix = "rekey:"

// instanceKey is a HASH of one instance's registration and rotation state.
func instanceKey(id string) string { return keyPrefix + "instance:" + id }

// HerokuIDTakenError is ErrHerokuIDTaken with the instance that holds the
// heroku_id and the config var both would set.
type HerokuIDTakenError struct{ Holder, ConfigVar string }

func (e *HerokuIDTakenError) Error() string {
	return fmt.Sprintf("%s (instance %s, %s)", ErrHerokuIDTaken, e.Holder, e.ConfigVar)
}

// Is makes errors.Is(err, ErrHerokuIDTaken) hold.
func (e *HerokuIDTakenError) Is(target error) bool { return target == ErrHerokuIDTaken }

// v1AppsKey is a HASH: for each config var of each live V1 instance, the
// instance's id under its heroku_id (in lower case) and the var's name,
// "app123@heroku.com/MYADDON_URL". A V1 push names the app by its
// heroku_id alone, so no two live V1 instances of one app may set a var
// of the same name (putInstanceScript). Heroku's many_per_app installs of
// one add-on on one app are sent the same names (Heroku prefixes them on
// the app's side), and no V1 call addresses one install of several: such
// an install registers as V3, whose calls name the add-on. A deprovisioning
// drops the instance's fields, and the clock adds those of instances
// registered before the index existed (IndexV1Apps).
//
//	rekey:v1_apps
func v1AppsKey() string { return keyPrefix + "v1_apps" }

// instancesKey is a ZSET of every live (not deprovisioned) instance id,
// scored by registration time in milliseconds.
func instancesKey() string { return keyPrefix + "instances" }

// credentialKey is a HASH of one credential of one instance. Credential ids
// are the issuer's, unique within an instance. The key names both, so the
// hash does not repeat them (versions before wrote "id" and "instance_id").
func credentialKey(instanceID, credID string) string {
	return keyPrefix + "cred:" + instanceID + ":" + credID
}

// previousKey is a ZSET of an instance's previous credentials, scored by
// their revoke_at in milliseconds.
func previousKey(instanceID string) string { return keyPrefix + "previous:" + instanceID }

// unconfirmedKey is a ZSET of an instance's unconfirmed credentials (failed
// rotations whose push had an unknown outcome), scored by when they were
// set aside, in milliseconds.
func unconfirmedKey(instanceID string) string { return keyPrefix + "unconfirmed:" + instanceID }

// mintedKey is a ZSET of the configs an instance's credentials had within
// the rotation ttl: member the config's fingerprint under the first key
// (configFingerprints) followed by the credential's id, scored by when it
// was minted or, later, revoked (markRevokedScript), in milliseconds. It
// expires with the newest of them, so a mint that repeats the config of a
// credential already revoked or discarded is refused (savePendingScript).
func mintedKey(instanceID string) string { return keyPrefix + "minted:" + instanceID }

// revokeDueKey is a ZSET of every credential that waits to be revoked
// (previous or discarded), member "instance_id/credential_id", scored by
// revoke_at in milliseconds. It lets a sweep re-enqueue a lost revoke task.
func revokeDueKey() string { return keyPrefix + "revoke_due" }

// inflightKey is a ZSET of every rotation in flight, member
// "instance_id/rotation_id", scored by request time in milliseconds.
func inflightKey() string { return keyPrefix + "inflight" }

// batchKey is a HASH of one batch's counters; batchKey(id)+":failures" is
// a HASH of its failures counted by failure code (batchFailedKey names
// the instances).
func batchKey(batchID string) string { return keyPrefix + "batch:" + batchID }

// batchWaitsKey is a SET of the rotations batch batchID joined after each
// had as many batches noted (joined_by) as it holds: the batch is not
// done while any of them is in flight (claimScript, Batch). It expires with
// the batch.
func batchWaitsKey(batchID string) string { return batchKey(batchID) + ":waits" }

// batchFailedKey is a HASH of the instances whose rotation of batch
// batchID failed, each to its failure code (failScript): what `rekey
// batches failed` lists for rotating again. It expires with the batch.
func batchFailedKey(batchID string) string { return batchKey(batchID) + ":failed" }

// batchFailedJoinedKey is a HASH of the instances whose rotation of
// another batch, which batch batchID joined (joined_by), failed, each to
// its failure code (failScript). It expires with the batch.
func batchFailedJoinedKey(batchID string) string { return batchKey(batchID) + ":failed_joined" }

// batchesKey is a ZSET of batch ids scored by their created_at in
// milliseconds: the list `rekey batches list` and GET /api/v1/batches read.
// Creating a batch trims the members older than finishedTTL, whose hashes
// have expired. Batches created before the list existed are not in it.
func batchesKey() string { return keyPrefix + "batches" }

// rotationKey is a HASH of one rotation.
func rotationKey(rotationID string) string { return keyPrefix + "rotation:" + rotationID }

// eventsKey is the capped STREAM of every audit event of the fleet, one
// entry per script that wrote events (history.go).
func eventsKey() string { return keyPrefix + "events" }

func ms(t time.Time) int64 { return t.UnixMilli() }

// dueMembers returns up to limit members of the sorted set key whose score
// (a time in milliseconds) is at or before t, earliest first, with their
// times.
func (s *Store) dueMembers(ctx context.Context, key string, t time.Time, limit int64) ([]string, []time.Time, error) {
	// ZRANGEBYSCORE rather than ZRANGE BYSCORE, which Redis 6.2 added.
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{Min: "-inf",
		Max: strconv.FormatInt(ms(t), 10), Count: limit}).Result()
	if err != nil {
		return nil, nil, err
	}
	members, times := make([]string, len(zs)), make([]time.Time, len(zs))
	for i, z := range zs {
		members[i], _ = z.Member.(string)
		times[i] = time.UnixMilli(int64(z.Score)).UTC()
	}
	return members, times, nil
}

func fromMS(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

// scriptError turns a Lua error reply into one of the store's errors.
func scriptError(op string, err error) error {
	if err == nil {
		return nil
	}
	// Redis prefixes a script's error_reply with "ERR " unless it starts
	// with an error code of its own.
	msg := strings.TrimPrefix(err.Error(), "ERR ")
	switch {
	case strings.HasPrefix(msg, "not_found"):
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	case strings.HasPrefix(msg, "deprovisioned"):
		return fmt.Errorf("%s: %w", op, ErrDeprovisioned)
	case strings.HasPrefix(msg, "reused"):
		return fmt.Errorf("%s: %w", op, ErrCredentialReused)
	case msg == "registration_changed":
		return fmt.Errorf("%s: %w", op, ErrRegistrationChanged)
	case msg == "revoked":
		return fmt.Errorf("%s: %w", op, ErrCredentialRevoked)
	case msg == "revoke_due":
		return fmt.Errorf("%s: %w", op, ErrCredentialRevokeDue)
	case msg == "deleted_since":
		return fmt.Errorf("%s: %w", op, ErrDeletedSince)
	case strings.HasPrefix(msg, "heroku_id_taken"):
		holder, name, _ := strings.Cut(strings.TrimSpace(strings.TrimPrefix(msg, "heroku_id_taken")), " ")
		return fmt.Errorf("%s: %w", op, &HerokuIDTakenError{Holder: holder, ConfigVar: name})
	case strings.HasPrefix(msg, "database_taken"):
		holder, what, _ := strings.Cut(strings.TrimSpace(strings.TrimPrefix(msg, "database_taken")), " ")
		return fmt.Errorf("%s: %w", op, &DatabaseTakenError{Holder: holder, What: what})
	case msg == "reminted":
		return fmt.Errorf("%s: %w", op, ErrReminted)
	case msg == "config_live_elsewhere":
		return fmt.Errorf("%s: %w", op, ErrConfigLiveElsewhere)
	case strings.HasPrefix(msg, "config_reused"):
		return fmt.Errorf("%s: %w (credential %s)", op, ErrConfigReused, strings.TrimSpace(strings.TrimPrefix(msg, "config_reused")))
	case msg == "conflict revocation is dead":
		return fmt.Errorf("%s: %w", op, ErrRevocationDead)
	case strings.HasPrefix(msg, "conflict"):
		return fmt.Errorf("%s: %w: %s", op, ErrConflict, strings.TrimSpace(strings.TrimPrefix(msg, "conflict")))
	}
	return fmt.Errorf("%s: %w", op, err)
}
