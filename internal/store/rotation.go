package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/tasks"
)

// ClaimStatus says what a claim found.
type ClaimStatus string

// Claim outcomes.
const (
	// Claimed: a new rotation started; the caller now owns it.
	Claimed ClaimStatus = "claimed"
	// Resumed: the rotation exists and is unfinished; carry on from its state.
	Resumed ClaimStatus = "resumed"
	// Joined: another rotation is in flight for the instance; this request
	// is satisfied by it (I4).
	Joined ClaimStatus = "joined"
	// Done: the rotation already finished (promoted or failed).
	Done ClaimStatus = "done"
	// Skipped: the request asked not to overlap a grace period, and one is running.
	Skipped ClaimStatus = "skipped"
)

// RotationRequest asks for one rotation of one instance.
type RotationRequest struct {
	InstanceID string
	RotationID string
	// BatchID is the batch a producer's claim (ClaimBrief, ClaimMany)
	// counts the rotation in. A task's claim (Claim) that starts or joins a
	// rotation, which only a task another app enqueued does, counts it in
	// no batch: the rotation it starts keeps BatchID only when no batch of
	// rekey's has that id.
	BatchID string
	Reason  string
	Queue   string
	// Grace overrides the instance's grace period when positive.
	Grace time.Duration
	// SkipIfPrevious declines the rotation while a previous credential of
	// the instance still waits for revocation.
	SkipIfPrevious bool
	// Customer, when set, marks a customer's request (the dashboard's
	// button) and carries the customer's limits (limits.go).
	Customer *CustomerLimits
	// Overtakes names a queue this request, on another one, does not wait
	// behind: a rotation of the instance in flight on it and not yet
	// started (requested, and no task's claim started or resumed it there
	// within tasks.RotateTimeout) that the request joins moves to Queue, and the
	// claim says so (Claim.Moved). Producers set the paced bulk queue for
	// every other request, so that a customer's click or an operator's
	// rotation of an instance a wave holds runs at once.
	Overtakes string
}

// Claim is the result of Claim.
type Claim struct {
	Status ClaimStatus
	// RotationID is the rotation the request is served by: the requested
	// one, or the one it joined.
	RotationID string
	// State is that rotation's state.
	State string
	// CredentialID is the credential minted for it, once minted.
	CredentialID string
	// Previous is the credential the rotation superseded and when it is to
	// be revoked, once promoted.
	Previous *Revocation
	// Instance is the instance as it was at the claim.
	Instance Instance
	// PushAttempted is true once a run sent the credential to Heroku,
	// whatever came back: Heroku may hold it.
	PushAttempted bool
	// PushAttempts counts the pushes sent, PushSettled those whose answer
	// settled them (a refusal, or an hour gone by), as PushAttempts reads
	// them, at the claim.
	PushAttempts, PushSettled int64
	// ReadBackWaits counts the times a run put off reading Heroku's config
	// back after a failed push (WaitReadBack), at the claim: a rerun reads
	// before it pushes again.
	ReadBackWaits int
	// Refused, with Status Skipped, says which limit refused the request
	// (limits.go); nil for any other outcome.
	Refused *Refusal
	// Queue is the queue the rotation's record names ("" for a brief
	// claim, or a record written before rotations kept it).
	Queue string
	// Grace is the grace the rotation was claimed with (grace_ms), as its
	// first request asked it; 0 when it asked none, and for a brief claim.
	Grace time.Duration
	// Moved, with Status Joined, says that this request moved the rotation
	// it joined to its own queue (RotationRequest.Overtakes): the caller
	// enqueues the rotation's task there.
	Moved bool
	// StartedBefore is true when a run of a task had started the rotation
	// before this claim (started_at, as the claim read it): that run may
	// have reached the issuer, which may have minted the rotation's
	// credential with its answer lost; false for a claim that starts it.
	StartedBefore bool
}

// Revocation names a credential waiting to be revoked and when.
type Revocation struct {
	InstanceID   string    `json:"instance_id"`
	CredentialID string    `json:"credential_id"`
	RevokeAt     time.Time `json:"revoke_at"`
}

// Claim starts the rotation r.RotationID of r.InstanceID, resumes it when it
// exists, or joins the rotation already in flight. It returns ErrNotFound
// for an unknown instance, ErrDeprovisioned for a deprovisioned one, and
// ErrConflict for a rotation id that another instance's rotation holds.
// It is a task's claim: a rotation it starts counts as started at once, as
// one it resumes does (RotationRequest.Overtakes). A producer, which only
// holds or enqueues the rotation, claims with ClaimBrief or ClaimMany.
func (s *Store) Claim(ctx context.Context, r RotationRequest) (Claim, error) {
	return s.claim(ctx, r, false)
}

// ClaimBrief is Claim for a producer that holds or enqueues the rotation
// it claims (the scheduler): the rotation has not started, and the Claim
// holds its Status, RotationID and State only, as ClaimMany's do.
func (s *Store) ClaimBrief(ctx context.Context, r RotationRequest) (Claim, error) {
	return s.claim(ctx, r, true)
}

// claim runs claimScript for r; brief is a producer's claim.
func (s *Store) claim(ctx context.Context, r RotationRequest, brief bool) (Claim, error) {
	if !ValidID(r.InstanceID) || !ValidID(r.RotationID) {
		return Claim{}, fmt.Errorf("claim: instance id %q or rotation id %q is not valid", r.InstanceID, r.RotationID)
	}
	keys, args := s.claimArgs(r, brief)
	res, err := claimScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return Claim{}, scriptError("claim "+r.InstanceID, err)
	}
	return s.claimFrom(r.InstanceID, res)
}

func (s *Store) claimFrom(instanceID string, res []any) (Claim, error) {
	str := func(i int) string { v, _ := res[i].(string); return v }
	switch len(res) {
	case 3, 4: // a brief claim, and whether it moved the rotation it joined
		return Claim{Status: ClaimStatus(str(0)), RotationID: str(1), State: str(2), Moved: len(res) == 4}, nil
	case 6: // refused by a limit (limits.go)
		return Claim{Status: ClaimStatus(str(0)), RotationID: str(1), Refused: refusalFrom(res)}, nil
	case 15:
	default:
		return Claim{}, fmt.Errorf("claim: unexpected reply of %d items", len(res))
	}
	c := Claim{Status: ClaimStatus(str(0)), RotationID: str(1), State: str(2), CredentialID: str(3)}
	if prev := str(4); prev != "" {
		c.Previous = &Revocation{InstanceID: instanceID, CredentialID: prev, RevokeAt: fromMS(str(5))}
	}
	flat, _ := res[6].([]any)
	m := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		v, _ := flat[i+1].(string)
		m[k] = v
	}
	c.Instance = instanceFrom(instanceID, m)
	c.PushAttempted = str(7) != ""
	c.Queue, c.Moved = str(8), str(9) != ""
	c.PushAttempts, c.PushSettled = s.pushCounts(str(10), str(11), str(7))
	if g, err := strconv.ParseInt(str(12), 10, 64); err == nil && g > 0 {
		c.Grace = time.Duration(g) * time.Millisecond
	}
	c.ReadBackWaits, _ = strconv.Atoi(str(13))
	c.StartedBefore = str(14) != ""
	return c, nil
}

// SavePending stores the credential minted for a rotation as pending, its
// config sealed. Saving the same credential again is a no-op; a different
// credential for the same rotation is ErrConflict; an id the instance
// already uses for another credential is ErrCredentialReused, one that
// ValidID refuses, or that holds a secret of its config (IDHoldsSecret),
// ErrInvalidCredentialID.
func (s *Store) SavePending(ctx context.Context, instanceID, rotationID, credID string, config map[string]secret.String) error {
	if !ValidID(credID) || IDHoldsSecret(credID, config) {
		return invalidCredentialID("save pending", credID)
	}
	sealed, err := s.sealConfig(instanceID, credID, config)
	if err != nil {
		return err
	}
	keys := newSavePendingKeys(instanceID, rotationID, credID)
	fp, fps, err := s.configFingerprints(ctx, config)
	if err != nil {
		return fmt.Errorf("save pending: %w", err)
	}
	args := []any{credID, instanceID, rotationID, sealed, ms(s.now()), s.eventsPerInstance, s.eventsGlobal,
		int64(s.finishedTTL.Seconds()), "", fp, fps}
	return scriptError("save pending", savePendingScript.Run(ctx, s.rdb, keys.list(), args...).Err())
}

// IDHoldsSecret reports whether credID holds a secret of config (a value
// that looks generated, or a URL's password: secret.Holds), in a value or
// in a name (an issuer that swapped them). An issuer that names a
// credential by its secret would put the secret in Redis key names, task
// payloads, logs and the audit history, which only ever carry ids (I5);
// so would a registration whose current_credential_id is its
// current_config's secret (registry).
func IDHoldsSecret(credID string, config map[string]secret.String) bool {
	known := slices.Collect(maps.Values(config))
	for name := range config {
		known = append(known, secret.New(name))
	}
	return secret.Holds(credID, known...)
}

// invalidCredentialID is ErrInvalidCredentialID for an issuer's id,
// which it does not quote: the id is the issuer's text.
func invalidCredentialID(op, id string) error {
	return fmt.Errorf("%s: %w: it has %d bytes; the credential it names is not recorded, revoke it at the issuer",
		op, ErrInvalidCredentialID, len(id))
}

// DiscardMinted records a credential the issuer minted for a rotation but
// that the rotation cannot use (its config unreadable), as discarded and
// due for revocation now (I3), with why as its event's detail: the
// reconcile sweep enqueues its revoke. config is what could be read of
// its config's values. Repeating it is a no-op. The errors are
// SavePending's: an id ValidID refuses, one that holds a secret of config,
// or one the instance already uses, records nothing; if the rotation has
// moved on meanwhile the credential is discarded all the same, and the
// error is ErrConflict.
func (s *Store) DiscardMinted(ctx context.Context, instanceID, rotationID, credID, why string, config []secret.String) error {
	if !ValidID(credID) || secret.Holds(credID, config...) {
		return invalidCredentialID("discard minted", credID)
	}
	keys := newSavePendingKeys(instanceID, rotationID, credID)
	args := []any{credID, instanceID, rotationID, "", ms(s.now()), s.eventsPerInstance, s.eventsGlobal,
		int64(s.finishedTTL.Seconds()), why, "", ""}
	return scriptError("discard minted", savePendingScript.Run(ctx, s.rdb, keys.list(), args...).Err())
}

// savePendingKeys are the KEYS of savePendingScript, one field per key, in order.
type savePendingKeys struct {
	rotation       string // KEYS[1] -> rekey:rotation:<rotation id>
	credential     string // KEYS[2] -> rekey:cred:<instance id>:<credential id>
	instanceEvents string // KEYS[3] -> rekey:history:<instance id>
	events         string // KEYS[4] -> rekey:events
	revokeDue      string // KEYS[5] -> rekey:revoke_due
	config         string // KEYS[6] -> rekey:config:<instance id>:<credential id>
	instance       string // KEYS[7] -> rekey:instance:<instance id>
	previous       string // KEYS[8] -> rekey:previous:<instance id>
	// KEYS[9] -> rekey:cred:<instance id>: (the script appends credential ids)
	credentialPrefix string
	unconfirmed      string // KEYS[10] -> rekey:unconfirmed:<instance id>
	minted           string // KEYS[11] -> rekey:minted:<instance id>
	// KEYS[12] -> rekey:live: (the script appends a fingerprint's first byte, in hex)
	livePrefix string
}

func newSavePendingKeys(instanceID, rotationID, credID string) savePendingKeys {
	return savePendingKeys{rotation: rotationKey(rotationID), credential: credentialKey(instanceID, credID),
		instanceEvents: historyKey(instanceID), events: eventsKey(), revokeDue: revokeDueKey(),
		config: configKey(instanceID, credID), instance: instanceKey(instanceID), previous: previousKey(instanceID),
		credentialPrefix: credentialKey(instanceID, ""), unconfirmed: unconfirmedKey(instanceID),
		minted: mintedKey(instanceID), livePrefix: livePrefix()}
}

func (k savePendingKeys) list() []string {
	return []string{k.rotation, k.credential, k.instanceEvents, k.events, k.revokeDue, k.config, k.instance,
		k.previous, k.credentialPrefix, k.unconfirmed, k.minted, k.livePrefix}
}

// PendingConfig returns the config of a pending credential, opened. It is
// ErrNotFound once the credential has been promoted or discarded.
func (s *Store) PendingConfig(ctx context.Context, instanceID, credID string) (map[string]secret.String, error) {
	sealed, err := s.rdb.HGet(ctx, configKey(instanceID, credID), "config").Result()
	if errors.Is(err, redis.Nil) {
		return s.legacyPendingConfig(ctx, instanceID, credID)
	}
	if err != nil {
		return nil, fmt.Errorf("pending config: %w", err)
	}
	return s.openConfig(configAAD(instanceID, credID), credID, sealed)
}

// legacyPendingConfig reads a pending credential's config where versions
// before configKey kept it: a field of the credential hash, sealed bound
// to that hash.
func (s *Store) legacyPendingConfig(ctx context.Context, instanceID, credID string) (map[string]secret.String, error) {
	vals, err := s.rdb.HMGet(ctx, credentialKey(instanceID, credID), "state", "config").Result()
	if err != nil {
		return nil, fmt.Errorf("pending config: %w", err)
	}
	state, _ := vals[0].(string)
	sealed, _ := vals[1].(string)
	if state != CredentialPending || sealed == "" {
		return nil, fmt.Errorf("pending config of %s: %w", credID, ErrNotFound)
	}
	return s.openConfig(credentialKey(instanceID, credID)+"#config", credID, sealed)
}

// Promote makes the rotation's pushed credential current, and the current
// one previous with revoke_at = now + grace. It returns the superseded
// credential (nil when there was none); PromoteRotation tells the rest.
func (s *Store) Promote(ctx context.Context, instanceID, rotationID, credID string, grace time.Duration, detail string) (*Revocation, error) {
	p, err := s.PromoteRotation(ctx, instanceID, rotationID, credID, grace, detail)
	return p.Previous, err
}

// Promoted is what a promotion superseded, every credential of it due for
// revocation after the grace.
type Promoted struct {
	// Previous is the credential that was current; nil when none.
	Previous *Revocation
	// Unconfirmed are the unconfirmed credentials of earlier failed
	// rotations (FailRotation), which the push just replaced on Heroku.
	Unconfirmed []Revocation
}

// PromoteRotation makes the rotation's pushed credential current, and the
// current one previous with revoke_at = now + grace; unconfirmed
// credentials of the instance become previous too, but for one whose own
// rotation still has a push unanswered (promoteScript). Promoting twice returns
// the same. It also schedules the instance's next rotation one period on
// and ends any quarantine (schedule.go). A rotation whose instance was
// deprovisioned while its push was on its way, and registered again
// since, is refused with ErrDeprovisioned: its push raced the new add-on's
// credential, which the registration made current.
func (s *Store) PromoteRotation(ctx context.Context, instanceID, rotationID, credID string, grace time.Duration, detail string) (Promoted, error) {
	return s.PromotePushed(ctx, instanceID, rotationID, credID, grace, detail, 0)
}

// PromotePushed is PromoteRotation after a push whose settled attempts
// (MarkPushAttempt) it records first, as SettlePush would, in the same
// step: the handler's last two writes of a rotation in one.
func (s *Store) PromotePushed(ctx context.Context, instanceID, rotationID, credID string, grace time.Duration, detail string, settled int) (Promoted, error) {
	keys := newPromoteKeys(instanceID, rotationID, credID)
	args := []any{instanceID, rotationID, credID, ms(s.now()), grace.Milliseconds(),
		s.eventsPerInstance, s.eventsGlobal, int64(s.finishedTTL.Seconds()), detail,
		slotHash(instanceID), DefaultRotationPeriod.Milliseconds(), settled, s.pushWindow.Milliseconds(),
		s.maxGrace.Milliseconds(), callToken()}
	res, err := promoteScript.Run(ctx, s.rdb, keys.list(), args...).StringSlice()
	if err != nil {
		return Promoted{}, scriptError("promote", err)
	}
	var p Promoted
	if len(res) >= 2 && res[0] != "" {
		p.Previous = &Revocation{InstanceID: instanceID, CredentialID: res[0], RevokeAt: fromMS(res[1])}
	}
	if len(res) == 3 && res[2] != "" {
		fields := strings.Split(res[2], ",")
		for _, id := range fields[1:] {
			p.Unconfirmed = append(p.Unconfirmed, Revocation{InstanceID: instanceID, CredentialID: id, RevokeAt: fromMS(fields[0])})
		}
	}
	return p, nil
}

// promoteKeys are the KEYS of promoteScript, one field per key, in order.
type promoteKeys struct {
	instance         string // KEYS[1] -> rekey:instance:<instance id>
	rotation         string // KEYS[2] -> rekey:rotation:<rotation id>
	credential       string // KEYS[3] -> rekey:cred:<instance id>:<new credential id>
	previous         string // KEYS[4] -> rekey:previous:<instance id>
	revokeDue        string // KEYS[5] -> rekey:revoke_due
	instanceEvents   string // KEYS[6] -> rekey:history:<instance id>
	events           string // KEYS[7] -> rekey:events
	credentialPrefix string // KEYS[8] -> rekey:cred:<instance id>: (the script appends credential ids)
	inflight         string // KEYS[9] -> rekey:inflight
	batchPrefix      string // KEYS[10] -> rekey:batch: (the script appends the rotation's batch id)
	due              string // KEYS[11] -> rekey:due
	schedule         string // KEYS[12] -> rekey:schedule
	quarantined      string // KEYS[13] -> rekey:quarantined
	scheduled        string // KEYS[14] -> rekey:scheduled
	unconfirmed      string // KEYS[15] -> rekey:unconfirmed:<instance id>
	rotationPrefix   string // KEYS[16] -> rekey:rotation: (the script appends an unconfirmed credential's rotation id)
	config           string // KEYS[17] -> rekey:config:<instance id>:<new credential id>
}

func newPromoteKeys(instanceID, rotationID, credID string) promoteKeys {
	return promoteKeys{instance: instanceKey(instanceID), rotation: rotationKey(rotationID),
		credential: credentialKey(instanceID, credID), previous: previousKey(instanceID),
		revokeDue: revokeDueKey(), instanceEvents: historyKey(instanceID), events: eventsKey(),
		credentialPrefix: credentialKey(instanceID, ""), inflight: inflightKey(), batchPrefix: batchKey(""),
		due: dueKey(), schedule: scheduleKey(), quarantined: quarantinedKey(), scheduled: scheduledKey(),
		unconfirmed: unconfirmedKey(instanceID), rotationPrefix: rotationKey(""), config: configKey(instanceID, credID)}
}

func (k promoteKeys) list() []string {
	return []string{k.instance, k.rotation, k.credential, k.previous, k.revokeDue, k.instanceEvents,
		k.events, k.credentialPrefix, k.inflight, k.batchPrefix, k.due, k.schedule, k.quarantined,
		k.scheduled, k.unconfirmed, k.rotationPrefix, k.config}
}

// Failure says how a rotation failed, for FailRotation.
type Failure struct {
	// Code is a short stable label of the failure ("push:not_found") by
	// which a batch groups its failures.
	Code string
	// Cause is the sentence shown to people. It must hold no secret.
	Cause string
	// NotHeld is the proof, set only by a caller that read Heroku's config
	// back after the rotation's last push attempt and found other values,
	// that Heroku does not hold the pending credential. Without it a
	// credential whose push was attempted is never discarded (I1).
	NotHeld bool
	// Attempts is the rotation's push attempt count (PushAttempts) read
	// before that read-back, with every attempt settled. The proof holds
	// only if no attempt was made since: one made later may land after the
	// read.
	Attempts int64
	// Grace is how long a credential discarded because the instance is
	// deprovisioned waits before its revocation (failScript); zero means
	// the instance's own grace.
	Grace time.Duration
	// Fleetwide says the failure is no fault of the instance's, one every
	// instance meets alike (the issuer refusing rekey's signature, retries
	// used up by an outage): a scheduled rotation that fails so does not
	// count towards the instance's quarantine.
	Fleetwide bool
}

// Failed is what FailRotation did with the rotation's pending credential.
type Failed struct {
	// Discarded is the credential discarded and due for revocation, now
	// or, for a deprovisioned instance's credential whose push outcome is
	// unknown, after the grace; nil when there was none.
	Discarded *Revocation
	// Unconfirmed is the id of a credential kept unrevoked because its push
	// was attempted with an unknown outcome; "" when none.
	Unconfirmed string
}

// FailRotation ends a rotation that failed permanently; the instance keeps
// its current credential. The pending credential, if any, is discarded and
// returned for revocation, unless its push was attempted and f.NotHeld is
// false: then it is kept, unconfirmed and unrevoked (see failScript).
// Failing a rotation that was already promoted does nothing; failing it
// again returns what the first failure did. A failed scheduled rotation
// counts towards the instance's quarantine (schedule.go).
func (s *Store) FailRotation(ctx context.Context, instanceID, rotationID string, f Failure) (Failed, error) {
	credID, _ := s.rdb.HGet(ctx, rotationKey(rotationID), "credential_id").Result()
	keys := newFailKeys(instanceID, rotationID, credID)
	now := s.now()
	notHeld, fleetwide := "", ""
	if f.NotHeld {
		notHeld = "1"
	}
	if f.Fleetwide {
		fleetwide = "1"
	}
	args := []any{instanceID, rotationID, ms(now), f.Cause, s.eventsPerInstance, s.eventsGlobal,
		int64(s.finishedTTL.Seconds()), f.Code, DefaultRotationPeriod.Milliseconds(), DefaultQuarantineAfter, notHeld,
		f.Attempts, f.Grace.Milliseconds(), fleetwide}
	res, err := failScript.Run(ctx, s.rdb, keys.list(), args...).StringSlice()
	if err != nil {
		return Failed{}, scriptError("fail rotation", err)
	}
	var out Failed
	if len(res) == 4 && res[1] != "" {
		at := now.UTC()
		if res[3] != "" {
			at = fromMS(res[3])
		}
		out.Discarded = &Revocation{InstanceID: instanceID, CredentialID: res[1], RevokeAt: at}
	}
	if len(res) == 4 {
		out.Unconfirmed = res[2]
	}
	return out, nil
}

// failKeys are the KEYS of failScript, one field per key, in order.
type failKeys struct {
	instance       string // KEYS[1] -> rekey:instance:<instance id>
	rotation       string // KEYS[2] -> rekey:rotation:<rotation id>
	credential     string // KEYS[3] -> rekey:cred:<instance id>:<pending credential id> (any key when none)
	revokeDue      string // KEYS[4] -> rekey:revoke_due
	instanceEvents string // KEYS[5] -> rekey:history:<instance id>
	events         string // KEYS[6] -> rekey:events
	inflight       string // KEYS[7] -> rekey:inflight
	batchPrefix    string // KEYS[8] -> rekey:batch: (the script appends the rotation's batch id)
	due            string // KEYS[9] -> rekey:due
	schedule       string // KEYS[10] -> rekey:schedule
	quarantined    string // KEYS[11] -> rekey:quarantined
	scheduled      string // KEYS[12] -> rekey:scheduled
	unconfirmed    string // KEYS[13] -> rekey:unconfirmed:<instance id>
	config         string // KEYS[14] -> rekey:config:<instance id>:<pending credential id>
}

func newFailKeys(instanceID, rotationID, credID string) failKeys {
	return failKeys{instance: instanceKey(instanceID), rotation: rotationKey(rotationID),
		credential: credentialKey(instanceID, credID), revokeDue: revokeDueKey(),
		instanceEvents: historyKey(instanceID), events: eventsKey(), inflight: inflightKey(),
		batchPrefix: batchKey(""), due: dueKey(), schedule: scheduleKey(), quarantined: quarantinedKey(),
		scheduled: scheduledKey(), unconfirmed: unconfirmedKey(instanceID), config: configKey(instanceID, credID)}
}

func (k failKeys) list() []string {
	return []string{k.instance, k.rotation, k.credential, k.revokeDue, k.instanceEvents, k.events,
		k.inflight, k.batchPrefix, k.due, k.schedule, k.quarantined, k.scheduled, k.unconfirmed, k.config}
}

// Fail is FailRotation without proof that Heroku does not hold the
// credential, returning only the discarded credential.
func (s *Store) Fail(ctx context.Context, instanceID, rotationID, code, cause string) (*Revocation, error) {
	res, err := s.FailRotation(ctx, instanceID, rotationID, Failure{Code: code, Cause: cause})
	return res.Discarded, err
}

// Rotation is a rotation's stored record.
type Rotation struct {
	ID           string        `json:"rotation_id"`
	InstanceID   string        `json:"instance_id"`
	State        string        `json:"state"`
	CredentialID string        `json:"credential_id,omitempty"`
	BatchID      string        `json:"batch_id,omitempty"`
	Reason       string        `json:"reason,omitempty"`
	Queue        string        `json:"queue,omitempty"`
	Grace        time.Duration `json:"-"`
	RequestedAt  time.Time     `json:"requested_at,omitzero"`
	FinishedAt   time.Time     `json:"finished_at,omitzero"`
	// StartedAt is when a run of a task first started the rotation (zero
	// until one did): from then on a run may have reached the issuer.
	StartedAt time.Time `json:"-"`
	Error     string    `json:"error,omitempty"`
	// PushAttempted is true once a run sent the credential to Heroku.
	PushAttempted bool `json:"push_attempted"`
	// Unconfirmed is the credential a failed rotation kept unrevoked
	// because Heroku may hold it (FailRotation); "" when none.
	Unconfirmed string `json:"unconfirmed_credential_id,omitempty"`
}

// Rotation returns the rotation with id, or ErrNotFound (also once a
// finished rotation has expired).
func (s *Store) Rotation(ctx context.Context, id string) (Rotation, error) {
	m, err := s.rdb.HGetAll(ctx, rotationKey(id)).Result()
	if err != nil {
		return Rotation{}, fmt.Errorf("get rotation: %w", err)
	}
	if len(m) == 0 {
		return Rotation{}, fmt.Errorf("rotation %s: %w", id, ErrNotFound)
	}
	grace, _ := strconv.ParseInt(m["grace_ms"], 10, 64)
	return Rotation{ID: m["id"], Grace: time.Duration(grace) * time.Millisecond, InstanceID: m["instance_id"], State: m["state"],
		CredentialID: m["credential_id"], BatchID: recordedBatchID(m["batch_id"]), Reason: m["reason"], Queue: m["queue"],
		PushAttempted: m["push_attempted_at"] != "", Unconfirmed: m["unconfirmed"],
		RequestedAt: fromMS(m["requested_at"]), FinishedAt: fromMS(m["finished_at"]), StartedAt: fromMS(m["started_at"]),
		Error: m["error"]}, nil
}

// recordedBatchID is a rotation record's batch id, or "" for one
// tasks.UsableBatchID refuses, which a rekey version before this one kept
// from another app's task: the task rebuilt from the record would be
// refused (tasks.NewRotateTask).
func recordedBatchID(b string) string {
	if !tasks.UsableBatchID(b) {
		return ""
	}
	return b
}

// RotationsOfBatch returns, of the rotations ids, those of batch batchID
// as the requests that claimed them, reading them in pipelines of a
// thousand; rotations that are gone are left out. fleet.Cancel finds a
// cancelled wave's held rotations with it.
func (s *Store) RotationsOfBatch(ctx context.Context, ids []string, batchID string) ([]RotationRequest, error) {
	var out []RotationRequest
	for start := 0; start < len(ids); start += 1000 {
		chunk := ids[start:min(start+1000, len(ids))]
		cmds := make([]*redis.SliceCmd, len(chunk))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range chunk {
				cmds[i] = p.HMGet(ctx, rotationKey(id), "instance_id", "batch_id", "queue")
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read rotations: %w", err)
		}
		for i, c := range cmds {
			v := c.Val()
			instanceID, _ := v[0].(string)
			batch, _ := v[1].(string)
			queue, _ := v[2].(string)
			if instanceID != "" && batch == batchID {
				out = append(out, RotationRequest{InstanceID: instanceID, RotationID: chunk[i], BatchID: batch, Queue: queue})
			}
		}
	}
	return out, nil
}

// configKey is a HASH holding one pending credential's sealed config, in
// its field "config", apart from the credential's own hash: a value that
// long would turn that hash, which outlives the config by months, into
// Redis' larger hashtable encoding for good, and deleting the key frees
// all of it. The promotion or failure that ends the credential's pending
// state deletes it (luaConfig); it expires after the rotation ttl anyway.
// It is a hash, not a string, so that `rekey keys reseal` (reseal.go)
// finds the value as it finds every other sealed one.
func configKey(instanceID, credID string) string {
	return keyPrefix + "config:" + instanceID + ":" + credID
}

// configAAD is the associated data a credential's config is sealed with:
// where it is stored (reseal.go).
func configAAD(instanceID, credID string) string { return configKey(instanceID, credID) + "#config" }

// sealConfig seals a credential's config as one value bound to its key.
func (s *Store) sealConfig(instanceID, credID string, config map[string]secret.String) (string, error) {
	plain := make(map[string]string, len(config))
	for k, v := range config {
		plain[k] = v.Reveal()
	}
	b, err := json.Marshal(plain)
	if err != nil {
		return "", fmt.Errorf("seal config: %w", err)
	}
	sealed, err := s.sealer.Seal(secret.New(string(b)), configAAD(instanceID, credID))
	if err != nil {
		return "", fmt.Errorf("seal config: %w", err)
	}
	return sealed, nil
}

func (s *Store) openConfig(aad, credID, sealed string) (map[string]secret.String, error) {
	plain, err := s.sealer.Open(sealed, aad)
	if err != nil {
		return nil, fmt.Errorf("open config of %s: %w: %w", credID, ErrUnreadable, err)
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(plain.Reveal()), &m); err != nil {
		return nil, fmt.Errorf("open config of %s: %w: not a config object", credID, ErrUnreadable)
	}
	out := make(map[string]secret.String, len(m))
	for k, v := range m {
		out[k] = secret.New(v)
	}
	return out, nil
}

// RotationRef names a rotation in flight.
type RotationRef struct {
	InstanceID  string
	RotationID  string
	RequestedAt time.Time
}

// StaleRotations returns up to limit rotations, fleet-wide, requested at or
// before t and still in flight, oldest first. A sweep re-enqueues their
// tasks, so a rotation whose task was lost (a producer that crashed between
// claiming and enqueueing) still completes.
func (s *Store) StaleRotations(ctx context.Context, t time.Time, limit int64) ([]RotationRef, error) {
	members, at, err := s.dueMembers(ctx, inflightKey(), t, limit)
	if err != nil {
		return nil, fmt.Errorf("stale rotations: %w", err)
	}
	out := make([]RotationRef, 0, len(members))
	for i, m := range members {
		if inst, rot, ok := strings.Cut(m, "/"); ok {
			out = append(out, RotationRef{InstanceID: inst, RotationID: rot, RequestedAt: at[i]})
		}
	}
	return out, nil
}

// MarkPushAttempt records, just before the call, that a rotation's
// credential is being sent to Heroku under the registration to, the one
// the run claimed the rotation under. From then on the credential may be
// in the app's config whatever the call's answer, so it is never discarded
// blindly (I1). It refuses (ErrConflict) a rotation that is no longer
// minted: a run that failed or promoted it meanwhile may have discarded the
// credential, which must then not be sent. It refuses (ErrDeprovisioned)
// a push to an instance deprovisioned since the claim, and
// (ErrRegistrationChanged) one whose registration now names another API
// version, other config vars or, for V1, another heroku_id (compared
// without case): the push would set vars the apps no longer read, or go
// to an app that is no longer the instance's, maybe another customer's
// (the DELETE frees a V1 app's vars, and so does a registration naming
// another app or other vars). It refuses (ErrRegistrationChanged) too a
// push after a registration moved the instance to another database
// location (README "The PostgreSQL issuer") since the rotation's first run
// claimed it: the credential may open the old location, which the partner
// may give another customer.
func (s *Store) MarkPushAttempt(ctx context.Context, rotationID string, to PushTarget) error {
	apiVersion := to.APIVersion
	if apiVersion == "" {
		apiVersion = APIv3
	}
	keys := markPushKeys{rotation: rotationKey(rotationID), instance: instanceKey(to.InstanceID)}
	err := markPushScript.Run(ctx, s.rdb, keys.list(), ms(s.now()), apiVersion, to.HerokuID,
		strings.Join(to.ConfigVars, ",")).Err()
	return scriptError("mark push attempt", err)
}

// PushTarget is the registration a run pushes under, as its claim read it
// (Instance.Target).
type PushTarget struct {
	InstanceID string
	APIVersion string   // APIv3 when empty
	HerokuID   string   // a V1 instance's app
	ConfigVars []string // the vars the push sets
}

// Target is the registration a push to the instance goes under.
func (in Instance) Target() PushTarget {
	return PushTarget{InstanceID: in.ID, APIVersion: in.APIVersion, HerokuID: in.HerokuID, ConfigVars: in.ConfigVars}
}

// luaSortedNames holds sorted_names(s): a comma-separated list of config
// var names in one order, so that two lists of the same vars compare equal.
const luaSortedNames = `
local function sorted_names(s)
  local t = {}
  for name in string.gmatch(s or '', '[^,]+') do t[#t + 1] = name end
  table.sort(t)
  return table.concat(t, ',')
end
`

// markPushKeys are the KEYS of markPushScript, one field per key, in order.
type markPushKeys struct {
	rotation string // KEYS[1] -> rekey:rotation:<rotation id>
	instance string // KEYS[2] -> rekey:instance:<instance id>
}

func (k markPushKeys) list() []string { return []string{k.rotation, k.instance} }

// rotationOnlyKeys are the KEYS of the scripts that touch a rotation alone.
type rotationOnlyKeys struct {
	rotation string // KEYS[1] -> rekey:rotation:<rotation id>
}

func (k rotationOnlyKeys) list() []string { return []string{k.rotation} }

// markPushScript records a push attempt on a minted rotation of a live
// instance registered as the run's claim read it; the fail script reads
// the attempt, so that of the two, run at once, either the push is refused
// or the credential is kept (failScript). Of the partner's DELETE and this
// script, the first to run decides: the DELETE marks a rotation that
// attempted a push (deprovisionScript), and no push is attempted after it.
//
// KEYS: markPushKeys. ARGV: now ms, the claim's API version, heroku_id and
// config vars (comma-separated, as stored).
// Returns "ok". Errors: "not_found", "conflict ..." when the rotation is
// not minted, "deprovisioned", "registration_changed".
var markPushScript = eventScript(luaSortedNames, `
local r = redis.call('HMGET', KEYS[1], 'state', 'push_attempts', 'database_moves')
local st = r[1] or ''
if st == '' then return redis.error_reply('not_found') end
if st ~= 'minted' then return redis.error_reply('conflict rotation is ' .. st) end
local inst = redis.call('HMGET', KEYS[2], 'registered_at', 'deprovisioned_at', 'api_version', 'heroku_id', 'config_vars',
  'database_moves')
if not inst[1] or (inst[2] or '') ~= '' then return redis.error_reply('deprovisioned') end
local api = inst[3] or ''
if api == '' then api = '`+APIv3+`' end
-- A V3 push names the add-on, a V1 push the app: only V1 reads heroku_id.
-- The vars as a set: the same vars in another order change nothing it does.
if api ~= ARGV[2] or sorted_names(inst[5]) ~= sorted_names(ARGV[4]) or
    (api == '`+APIv1+`' and string.lower(inst[4] or '') ~= string.lower(ARGV[3])) then
  return redis.error_reply('registration_changed')
end
-- A registration that moved the instance to another database location
-- since the rotation's first run claimed it (claimScript notes the count;
-- none noted, a rotation older than the count, is 0): the credential may
-- open the old location, which the partner may hand to another customer.
if (tonumber(inst[6]) or 0) ~= (tonumber(r[3]) or 0) then return redis.error_reply('registration_changed') end
redis.call('HSET', KEYS[1], 'push_attempted_at', ARGV[1], 'push_attempts', (tonumber(r[2]) or 0) + 1)
return 'ok'
`)

// SettlePush records that n push attempts of the rotation (MarkPushAttempt)
// can no longer land: Heroku refused them. A read-back of Heroku's config proves
// a credential absent only while no attempt is unsettled: a request still
// on its way could land after the read (Failure.Attempts). An attempt that
// got no such answer settles by itself once the rotation's last attempt is
// older than UnansweredPushWindow.
func (s *Store) SettlePush(ctx context.Context, rotationID string, n int) error {
	keys := rotationOnlyKeys{rotation: rotationKey(rotationID)}
	err := settlePushScript.Run(ctx, s.rdb, keys.list(), n, callToken()).Err()
	return scriptError("settle push", err)
}

// settlePushScript counts settled push attempts of an existing rotation,
// once a token (settle_once).
//
// KEYS: rotationOnlyKeys. ARGV: how many attempts settled, the call's
// token (callToken). Returns "ok".
var settlePushScript = redis.NewScript(luaSettleOnce + `
if redis.call('EXISTS', KEYS[1]) == 1 then settle_once(KEYS[1], ARGV[1], ARGV[2]) end
return 'ok'
`)

// callToken names one call of a script that must not count twice (a settle
// of push attempts, a revocation's record). go-redis sends a
// script again, with the same arguments, when the connection broke after
// the script left (its retries on a network error): the script ran, its
// answer was lost, and counted again the settled attempts would exceed
// those Heroku refused, an unanswered push among them counted settled,
// and a read-back would discard and revoke a credential that push may
// still put in the config (I1). A revocation's record (markRevokedScript)
// carries one too: sent again after it answered "again", it would record
// revoked a credential a mint may have made anew (I3).
func callToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand: never fails
	return hex.EncodeToString(b[:])
}

// luaSettleOnce holds settle_once(key, n, token): adds n to the rotation
// key's push_settled unless the call named token already did, keeping the
// last eight tokens in push_settled_by; an empty token always adds.
// Returns whether it added.
const luaSettleOnce = `
local function settle_once(key, n, token)
  if (token or '') == '' then
    redis.call('HINCRBY', key, 'push_settled', n)
    return true
  end
  local seen = redis.call('HGET', key, 'push_settled_by') or ''
  if string.find(',' .. seen .. ',', ',' .. token .. ',', 1, true) then return false end
  local list = {}
  for t in string.gmatch(seen, '[^,]+') do list[#list + 1] = t end
  list[#list + 1] = token
  while #list > 8 do table.remove(list, 1) end
  redis.call('HSET', key, 'push_settled_by', table.concat(list, ','))
  redis.call('HINCRBY', key, 'push_settled', n)
  return true
end
`

// PushAttempts returns how many push attempts of the rotation were made
// and how many are settled: refused (SettlePush), or all of them once the
// last is older than UnansweredPushWindow.
func (s *Store) PushAttempts(ctx context.Context, rotationID string) (attempts, settled int64, err error) {
	vals, err := s.rdb.HMGet(ctx, rotationKey(rotationID), "push_attempts", "push_settled", "push_attempted_at").Result()
	if err != nil {
		return 0, 0, fmt.Errorf("push attempts: %w", err)
	}
	a, _ := vals[0].(string)
	b, _ := vals[1].(string)
	c, _ := vals[2].(string)
	attempts, settled = s.pushCounts(a, b, c)
	return attempts, settled, nil
}

// pushCounts reads a rotation's push_attempts, push_settled and
// push_attempted_at: every attempt counts settled once the last is
// UnansweredPushWindow old.
func (s *Store) pushCounts(attemptsField, settledField, lastField string) (attempts, settled int64) {
	attempts, _ = strconv.ParseInt(attemptsField, 10, 64)
	settled, _ = strconv.ParseInt(settledField, 10, 64)
	if last, err := strconv.ParseInt(lastField, 10, 64); err == nil && ms(s.now())-last >= s.pushWindow.Milliseconds() {
		settled = attempts
	}
	return attempts, settled
}

// UnansweredPushWindow is how long after a push that got no answer, a 5xx
// or a 408, Heroku might still apply it (heroku.Refused): until then the push
// counts as unsettled, and its credential is kept rather than revoked on
// the strength of a read-back (I1). Heroku's router gives up on a request
// after 30 s; an hour leaves room for whatever runs behind it.
const UnansweredPushWindow = time.Hour

// WithUnansweredPushWindow sets UnansweredPushWindow, for tests.
func WithUnansweredPushWindow(d time.Duration) Option { return func(s *Store) { s.pushWindow = d } }
