package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Credential is what rekey records of one credential. It holds no secret.
type Credential struct {
	ID         string    `json:"credential_id"`
	InstanceID string    `json:"instance_id"`
	RotationID string    `json:"rotation_id,omitempty"`
	State      string    `json:"state"`
	MintedAt   time.Time `json:"minted_at,omitzero"`
	PromotedAt time.Time `json:"promoted_at,omitzero"`
	RevokeAt   time.Time `json:"revoke_at,omitzero"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	// ExpeditedAt is when an emergency revoke moved RevokeAt to then; such
	// a revocation is never held (handlers, hold.go).
	ExpeditedAt time.Time `json:"expedited_at,omitzero"`
	// HoldReleasedAt is when the revocation's last hold ended
	// (Store.ReleaseHold); the revocation is due from then, if later than
	// RevokeAt. Zero for a credential never held.
	HoldReleasedAt time.Time `json:"hold_released_at,omitzero"`
	// HoldReleasedBy names the operator who released the revocation's
	// hold (Store.RequestHoldRelease), kept once the hold is gone: such a
	// revocation is never held again, also when its DELETE fails and the
	// task runs again (handlers, hold.go).
	HoldReleasedBy string `json:"hold_released_by,omitempty"`
	// elsewhere is the fingerprint of the credential's config when that
	// config was another instance's live one as this instance's current
	// credential was learned (FingerprintLiveElsewhere): Store.LiveElsewhere
	// asks the index of live configs whether it still is.
	elsewhere string
}

// Revoked reports whether the issuer has revoked the credential.
func (c Credential) Revoked() bool { return !c.RevokedAt.IsZero() }

// DueAt is when the credential's revocation was due to run: its revoke
// time, or the end of its last hold when that is later (the issuer's
// evidence of use lengthened the grace; docs/design.md, "Holds").
func (c Credential) DueAt() time.Time {
	if c.HoldReleasedAt.After(c.RevokeAt) {
		return c.HoldReleasedAt
	}
	return c.RevokeAt
}

// Credential returns one credential of an instance, or ErrNotFound.
func (s *Store) Credential(ctx context.Context, instanceID, credID string) (Credential, error) {
	m, err := s.rdb.HGetAll(ctx, credentialKey(instanceID, credID)).Result()
	if err != nil {
		return Credential{}, fmt.Errorf("get credential: %w", err)
	}
	if len(m) == 0 {
		return Credential{}, fmt.Errorf("credential %s of %s: %w", credID, instanceID, ErrNotFound)
	}
	// The hash's key names the credential and its instance; versions
	// before this one also wrote them as fields "id" and "instance_id".
	return Credential{ID: credID, InstanceID: instanceID, RotationID: m["rotation_id"],
		State: m["state"], MintedAt: fromMS(m["minted_at"]), PromotedAt: fromMS(m["promoted_at"]),
		RevokeAt: fromMS(m["revoke_at"]), RevokedAt: fromMS(m["revoked_at"]),
		ExpeditedAt: fromMS(m["expedited_at"]), HoldReleasedAt: fromMS(m["hold_released_at"]),
		HoldReleasedBy: m["hold_released_by"], elsewhere: m["f_elsewhere"]}, nil
}

// MarkRevoked records that the issuer revoked a previous or discarded
// credential. It is idempotent. It refuses (ErrConflict) a pending or
// current credential, which must never be revoked (I1). ErrMintedAgain
// says a mint answered the credential again while it waited: it is due
// again at once instead, for its revocation to run again.
func (s *Store) MarkRevoked(ctx context.Context, instanceID, credID string) error {
	keys := newMarkRevokedKeys(instanceID, credID)
	args := []any{instanceID, credID, ms(s.now()), s.eventsPerInstance, s.eventsGlobal,
		int64(s.finishedTTL.Seconds()), callToken()}
	res, err := markRevokedScript.Run(ctx, s.rdb, keys.list(), args...).Text()
	if err != nil {
		return scriptError("mark revoked", err)
	}
	if res == "again" {
		return fmt.Errorf("mark revoked %s: %w", credID, ErrMintedAgain)
	}
	return nil
}

// markRevokedKeys are the KEYS of markRevokedScript, one field per key, in order.
type markRevokedKeys struct {
	credential     string // KEYS[1] -> rekey:cred:<instance id>:<credential id>
	previous       string // KEYS[2] -> rekey:previous:<instance id>
	revokeDue      string // KEYS[3] -> rekey:revoke_due
	instanceEvents string // KEYS[4] -> rekey:history:<instance id>
	events         string // KEYS[5] -> rekey:events
	batchPrefix    string // KEYS[6] -> rekey:batch: (the script appends the superseding batch's id)
	dead           string // KEYS[7] -> rekey:revoke_dead
	minted         string // KEYS[8] -> rekey:minted:<instance id>
	hold           string // KEYS[9] -> rekey:hold:<instance id>:<credential id>
	holds          string // KEYS[10] -> rekey:holds
	livePrefix     string // KEYS[11] -> rekey:live: (the script appends a fingerprint's first byte, in hex)
}

func newMarkRevokedKeys(instanceID, credID string) markRevokedKeys {
	return markRevokedKeys{credential: credentialKey(instanceID, credID), previous: previousKey(instanceID),
		revokeDue: revokeDueKey(), instanceEvents: historyKey(instanceID), events: eventsKey(),
		batchPrefix: batchKey(""), dead: deadKey(), minted: mintedKey(instanceID),
		hold: holdKey(instanceID, credID), holds: holdsKey(), livePrefix: livePrefix()}
}

func (k markRevokedKeys) list() []string {
	return []string{k.credential, k.previous, k.revokeDue, k.instanceEvents, k.events, k.batchPrefix, k.dead,
		k.minted, k.hold, k.holds, k.livePrefix}
}

// Previous returns the instance's credentials waiting for revocation,
// soonest first.
func (s *Store) Previous(ctx context.Context, instanceID string) ([]Revocation, error) {
	zs, err := s.rdb.ZRangeWithScores(ctx, previousKey(instanceID), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("previous credentials: %w", err)
	}
	out := make([]Revocation, len(zs))
	for i, z := range zs {
		out[i] = Revocation{InstanceID: instanceID, CredentialID: z.Member.(string),
			RevokeAt: time.UnixMilli(int64(z.Score)).UTC()}
	}
	return out, nil
}

// DueRevocations returns up to limit credentials, fleet-wide, whose revoke
// time is at or before t, soonest first. A sweep uses it to re-enqueue any
// revoke task that was lost, so every old credential is revoked (I3).
func (s *Store) DueRevocations(ctx context.Context, t time.Time, limit int64) ([]Revocation, error) {
	members, at, err := s.dueMembers(ctx, revokeDueKey(), t, limit)
	if err != nil {
		return nil, fmt.Errorf("due revocations: %w", err)
	}
	out := make([]Revocation, 0, len(members))
	for i, m := range members {
		if inst, cred, ok := strings.Cut(m, "/"); ok {
			out = append(out, Revocation{InstanceID: inst, CredentialID: cred, RevokeAt: at[i]})
		}
	}
	return out, nil
}

// PendingRevocations counts credentials, fleet-wide, waiting to be revoked.
func (s *Store) PendingRevocations(ctx context.Context) (int64, error) {
	n, err := s.rdb.ZCard(ctx, revokeDueKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("count revocations: %w", err)
	}
	return n, nil
}

// ExpediteRevocation moves a previous credential's revoke time to now: the
// emergency "revoke the old credential now", for when it is known to have
// leaked. Apps that have not restarted since the rotation will fail. It
// returns the revocation to run, and ErrConflict unless the credential is
// previous and not yet revoked; ErrRevocationDead, an ErrConflict, when
// its revocation is in the dead-letter set (it waits for
// RetryDeadRevocation).
func (s *Store) ExpediteRevocation(ctx context.Context, instanceID, credID, by string) (Revocation, error) {
	r, _, err := s.Expedite(ctx, instanceID, credID, by)
	return r, err
}

// ExpeditedByCustomer is who asked, in ExpediteRevocation, for a customer's
// "revoke now" on the dashboard.
const ExpeditedByCustomer = "customer"

// Expedite is ExpediteRevocation, and also says whether this call moved
// the revoke time: a credential expedited before, its revoke time passed,
// is left as it is, nothing written, and the revocation returned has its
// revoke time.
func (s *Store) Expedite(ctx context.Context, instanceID, credID, by string) (Revocation, bool, error) {
	keys := newExpediteKeys(instanceID, credID)
	args := []any{instanceID, credID, ms(s.now()), s.eventsPerInstance, s.eventsGlobal, by}
	res, err := expediteScript.Run(ctx, s.rdb, keys.list(), args...).StringSlice()
	if err != nil {
		return Revocation{}, false, scriptError("expedite revocation", err)
	}
	if len(res) != 2 {
		return Revocation{}, false, fmt.Errorf("expedite revocation: unexpected reply %q", res)
	}
	return Revocation{InstanceID: instanceID, CredentialID: credID, RevokeAt: fromMS(res[1])}, res[0] == "ok", nil
}

// expediteKeys are the KEYS of expediteScript, one field per key, in order.
type expediteKeys struct {
	credential     string // KEYS[1] -> rekey:cred:<instance id>:<credential id>
	previous       string // KEYS[2] -> rekey:previous:<instance id>
	revokeDue      string // KEYS[3] -> rekey:revoke_due
	instanceEvents string // KEYS[4] -> rekey:history:<instance id>
	events         string // KEYS[5] -> rekey:events
}

func newExpediteKeys(instanceID, credID string) expediteKeys {
	return expediteKeys{credential: credentialKey(instanceID, credID), previous: previousKey(instanceID),
		revokeDue: revokeDueKey(), instanceEvents: historyKey(instanceID), events: eventsKey()}
}

func (k expediteKeys) list() []string {
	return []string{k.credential, k.previous, k.revokeDue, k.instanceEvents, k.events}
}

// forgetStrayDueKeys are the KEYS of forgetStrayDueScript.
type forgetStrayDueKeys struct {
	credential string // KEYS[1] -> rekey:cred:<instance id>:<credential id>
	revokeDue  string // KEYS[2] -> rekey:revoke_due
}

func (k forgetStrayDueKeys) list() []string { return []string{k.credential, k.revokeDue} }

// forgetStrayDueScript drops a credential from the revocations due when it
// is pending, current or unconfirmed; never one whose record is gone.
//
// KEYS: forgetStrayDueKeys. ARGV[1]: the member "<instance id>/<credential
// id>". Returns 1 when it dropped the entry, else 0.
var forgetStrayDueScript = redis.NewScript(`
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'pending' and state ~= 'current' and state ~= 'unconfirmed' then return 0 end
return redis.call('ZREM', KEYS[2], ARGV[1])
`)

// ForgetStrayDue drops the credential from the revocations due when rekey
// knows it as one it does not revoke (pending, current or unconfirmed): the
// index is out of step with it, and the sweep would otherwise enqueue a
// revoke task for it at every pass, each one refused (I1). A credential
// whose record is gone keeps its entry: it may still work at the issuer,
// and the sweep sets it aside as dead for an operator. It reports whether
// it dropped an entry.
func (s *Store) ForgetStrayDue(ctx context.Context, instanceID, credID string) (bool, error) {
	keys := forgetStrayDueKeys{credential: credentialKey(instanceID, credID), revokeDue: revokeDueKey()}
	n, err := forgetStrayDueScript.Run(ctx, s.rdb, keys.list(), instanceID+"/"+credID).Int()
	if err != nil {
		return false, fmt.Errorf("forget stray due revocation: %w", err)
	}
	return n == 1, nil
}

// UnconfirmedCredential is a credential kept unrevoked because a push of it
// had no clear answer (CredentialUnconfirmed): a failed rotation's, a
// current one a promotion set aside while its own push was unanswered, or
// one an instance registered again after a DELETE had. Heroku may hold it,
// so it is revoked only after the grace once a rotation has replaced it on
// Heroku with its push settled, or once the instance is deprovisioned (I1).
type UnconfirmedCredential struct {
	CredentialID string `json:"credential_id"`
	// RotationID is the rotation that minted it.
	RotationID string `json:"rotation_id,omitempty"`
	// Since is when it was set aside.
	Since time.Time `json:"since"`
}

// Unconfirmed returns the instance's unconfirmed credentials, oldest
// first. The index may still name one a promotion has since made previous
// or discarded (promoteScript prunes it lazily): only those whose record
// says unconfirmed are listed.
func (s *Store) Unconfirmed(ctx context.Context, instanceID string) ([]UnconfirmedCredential, error) {
	zs, err := s.rdb.ZRangeWithScores(ctx, unconfirmedKey(instanceID), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("unconfirmed credentials: %w", err)
	}
	if len(zs) == 0 {
		return []UnconfirmedCredential{}, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(zs))
	for i, z := range zs {
		cmds[i] = pipe.HMGet(ctx, credentialKey(instanceID, z.Member.(string)), "state", "rotation_id")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("unconfirmed credentials: %w", err)
	}
	out := make([]UnconfirmedCredential, 0, len(zs))
	for i, z := range zs {
		v := cmds[i].Val()
		if state, _ := v[0].(string); state != CredentialUnconfirmed {
			continue
		}
		rot, _ := v[1].(string)
		out = append(out, UnconfirmedCredential{CredentialID: z.Member.(string), RotationID: rot,
			Since: time.UnixMilli(int64(z.Score)).UTC()})
	}
	return out, nil
}
