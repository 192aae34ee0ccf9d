package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/tasks"
)

// This file holds the fleet-sized variants of single-instance operations:
// each sends one pipeline for a whole chunk of instances, so a request for
// 10,000 instances costs tens of round trips instead of tens of thousands.

// ClaimOutcome is the result of one request of ClaimMany: a Claim, or the
// error Claim would have returned.
type ClaimOutcome struct {
	Claim Claim
	Err   error
}

// ClaimMany runs Claim for every request in one pipeline. Each request runs
// the same script as Claim, atomically and independently: one request's
// failure (ErrNotFound, ErrDeprovisioned) does not affect the others.
// Outcomes are in the order of reqs. The claims are brief, as a producer
// needs them: each Claim holds its Status, RotationID and State only.
func (s *Store) ClaimMany(ctx context.Context, reqs []RotationRequest) []ClaimOutcome {
	out := make([]ClaimOutcome, len(reqs))
	cmds := make([]*redis.Cmd, len(reqs))
	// A pipeline cannot fall back from EVALSHA to EVAL: load the script
	// first, so that a fresh Redis does not answer the first chunks NOSCRIPT.
	_ = claimScript.Load(ctx, s.rdb).Err()
	pipe := s.rdb.Pipeline()
	for i, r := range reqs {
		if !ValidID(r.InstanceID) || !ValidID(r.RotationID) {
			out[i].Err = fmt.Errorf("claim: instance id %q or rotation id %q is not valid", r.InstanceID, r.RotationID)
			continue
		}
		keys, args := s.claimArgs(r, true)
		cmds[i] = claimScript.EvalSha(ctx, pipe, keys, args...)
	}
	_, _ = pipe.Exec(ctx) // errors are read per command below
	for i, c := range cmds {
		if c == nil {
			continue
		}
		if isNoScript(c.Err()) {
			// The script cache was flushed: claim loads the script again.
			out[i].Claim, out[i].Err = s.claim(ctx, reqs[i], true)
			continue
		}
		res, err := c.Slice()
		if err != nil {
			out[i].Err = scriptError("claim "+reqs[i].InstanceID, err)
			continue
		}
		out[i].Claim, out[i].Err = s.claimFrom(reqs[i].InstanceID, res)
	}
	return out
}

// claimKeys are the KEYS of claimScript, one field per key, in order.
type claimKeys struct {
	instance          string // KEYS[1] -> rekey:instance:<instance id>
	rotation          string // KEYS[2] -> rekey:rotation:<rotation id>
	previous          string // KEYS[3] -> rekey:previous:<instance id>
	instanceEvents    string // KEYS[4] -> rekey:history:<instance id>
	events            string // KEYS[5] -> rekey:events
	rotationPrefix    string // KEYS[6] -> rekey:rotation: (the script appends the in-flight rotation's id)
	inflight          string // KEYS[7] -> rekey:inflight
	batchPrefix       string // KEYS[8] -> rekey:batch: (the script appends the rotation's batch id)
	customerRotations string // KEYS[9] -> rekey:customer_rotations:<instance id>
}

func newClaimKeys(instanceID, rotationID string) claimKeys {
	return claimKeys{instance: instanceKey(instanceID), rotation: rotationKey(rotationID),
		previous: previousKey(instanceID), instanceEvents: historyKey(instanceID), events: eventsKey(),
		rotationPrefix: rotationKey(""), inflight: inflightKey(), batchPrefix: batchKey(""),
		customerRotations: customerRotationsKey(instanceID)}
}

func (k claimKeys) list() []string {
	return []string{k.instance, k.rotation, k.previous, k.instanceEvents, k.events, k.rotationPrefix,
		k.inflight, k.batchPrefix, k.customerRotations}
}

// claimArgs returns the KEYS and ARGV of claimScript for r; a brief claim
// answers only the status.
func (s *Store) claimArgs(r RotationRequest, brief bool) ([]string, []any) {
	keys := newClaimKeys(r.InstanceID, r.RotationID).list()
	args := []any{r.RotationID, r.InstanceID, ms(s.now()), r.BatchID, r.Reason, r.Queue,
		map[bool]string{true: "1"}[r.SkipIfPrevious], s.eventsPerInstance, s.eventsGlobal,
		r.Grace.Milliseconds(), int64(s.finishedTTL.Seconds()), map[bool]string{true: "1"}[brief]}
	return keys, append(append(args, s.limitArgs(r)...), r.Overtakes, tasks.RotateTimeout.Milliseconds())
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// evalEach runs script once for each of ids, with the KEYS and ARGV keys
// and args give it, in one pipeline, and returns the replies in the order
// of ids. The caller loads the script first; one the script cache lost
// meanwhile (NOSCRIPT) is run again alone, which loads it.
func (s *Store) evalEach(ctx context.Context, script *redis.Script, ids []string,
	keys func(string) []string, args func(string) []any) []*redis.Cmd {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(ids))
	for i, id := range ids {
		cmds[i] = script.EvalSha(ctx, pipe, keys(id), args(id)...)
	}
	_, _ = pipe.Exec(ctx) // errors are read per command
	for i, c := range cmds {
		if isNoScript(c.Err()) {
			cmds[i] = script.Run(ctx, s.rdb, keys(ids[i]), args(ids[i])...)
		}
	}
	return cmds
}

// TokenExpiry says when an instance's stored OAuth access token expires,
// without opening it.
type TokenExpiry struct {
	// HasAccess is true when an access token is stored.
	HasAccess bool
	// ExpiresAt is zero when the expiry is unknown (the token is used until
	// Heroku refuses it).
	ExpiresAt time.Time
}

// TokenExpiries returns the access-token expiry of each instance, in the
// order of ids, with one round trip. Nothing is decrypted.
func (s *Store) TokenExpiries(ctx context.Context, ids []string) ([]TokenExpiry, error) {
	pipe := s.rdb.Pipeline()
	held := make([]*redis.IntCmd, len(ids))
	lens := make([]*redis.IntCmd, len(ids))
	exps := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		held[i] = pipe.Exists(ctx, oauthKey(id))
		lens[i] = pipe.HStrLen(ctx, instanceKey(id), legacyTokenFields[0])
		exps[i] = pipe.HGet(ctx, instanceKey(id), "oauth_expires_at")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("token expiries: %w", err)
	}
	out := make([]TokenExpiry, len(ids))
	for i := range ids {
		out[i] = TokenExpiry{HasAccess: held[i].Val() > 0 || lens[i].Val() > 0, ExpiresAt: fromMS(exps[i].Val())}
	}
	return out, nil
}

// PreviousCounts returns how many previous credentials of each instance
// wait for revocation, in the order of ids, with one round trip.
func (s *Store) PreviousCounts(ctx context.Context, ids []string) ([]int64, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.ZCard(ctx, previousKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("count previous credentials: %w", err)
	}
	out := make([]int64, len(ids))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}
