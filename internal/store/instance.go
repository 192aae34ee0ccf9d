package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/tasks"
)

// API versions of Heroku's partner APIs an instance is reached through.
const (
	APIv3 = "v3"
	APIv1 = "v1"
)

// Instance is one add-on instance as rekey knows it. It holds no secret.
type Instance struct {
	ID           string        `json:"id"`
	APIVersion   string        `json:"api_version"`
	ConfigVars   []string      `json:"config_vars"`
	HerokuID     string        `json:"heroku_id,omitempty"`
	PrivateSpace bool          `json:"private_space"`
	Grace        time.Duration `json:"-"`

	RegisteredAt    time.Time `json:"registered_at"`
	DeprovisionedAt time.Time `json:"deprovisioned_at,omitzero"`
	// RegisteredAgainAt is when the instance was last registered again
	// after a deprovisioning (zero: never): from then on its id names
	// another add-on, which may be another customer's, than before.
	RegisteredAgainAt time.Time `json:"-"`

	// CurrentCredential is the issuer's id of the credential in the app's config.
	CurrentCredential string    `json:"current_credential_id,omitempty"`
	CurrentSince      time.Time `json:"current_since,omitzero"`
	// InFlight is the id of the rotation under way, if any.
	InFlight      string    `json:"in_flight_rotation_id,omitempty"`
	LastRotatedAt time.Time `json:"last_rotated_at,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`
	// LastErrorCode is the failure code of LastError ("push:not_found"),
	// from which the dashboard picks the sentence a customer sees.
	LastErrorCode string `json:"last_error_code,omitempty"`

	// NextRotationAt is when the scheduler next looks at the instance: its
	// next scheduled rotation, or, while one runs, when it is retried if
	// that rotation is lost. Zero when the instance is not scheduled (opted
	// out, quarantined, deprovisioned, or scheduled rotation is off). Only
	// Instance and Instances fill it.
	NextRotationAt time.Time `json:"next_rotation_at,omitzero"`
	// ScheduleOptOut and Window are the instance's own schedule (SetSchedule).
	ScheduleOptOut bool    `json:"schedule_opt_out,omitempty"`
	Window         *Window `json:"maintenance_window,omitempty"`
	// FailStreak counts the scheduled rotations in a row that failed
	// permanently; any successful rotation resets it.
	FailStreak int `json:"scheduled_fail_streak,omitempty"`
	// QuarantinedAt is when the scheduler set the instance aside after
	// FailStreak reached the limit; zero when it is not quarantined.
	QuarantinedAt time.Time `json:"quarantined_at,omitzero"`
	// QuarantineReason says why the instance was set aside.
	QuarantineReason string `json:"quarantine_reason,omitempty"`
}

// Deprovisioned reports whether the instance has been deprovisioned.
func (in Instance) Deprovisioned() bool { return !in.DeprovisionedAt.IsZero() }

// Quarantined reports whether the scheduler has set the instance aside.
func (in Instance) Quarantined() bool { return !in.QuarantinedAt.IsZero() }

// Registration is what a producer tells rekey about an instance.
type Registration struct {
	ID           string
	APIVersion   string
	ConfigVars   []string
	HerokuID     string
	PrivateSpace bool
	// Grace overrides the default grace period when positive.
	Grace time.Duration
	// CurrentCredentialID names the credential the app holds now (minted at
	// provisioning), so the first rotation revokes it after the grace.
	CurrentCredentialID string
	// Deletes is what the registration saw of the instance's DELETEs as it
	// began (Store.DeleteMark): one since refuses it (ErrDeletedSince).
	// The zero value checks nothing.
	Deletes DeleteMark
	// Database is where the instance's database lives, for the PostgreSQL
	// issuer; nil leaves the one stored, if any, as it is. It is stored
	// with the registration, in the same step, and refused
	// (*DatabaseTakenError) when another live instance holds its database
	// or owner role.
	Database *Database
}

// Validate checks a registration, naming the first bad field.
func (r Registration) Validate() error {
	switch {
	case !ValidID(r.ID):
		return fmt.Errorf("instance id %s is not valid: use 1 to 128 letters, digits, '-', '_', '.', '@', not dots alone", secret.QuoteInput(r.ID, 64))
	case r.APIVersion != APIv3 && r.APIVersion != APIv1:
		return fmt.Errorf("api_version %s is not valid: use %q or %q", secret.QuoteInput(r.APIVersion, 64), APIv3, APIv1)
	case r.APIVersion == APIv1 && r.HerokuID == "":
		return errors.New("heroku_id is required for api_version v1")
	case r.HerokuID != "" && !ValidID(r.HerokuID):
		// Heroku's read "app123@heroku.com"; the id goes into V1's path,
		// the instance hash every claim reads, the API and the CLI.
		return fmt.Errorf("heroku_id %s is not valid: Heroku's V1 ids read \"app123@heroku.com\" "+
			"(1 to 128 letters, digits, '-', '_', '.', '@')", secret.QuoteInput(r.HerokuID, 64))
	case len(r.ConfigVars) == 0:
		return errors.New("config_vars must name at least one config var")
	case r.Grace < 0:
		return errors.New("grace must not be negative")
	case r.CurrentCredentialID != "" && !ValidID(r.CurrentCredentialID):
		return fmt.Errorf("current_credential_id %s is not valid", secret.QuoteInput(r.CurrentCredentialID, 64))
	}
	if r.Database != nil {
		if err := r.Database.Validate(); err != nil {
			return err
		}
	}
	if len(r.ConfigVars) > MaxConfigVars {
		return fmt.Errorf("config_vars names %d config vars: at most %d", len(r.ConfigVars), MaxConfigVars)
	}
	seen := make(map[string]bool, len(r.ConfigVars))
	for _, name := range r.ConfigVars {
		if !validVarName(name) {
			return fmt.Errorf("config var name %s is not valid: use capital letters, digits and '_'", secret.QuoteInput(name, 64))
		}
		if seen[name] {
			return fmt.Errorf("config var name %s is named twice", secret.QuoteInput(name, 64))
		}
		seen[name] = true
	}
	return nil
}

// MaxConfigVars is how many config vars an instance may name: an add-on
// sets a handful (a URL, or its parts). Every claim reads them, and every
// mint's config must name each.
const MaxConfigVars = 32

// ValidID reports whether s is usable as an instance or credential id
// (tasks.ValidID: the rule is part of the task contract, so that a
// producer learns of an unusable id when it builds its task).
func ValidID(s string) bool { return tasks.ValidID(s) }

func validVarName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i, c := range s {
		ok := c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9'
		if !ok {
			return false
		}
	}
	return true
}

// PutInstance registers or updates an instance. It is idempotent. An
// instance that was deprovisioned is registered again, live and scheduled
// (Heroku may retry a provisioning; only DELETE deprovisions), and reported
// as created.
func (s *Store) PutInstance(ctx context.Context, r Registration) error {
	if err := r.Validate(); err != nil {
		return err
	}
	keys, args, err := s.putInstanceArgs(r)
	if err != nil {
		return err
	}
	return scriptError("put instance", putInstanceScript.Run(ctx, s.rdb, keys, args...).Err())
}

// putInstanceKeys are the KEYS of putInstanceScript and registerScript,
// one field per key, in order.
type putInstanceKeys struct {
	instance         string // KEYS[1] -> rekey:instance:<id>
	instances        string // KEYS[2] -> rekey:instances
	current          string // KEYS[3] -> rekey:cred:<id>:<current credential id> (ARGV[7])
	instanceEvents   string // KEYS[4] -> rekey:history:<id>
	events           string // KEYS[5] -> rekey:events
	due              string // KEYS[6] -> rekey:due
	schedule         string // KEYS[7] -> rekey:schedule
	credentialPrefix string // KEYS[8] -> rekey:cred:<id>: (the script appends credential ids)
	retiring         string // KEYS[9] -> rekey:retiring
	legacyEvents     string // KEYS[10] -> rekey:events:<id> (the stream of earlier versions)
	previous         string // KEYS[11] -> rekey:previous:<id>
	revokeDue        string // KEYS[12] -> rekey:revoke_due
	deletes          string // KEYS[13] -> rekey:deletes:<id>
	unconfirmed      string // KEYS[14] -> rekey:unconfirmed:<id>
	v1Apps           string // KEYS[15] -> rekey:v1_apps
	database         string // KEYS[16] -> rekey:database:<id>
	databases        string // KEYS[17] -> rekey:databases
}

func newPutInstanceKeys(id, currentCredID string) putInstanceKeys {
	return putInstanceKeys{instance: instanceKey(id), instances: instancesKey(),
		current: credentialKey(id, currentCredID), instanceEvents: historyKey(id), events: eventsKey(),
		due: dueKey(), schedule: scheduleKey(), credentialPrefix: credentialKey(id, ""), retiring: retiringKey(),
		legacyEvents: legacyEventsKey(id), previous: previousKey(id), revokeDue: revokeDueKey(),
		deletes: deletesKey(id), unconfirmed: unconfirmedKey(id), v1Apps: v1AppsKey(), database: databaseKey(id),
		databases: databasesKey()}
}

func (k putInstanceKeys) list() []string {
	return []string{k.instance, k.instances, k.current, k.instanceEvents, k.events, k.due, k.schedule,
		k.credentialPrefix, k.retiring, k.legacyEvents, k.previous, k.revokeDue, k.deletes, k.unconfirmed, k.v1Apps,
		k.database, k.databases}
}

// putInstanceArgs returns the KEYS and ARGV of putInstanceScript for r.
func (s *Store) putInstanceArgs(r Registration) ([]string, []any, error) {
	keys := newPutInstanceKeys(r.ID, r.CurrentCredentialID).list()
	var db Database
	var location []byte
	if r.Database != nil {
		db = *r.Database
		var err error
		if location, err = json.Marshal(db); err != nil {
			return nil, nil, err
		}
	}
	args := []any{r.ID, r.APIVersion, strings.Join(r.ConfigVars, ","), r.HerokuID,
		boolArg(r.PrivateSpace), r.Grace.Milliseconds(), r.CurrentCredentialID, ms(s.now()),
		s.eventsPerInstance, s.eventsGlobal, slotHash(r.ID), DefaultRotationPeriod.Milliseconds(),
		RevokeDueMargin.Milliseconds(), r.Deletes.seen, db.Server, db.Name, db.Owner, string(location)}
	return keys, args, nil
}

// deletesKey is a STRING: a random mark that each DELETE of the instance
// writes anew (deprovisionScript), of one not registered too, kept
// deleteMemory after the last. A registration reads it as it begins
// (Store.DeleteMark) and is refused when another is there by then
// (putInstanceScript); gone by then, it expired with no DELETE since. A
// random mark rather than a count: a count that expired and started
// again could read as it did before the DELETE. A DELETE
// answered while the registration's oauth_grant was being exchanged, even
// after its client gave up, would otherwise be undone by it, the add-on
// registered and rotated after Heroku and the partner deprovisioned it.
//
//	rekey:deletes:<id>
func deletesKey(id string) string { return keyPrefix + "deletes:" + id }

// deleteMemory is how long the count of an instance's DELETEs is kept
// after the last: far longer than any registration takes (an oauth_grant's
// exchange and storing are bounded to 45 s).
const deleteMemory = 24 * time.Hour

// DeleteMark is what a registration saw of its instance's DELETEs as it
// began (Store.DeleteMark); the zero DeleteMark checks nothing.
type DeleteMark struct{ seen string }

// newDeleteMark is the mark of one DELETE: 8 random bytes, in hex.
func newDeleteMark() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand: never fails
	return hex.EncodeToString(b)
}

// Same reports whether m and o saw the same DELETEs: none since the
// earlier of them was read.
func (m DeleteMark) Same(o DeleteMark) bool { return m.seen == o.seen }

// String is the mark as it can be kept elsewhere (a signed session) and
// read back with ParseDeleteMark. It is random, and no secret.
func (m DeleteMark) String() string { return m.seen }

// ParseDeleteMark reads back a mark written by DeleteMark.String.
func ParseDeleteMark(s string) DeleteMark { return DeleteMark{seen: s} }

// DeleteMark reads the mark of the last DELETE of instance id, for a
// registration about to begin (Registration.Deletes) or a dashboard
// session.
func (s *Store) DeleteMark(ctx context.Context, id string) (DeleteMark, error) {
	n, err := s.rdb.Get(ctx, deletesKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return DeleteMark{seen: "-"}, nil
	}
	if err != nil {
		return DeleteMark{}, fmt.Errorf("read the DELETEs of %s: %w", id, err)
	}
	return DeleteMark{seen: n}, nil
}

// Instance returns the instance with id, or ErrNotFound.
func (s *Store) Instance(ctx context.Context, id string) (Instance, error) {
	ins, err := s.Instances(ctx, []string{id})
	if err != nil {
		return Instance{}, err
	}
	if ins[0].RegisteredAt.IsZero() {
		return Instance{}, fmt.Errorf("instance %s: %w", id, ErrNotFound)
	}
	return ins[0], nil
}

// Deprovision marks the instance deprovisioned: no further rotations. Its
// previous credentials are still revoked on time; once none waits, its
// keys expire after the audit retention (ExpireRetired). Its unconfirmed
// credentials are discarded, revoked after the instance's grace (or none
// when it has no grace of its own: see DeprovisionWithGrace).
func (s *Store) Deprovision(ctx context.Context, id string) error {
	return s.DeprovisionWithGrace(ctx, id, DeprovisionGrace{})
}

// DeprovisionGrace is how long a deprovisioned instance's unconfirmed
// credentials stay valid (deprovisionScript).
type DeprovisionGrace struct {
	// Default and PrivateSpace are REKEY_GRACE and REKEY_PRIVATE_SPACE_GRACE,
	// for an instance with no grace of its own: PrivateSpace when it runs in
	// a Private Space and that is positive, else Default.
	Default, PrivateSpace time.Duration
	// Min and Max are the floor and the ceiling (config.GraceFloor and
	// GraceCeiling), applied when positive: an instance registered before
	// either changed may hold a grace outside them.
	Min, Max time.Duration
}

// DeprovisionWithGrace is Deprovision, the unconfirmed credentials revoked
// after the grace g gives.
func (s *Store) DeprovisionWithGrace(ctx context.Context, id string, g DeprovisionGrace) error {
	keys := newDeprovisionKeys(id)
	err := deprovisionScript.Run(ctx, s.rdb, keys.list(), id, ms(s.now()), s.eventsPerInstance, s.eventsGlobal,
		g.Default.Milliseconds(), g.PrivateSpace.Milliseconds(), g.Max.Milliseconds(), g.Min.Milliseconds(),
		deleteMemory.Milliseconds(), newDeleteMark()).Err()
	return scriptError("deprovision "+id, err)
}

// deprovisionKeys are the KEYS of deprovisionScript, one field per key, in order.
type deprovisionKeys struct {
	instance       string // KEYS[1] -> rekey:instance:<id>
	instances      string // KEYS[2] -> rekey:instances
	instanceEvents string // KEYS[3] -> rekey:history:<id>
	events         string // KEYS[4] -> rekey:events
	due            string // KEYS[5] -> rekey:due
	quarantined    string // KEYS[6] -> rekey:quarantined
	scheduled      string // KEYS[7] -> rekey:scheduled
	retiring       string // KEYS[8] -> rekey:retiring
	unconfirmed    string // KEYS[9] -> rekey:unconfirmed:<id>
	revokeDue      string // KEYS[10] -> rekey:revoke_due
	credPrefix     string // KEYS[11] -> rekey:cred:<id>: (the script appends credential ids)
	oauth          string // KEYS[12] -> rekey:oauth:<id>
	livePrefix     string // KEYS[13] -> rekey:live: (the script appends a fingerprint's first byte, in hex)
	liveGone       string // KEYS[14] -> rekey:live_gone
	deletes        string // KEYS[15] -> rekey:deletes:<id>
	v1Apps         string // KEYS[16] -> rekey:v1_apps
	rotationPrefix string // KEYS[17] -> rekey:rotation: (the script appends the in-flight rotation's id)
	database       string // KEYS[18] -> rekey:database:<id>
	databases      string // KEYS[19] -> rekey:databases
}

func newDeprovisionKeys(id string) deprovisionKeys {
	return deprovisionKeys{instance: instanceKey(id), instances: instancesKey(), instanceEvents: historyKey(id),
		events: eventsKey(), due: dueKey(), quarantined: quarantinedKey(), scheduled: scheduledKey(),
		retiring: retiringKey(), unconfirmed: unconfirmedKey(id), revokeDue: revokeDueKey(),
		credPrefix: credentialKey(id, ""), oauth: oauthKey(id), livePrefix: livePrefix(), liveGone: liveGoneKey(),
		deletes: deletesKey(id), v1Apps: v1AppsKey(), rotationPrefix: rotationKey(""), database: databaseKey(id),
		databases: databasesKey()}
}

func (k deprovisionKeys) list() []string {
	return []string{k.instance, k.instances, k.instanceEvents, k.events, k.due, k.quarantined, k.scheduled,
		k.retiring, k.unconfirmed, k.revokeDue, k.credPrefix, k.oauth, k.livePrefix, k.liveGone, k.deletes, k.v1Apps,
		k.rotationPrefix, k.database, k.databases}
}

// InstanceIDs calls fn with every live instance id, in registration order,
// in pages of up to page ids. It stops at fn's first error.
func (s *Store) InstanceIDs(ctx context.Context, page int64, fn func(ids []string) error) error {
	if page <= 0 {
		page = 1000
	}
	for start := int64(0); ; start += page {
		ids, err := s.rdb.ZRange(ctx, instancesKey(), start, start+page-1).Result()
		if err != nil {
			return fmt.Errorf("list instances: %w", err)
		}
		if len(ids) == 0 {
			return nil
		}
		if err := fn(ids); err != nil {
			return err
		}
		if int64(len(ids)) < page {
			return nil
		}
	}
}

// CountInstances returns how many live instances there are.
func (s *Store) CountInstances(ctx context.Context) (int64, error) {
	n, err := s.rdb.ZCard(ctx, instancesKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("count instances: %w", err)
	}
	return n, nil
}

// Instances returns the instances with the given ids, in order, with one
// round trip. A missing id gives an Instance with only ID set and a zero
// RegisteredAt.
func (s *Store) Instances(ctx context.Context, ids []string) ([]Instance, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	due := make([]*redis.FloatCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, instanceKey(id))
		due[i] = pipe.ZScore(ctx, dueKey(), id)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("get instances: %w", err)
	}
	out := make([]Instance, len(ids))
	for i, c := range cmds {
		if m := c.Val(); len(m) > 0 {
			out[i] = instanceFrom(ids[i], m)
			if at, err := due[i].Result(); err == nil {
				out[i].NextRotationAt = time.UnixMilli(int64(at)).UTC()
			}
		} else {
			out[i] = Instance{ID: ids[i]}
		}
	}
	return out, nil
}

// instanceFrom reads the instance hash of id. The key names the
// instance: versions before this one also wrote it as field "id". Fields
// at their default (api_version "v3", heroku_id "", private_space and
// grace_ms "0") may be left out, and so may current_since when the
// current credential came with the registration (registered_at) or the
// last rotation (last_rotated_at); versions before wrote them all.
func instanceFrom(id string, m map[string]string) Instance {
	grace, _ := strconv.ParseInt(m["grace_ms"], 10, 64)
	in := Instance{
		ID:                id,
		APIVersion:        m["api_version"],
		HerokuID:          m["heroku_id"],
		PrivateSpace:      m["private_space"] == "1",
		Grace:             time.Duration(grace) * time.Millisecond,
		RegisteredAt:      fromMS(m["registered_at"]),
		DeprovisionedAt:   fromMS(m["deprovisioned_at"]),
		RegisteredAgainAt: fromMS(m["revived_at"]),
		CurrentCredential: m["current"],
		CurrentSince:      fromMS(m["current_since"]),
		InFlight:          m["inflight"],
		LastRotatedAt:     fromMS(m["last_rotated_at"]),
		LastError:         m["last_error"],
		LastErrorAt:       fromMS(m["last_error_at"]),
		LastErrorCode:     m["last_error_code"],
		ScheduleOptOut:    m["sched_opt_out"] == "1",
		QuarantinedAt:     fromMS(m["quarantined_at"]),
		QuarantineReason:  m["quarantine_reason"],
	}
	if in.APIVersion == "" && len(m) > 0 {
		in.APIVersion = APIv3
	}
	if in.CurrentSince.IsZero() && in.CurrentCredential != "" {
		in.CurrentSince = in.LastRotatedAt
		if in.CurrentSince.IsZero() {
			in.CurrentSince = in.RegisteredAt
		}
	}
	in.FailStreak, _ = strconv.Atoi(m["fail_streak"])
	if w, err := ParseWindow(m["window"]); err == nil {
		in.Window = &w
	}
	if v := m["config_vars"]; v != "" {
		in.ConfigVars = strings.Split(v, ",")
	}
	return in
}

// ConfigVars returns the names of the config vars an instance's credential
// is set in, read alone: a customer's line names them after every rotation
// and revocation.
func (s *Store) ConfigVars(ctx context.Context, instanceID string) ([]string, error) {
	v, err := s.rdb.HGet(ctx, instanceKey(instanceID), "config_vars").Result()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, fmt.Errorf("instance %s: %w", instanceID, ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("get config vars: %w", err)
	case v == "":
		return nil, nil
	}
	return strings.Split(v, ","), nil
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Presence says whether an instance is registered and whether it is live.
type Presence struct {
	Registered    bool
	Deprovisioned bool
	// APIVersion is the instance's Heroku API version, APIv3 when it
	// registered none.
	APIVersion string
}

// Presences reads, for each id in order, whether it is registered and live
// and its API version, with one round trip and three fields an instance:
// the cheap check a producer makes before claiming anything.
func (s *Store) Presences(ctx context.Context, ids []string) ([]Presence, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HMGet(ctx, instanceKey(id), "registered_at", "deprovisioned_at", "api_version")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("check instances: %w", err)
	}
	out := make([]Presence, len(ids))
	for i, c := range cmds {
		v := c.Val()
		reg, _ := v[0].(string)
		dep, _ := v[1].(string)
		api, _ := v[2].(string)
		if api == "" {
			api = APIv3
		}
		out[i] = Presence{Registered: reg != "", Deprovisioned: dep != "", APIVersion: api}
	}
	return out, nil
}
