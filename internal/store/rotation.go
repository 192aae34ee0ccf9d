package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
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

// Rotation states.
const (
	RotationRequested = "requested"
	RotationMinted    = "minted"
	RotationPromoted  = "promoted"
	RotationFailed    = "failed"
)

// RotationRequest asks for one rotation of one instance.
type RotationRequest struct {
	InstanceID string
	RotationID string
	BatchID    string
	Reason     string
	Queue      string
	// Grace overrides the instance's grace period when positive.
	Grace time.Duration
	// SkipIfPrevious declines the rotation while a previous credential of
	// the instance still waits for revocation.
	SkipIfPrevious bool
	// Customer, when set, marks a customer's request (the dashboard's
	// button) and carries the customer's limits (limits.go).
	Customer *CustomerLimits
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
	// Refused, with Status Skipped, says which limit refused the request
	// (limits.go); nil for any other outcome.
	Refused *Refusal
}

// Revocation names a credential waiting to be revoked and when.
type Revocation struct {
	InstanceID   string    `json:"instance_id"`
	CredentialID string    `json:"credential_id"`
	RevokeAt     time.Time `json:"revoke_at"`
}

// Claim starts the rotation r.RotationID of r.InstanceID, resumes it when it
// exists, or joins the rotation already in flight. It returns ErrNotFound
// for an unknown instance and ErrDeprovisioned for a deprovisioned one.
func (s *Store) Claim(ctx context.Context, r RotationRequest) (Claim, error) {
	if !ValidID(r.InstanceID) || !ValidID(r.RotationID) {
		return Claim{}, fmt.Errorf("claim: instance id %q or rotation id %q is not valid", r.InstanceID, r.RotationID)
	}
	keys, args := s.claimArgs(r, false)
	res, err := claimScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return Claim{}, scriptError("claim "+r.InstanceID, err)
	}
	return claimFrom(r.InstanceID, res)
}

func claimFrom(instanceID string, res []any) (Claim, error) {
	str := func(i int) string { v, _ := res[i].(string); return v }
	switch len(res) {
	case 3: // a brief claim
		return Claim{Status: ClaimStatus(str(0)), RotationID: str(1), State: str(2)}, nil
	case 6: // refused by a limit (limits.go)
		return Claim{Status: ClaimStatus(str(0)), RotationID: str(1), Refused: refusalFrom(res)}, nil
	case 8:
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
	c.Instance = instanceFrom(m)
	c.PushAttempted = str(7) != ""
	return c, nil
}

// SavePending stores the credential minted for a rotation as pending, its
// config sealed. Saving the same credential again is a no-op; a different
// credential for the same rotation is ErrConflict.
func (s *Store) SavePending(ctx context.Context, instanceID, rotationID, credID string, config map[string]secret.String) error {
	if !ValidID(credID) {
		return fmt.Errorf("save pending: issuer credential id %q is not valid", credID)
	}
	sealed, err := s.sealConfig(instanceID, credID, config)
	if err != nil {
		return err
	}
	keys := []string{rotationKey(rotationID), credentialKey(instanceID, credID),
		instanceEventsKey(instanceID), eventsKey(), revokeDueKey()}
	args := []any{credID, instanceID, rotationID, sealed, ms(s.now()), s.eventsPerInstance, s.eventsGlobal}
	return scriptError("save pending", savePendingScript.Run(ctx, s.rdb, keys, args...).Err())
}

// PendingConfig returns the config of a pending credential, opened. It is
// ErrNotFound once the credential has been promoted or discarded.
func (s *Store) PendingConfig(ctx context.Context, instanceID, credID string) (map[string]secret.String, error) {
	vals, err := s.rdb.HMGet(ctx, credentialKey(instanceID, credID), "state", "config").Result()
	if err != nil {
		return nil, fmt.Errorf("pending config: %w", err)
	}
	state, _ := vals[0].(string)
	sealed, _ := vals[1].(string)
	if state != CredentialPending || sealed == "" {
		return nil, fmt.Errorf("pending config of %s: %w", credID, ErrNotFound)
	}
	return s.openConfig(instanceID, credID, sealed)
}

// Promote makes the rotation's pushed credential current, and the current
// one previous with revoke_at = now + grace. It returns the superseded
// credential (nil when there was none). Promoting twice returns the same.
// It also schedules the instance's next rotation one period on and ends any
// quarantine (schedule.go).
func (s *Store) Promote(ctx context.Context, instanceID, rotationID, credID string, grace time.Duration, detail string) (*Revocation, error) {
	keys := []string{instanceKey(instanceID), rotationKey(rotationID), credentialKey(instanceID, credID),
		previousKey(instanceID), revokeDueKey(), instanceEventsKey(instanceID), eventsKey(),
		credentialKey(instanceID, ""), inflightKey(), batchKey("")}
	keys = append(keys, scheduleKeys()...)
	args := []any{instanceID, rotationID, credID, ms(s.now()), grace.Milliseconds(),
		s.eventsPerInstance, s.eventsGlobal, int64(s.finishedTTL.Seconds()), detail,
		slotHash(instanceID), DefaultRotationPeriod.Milliseconds()}
	res, err := promoteScript.Run(ctx, s.rdb, keys, args...).StringSlice()
	if err != nil {
		return nil, scriptError("promote", err)
	}
	if len(res) != 2 || res[0] == "" {
		return nil, nil
	}
	return &Revocation{InstanceID: instanceID, CredentialID: res[0], RevokeAt: fromMS(res[1])}, nil
}

// Fail ends a rotation that failed permanently before its credential was
// published. Its pending credential, if any, is discarded and returned for
// revocation; the instance keeps its current credential. Failing a rotation
// that was already promoted does nothing and returns nil. code is a short
// stable label of the failure ("push:not_found") by which a batch groups
// its failures; cause is the sentence shown to people. A failed scheduled
// rotation counts towards the instance's quarantine (schedule.go).
func (s *Store) Fail(ctx context.Context, instanceID, rotationID, code, cause string) (*Revocation, error) {
	credID, _ := s.rdb.HGet(ctx, rotationKey(rotationID), "credential_id").Result()
	keys := []string{instanceKey(instanceID), rotationKey(rotationID), credentialKey(instanceID, credID),
		revokeDueKey(), instanceEventsKey(instanceID), eventsKey(), inflightKey(), batchKey("")}
	keys = append(keys, scheduleKeys()...)
	now := s.now()
	args := []any{instanceID, rotationID, ms(now), cause, s.eventsPerInstance, s.eventsGlobal,
		int64(s.finishedTTL.Seconds()), code, DefaultRotationPeriod.Milliseconds(), DefaultQuarantineAfter}
	res, err := failScript.Run(ctx, s.rdb, keys, args...).StringSlice()
	if err != nil {
		return nil, scriptError("fail rotation", err)
	}
	if len(res) != 2 || res[1] == "" {
		return nil, nil
	}
	return &Revocation{InstanceID: instanceID, CredentialID: res[1], RevokeAt: now.UTC()}, nil
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
	Error        string        `json:"error,omitempty"`
	// PushAttempted is true once a run sent the credential to Heroku.
	PushAttempted bool `json:"push_attempted"`
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
		CredentialID: m["credential_id"], BatchID: m["batch_id"], Reason: m["reason"], Queue: m["queue"],
		PushAttempted: m["push_attempted_at"] != "",
		RequestedAt:   fromMS(m["requested_at"]), FinishedAt: fromMS(m["finished_at"]), Error: m["error"]}, nil
}

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
	sealed, err := s.sealer.Seal(secret.New(string(b)), credentialKey(instanceID, credID)+"#config")
	if err != nil {
		return "", fmt.Errorf("seal config: %w", err)
	}
	return sealed, nil
}

func (s *Store) openConfig(instanceID, credID, sealed string) (map[string]secret.String, error) {
	plain, err := s.sealer.Open(sealed, credentialKey(instanceID, credID)+"#config")
	if err != nil {
		return nil, fmt.Errorf("open config of %s: %w", credID, err)
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(plain.Reveal()), &m); err != nil {
		return nil, errors.New("open config: stored value is not a config object")
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

// MarkPushAttempt records, before the call, that a rotation's credential is
// being sent to Heroku. From then on the credential may be in the app's
// config whatever the call's answer, so it is never discarded blindly (I1).
func (s *Store) MarkPushAttempt(ctx context.Context, rotationID string) error {
	if err := s.rdb.HSetNX(ctx, rotationKey(rotationID), "push_attempted_at", ms(s.now())).Err(); err != nil {
		return fmt.Errorf("mark push attempt: %w", err)
	}
	return nil
}
