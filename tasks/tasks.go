// Package tasks is rekey's public wire contract: the task types workers run,
// their payloads, and constructors that attach each type's defaults (queue,
// timeout, retries, a deterministic TaskID). Other Go apps import it to
// enqueue rotations with their own asynq.Client.
//
// Payloads carry ids, never secrets. A type name never changes once released.
package tasks

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"
)

// Task type names.
const (
	// TypeRotate rotates one instance's credential.
	TypeRotate = "rekey:rotate"
	// TypeRevoke revokes one previous or discarded credential.
	TypeRevoke = "rekey:revoke"
)

// Queues. Interactive work (a customer's button, an operator's single
// rotation) has its own queue so it never waits behind a bulk wave.
const (
	QueueInteractive = "interactive"
	QueueDefault     = "default"
	QueueBulk        = "bulk"
	QueueRevoke      = "revoke"
)

// Queues maps every queue to its weight, for asynq.Config.Queues.
func Queues() map[string]int {
	return map[string]int{QueueInteractive: 10, QueueRevoke: 4, QueueDefault: 3, QueueBulk: 1}
}

// Per-type defaults.
const (
	// RotateTimeout bounds one run of a rotate task, waiting for budget included.
	RotateTimeout = 3 * time.Minute
	// RotateMaxRetry is how often a rotation is retried after transient failures
	// (about 4.5 hours of back-off, retry.Delay). Waiting for budget is not a
	// failure and does not count.
	RotateMaxRetry = 10
	// RevokeTimeout bounds one run of a revoke task. A run may ask the
	// issuer four times, each call 30 s at most: DELETE; after a 404 or an
	// answer that does not say revoked, verify and a probe's verify; and,
	// before any of them while holds are on, whether the credential is
	// still in use (10 s). At a minute, an issuer answering in 20 s had
	// every such run cut off, retried until its revocation went dead.
	RevokeTimeout = 2 * time.Minute
	// LegacyRevokeTimeout is RevokeTimeout as rekey versions before this
	// one gave their revoke tasks: such a task, still waiting in asynq, is
	// rekey's own, and the sweep replaces it once it waits to be retried.
	LegacyRevokeTimeout = time.Minute
	// RevokeMaxRetry keeps a revocation going for weeks of issuer outage.
	RevokeMaxRetry = 25
	// Retention keeps finished rotate tasks visible in asynqmon for a day.
	// A finished revoke task is not kept: the instance's history records
	// the revocation, and keeping it cost asynq three more Redis commands a
	// revocation (recording it, and deleting it a day later).
	Retention = 24 * time.Hour
)

// MaxReasonLen bounds a rotation's reason, in bytes: it is kept in the
// rotation's record, the instance's history and the fleet's audit stream.
// NewRotateTask and ParseRotate cut a longer one to it.
const MaxReasonLen = 500

// ErrInvalidPayload is wrapped by every parse error. Workers archive such a
// task at once instead of retrying it.
var ErrInvalidPayload = errors.New("invalid task payload")

// RotatePayload asks for one rotation of one instance.
type RotatePayload struct {
	// InstanceID is the add-on instance (Heroku's add-on uuid).
	InstanceID string `json:"instance_id"`
	// RotationID makes the request idempotent: the issuer mints one
	// credential per rotation id. NewRotateTask fills it when empty.
	// Never use an id for a second rotation: the issuer answers an id it
	// saw with the credential it minted for it, revoked by then, and once
	// rekey has forgotten that rotation (30 days after it ended) nothing
	// but the issuer's verify tells the revoked credential from a new one.
	RotationID string `json:"rotation_id"`
	// BatchID groups the rotations of one fleet request. rekey's producers
	// claim every rotation of a batch before its task exists; a task whose
	// own claim starts or joins a rotation (one another app enqueued) counts
	// into no batch, and the rotation keeps its BatchID only when no batch
	// of rekey's has that id (another app's correlation id). It is 1 to
	// MaxBatchIDLen printable ASCII characters (UsableBatchID):
	// NewRotateTask refuses another, and ParseRotate drops one a payload
	// written by hand carries.
	BatchID string `json:"batch_id,omitempty"`
	// Reason is free text for the audit trail ("customer request", "incident").
	Reason string `json:"reason,omitempty"`
	// Grace overrides the instance's grace period when positive. It counts
	// nanoseconds, as a time.Duration does: write its unit
	// (tasks.Duration(24 * time.Hour)). NewRotateTask refuses a positive
	// Grace below MinGrace, and a worker gives a rotation whose Grace is
	// below its floor the instance's own grace. In JSON it is a duration
	// string ("2h") or a number of seconds.
	Grace Duration `json:"grace,omitempty"`
	// SkipIfPrevious declines the rotation while a previous credential of the
	// instance still waits for revocation.
	SkipIfPrevious bool `json:"skip_if_previous,omitempty"`
	// RequestedAt is when the rotation was asked for; NewRotateTask fills
	// it when zero, with the task's first run when it is scheduled ahead
	// (asynq.ProcessAt, asynq.ProcessIn). The worker measures
	// rekey_request_to_heroku_seconds from it; a task without it is
	// measured not at all. A worker refuses a task asked for more than 30
	// days ago whose rotation it no longer knows (an archived task run
	// again by hand), with the code stale_task.
	RequestedAt time.Time `json:"requested_at,omitzero"`
}

// TypeName returns TypeRotate.
func (RotatePayload) TypeName() string { return TypeRotate }

// RevokePayload asks for one credential to be revoked at or after its
// revoke time.
type RevokePayload struct {
	InstanceID   string `json:"instance_id"`
	CredentialID string `json:"credential_id"`
}

// TypeName returns TypeRevoke.
func (RevokePayload) TypeName() string { return TypeRevoke }

// NewRotateTask returns a rotate task on the default queue with rekey's
// defaults; opts (asynq.Queue(QueueInteractive), asynq.ProcessIn, ...) are
// applied after them. Its TaskID is "rotate:" + RotationID, so enqueueing
// the same rotation twice is refused by asynq with ErrTaskIDConflict.
// A positive Grace below MinGrace is refused with a *GraceError; a BatchID
// UsableBatchID refuses is refused too.
func NewRotateTask(p RotatePayload, opts ...asynq.Option) (*asynq.Task, error) {
	return NewRotateTaskWithFloor(p, MinGrace, opts...)
}

// NewRotateTaskWithFloor is NewRotateTask for the workers of a deployment
// whose grace floor (their REKEY_MIN_GRACE, or REKEY_GRACE when lower) is
// floor rather than MinGrace: it refuses a positive Grace below floor
// instead. A floor of zero or less refuses none. rekey's own producers
// pass zero: they refuse a grace below the deployment's floor when it is
// asked for (the HTTP API, the CLI), and a rotation rebuilt from its
// record keeps the grace it was claimed with, which must not stop it from
// running. A worker never honours a grace below its own floor, whatever
// built the task.
func NewRotateTaskWithFloor(p RotatePayload, floor time.Duration, opts ...asynq.Option) (*asynq.Task, error) {
	if p.InstanceID == "" {
		return nil, errors.New("tasks: rotate payload needs an instance id")
	}
	if err := checkGrace(p.Grace, floor); err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	if p.RotationID == "" {
		p.RotationID = NewID("rot")
	}
	if err := checkIDs(p); err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	if p.BatchID != "" && !UsableBatchID(p.BatchID) {
		return nil, fmt.Errorf("tasks: batch_id of %d bytes is not a usable correlation id (1 to %d printable ASCII characters)",
			len(p.BatchID), MaxBatchIDLen)
	}
	if err := checkOptions(TypeRotate, opts, time.Now()); err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	p.Reason = cutReason(p.Reason)
	if p.RequestedAt.IsZero() {
		// A rotation scheduled ahead (asynq.ProcessIn) is asked for at its
		// first run: a worker refuses a task asked for more than 30 days
		// before it runs as an archived one run again by hand.
		p.RequestedAt = firstRunOf(opts, time.Now()).UTC()
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("tasks: encode rotate payload: %w", err)
	}
	defaults := []asynq.Option{asynq.Queue(QueueDefault), asynq.Timeout(RotateTimeout),
		asynq.MaxRetry(RotateMaxRetry), asynq.TaskID(RotateTaskID(p.RotationID)), asynq.Retention(Retention)}
	return asynq.NewTask(TypeRotate, b, append(defaults, opts...)...), nil
}

// NewRevokeTask returns a revoke task on the revoke queue, to run at
// revokeAt rounded up to a whole second. Its TaskID is deterministic, so scheduling the same revocation
// twice is refused by asynq with ErrTaskIDConflict, which callers treat as
// success, until the task has run; a revocation scheduled again after that
// runs again and finds the credential revoked (I6).
func NewRevokeTask(p RevokePayload, revokeAt time.Time, opts ...asynq.Option) (*asynq.Task, error) {
	if p.InstanceID == "" || p.CredentialID == "" {
		return nil, errors.New("tasks: revoke payload needs an instance id and a credential id")
	}
	if err := checkRevokeIDs(p); err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	if err := checkOptions(TypeRevoke, opts, wholeSecondAfter(revokeAt)); err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("tasks: encode revoke payload: %w", err)
	}
	defaults := []asynq.Option{asynq.Queue(QueueRevoke), asynq.Timeout(RevokeTimeout),
		asynq.MaxRetry(RevokeMaxRetry), asynq.TaskID(RevokeTaskID(p.InstanceID, p.CredentialID)),
		asynq.ProcessAt(wholeSecondAfter(revokeAt))}
	return asynq.NewTask(TypeRevoke, b, append(defaults, opts...)...), nil
}

// checkOptions refuses the options that would leave a task of type typ
// where no worker of rekey's ever runs it: a queue that is not one of
// Queues (rekey's workers serve those only, and asynq takes any name,
// "Interactive" too), or not one of typ's: a rotation on the revoke queue
// would wait in line before the revocations due, holding a slot of theirs
// for minutes, and run them past their revoke time; a revocation on
// another queue is one the sweeps and "revoke now" never find there;
// a group (rekey's workers run no group aggregator, so a grouped task
// waits in its group for ever), a negative timeout, and a deadline at or before the task's
// first run once cut to the whole second asynq keeps it in (firstRun unless opts schedule it otherwise): asynq fails such
// a task before any handler runs it, at every retry, until it archives it.
// Such a task claims no rotation, so nothing of rekey's (its metrics, its
// sweeps) would ever see it.
func checkOptions(typ string, opts []asynq.Option, firstRun time.Time) error {
	firstRun = firstRunOf(opts, firstRun)
	var deadline time.Time
	for _, o := range opts {
		if o != nil && o.Type() == asynq.DeadlineOpt {
			if d, ok := o.Value().(time.Time); ok {
				deadline = d
			}
		}
	}
	// asynq keeps the deadline in whole seconds, its fraction cut off: one
	// within the first run's second is kept at or before that run.
	if !deadline.IsZero() && !time.Unix(deadline.Unix(), 0).After(firstRun) {
		return fmt.Errorf("deadline %s is not after the task's first run (%s), in the whole seconds asynq keeps it in: "+
			"asynq would fail it before any worker runs it",
			deadline.UTC().Format(time.RFC3339Nano), firstRun.UTC().Format(time.RFC3339Nano))
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		switch o.Type() {
		case asynq.QueueOpt:
			q, _ := o.Value().(string)
			if Queues()[q] == 0 {
				return fmt.Errorf("queue %q is not one of rekey's (%s, %s, %s, %s): no worker would run the task",
					q, QueueInteractive, QueueDefault, QueueBulk, QueueRevoke)
			}
			if err := checkQueue(typ, q); err != nil {
				return err
			}
		case asynq.GroupOpt:
			return errors.New("rekey's workers aggregate no group: a task in one would never run")
		case asynq.TimeoutOpt:
			// asynq ends each run its timeout after it starts: a negative
			// one (a time.Until whose time has passed) ends every run
			// before it starts, as a deadline already past does.
			if d, ok := o.Value().(time.Duration); ok && d < 0 {
				return fmt.Errorf("timeout %s is negative: asynq would fail the task before any worker runs it; "+
					"leave it out for rekey's own", d)
			}
		}
	}
	return nil
}

// firstRunOf is when a task built with opts first runs: at the time its
// ProcessAt or ProcessIn option gives, else at firstRun, and not before now.
func firstRunOf(opts []asynq.Option, firstRun time.Time) time.Time {
	for _, o := range opts {
		if o == nil {
			continue
		}
		switch o.Type() {
		case asynq.ProcessAtOpt:
			if at, ok := o.Value().(time.Time); ok {
				firstRun = at
			}
		case asynq.ProcessInOpt:
			if in, ok := o.Value().(time.Duration); ok {
				firstRun = time.Now().Add(in)
			}
		}
	}
	return later(firstRun, time.Now())
}

// later is the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// checkQueue refuses rekey's queue q for a task of type typ when it is not
// one of typ's: the revoke queue holds revocations only, and they go there
// only.
func checkQueue(typ, q string) error {
	switch {
	case typ == TypeRotate && q == QueueRevoke:
		return fmt.Errorf("queue %q is for revocations only: a rotation there would delay the revocations due; "+
			"use %s, %s or %s", q, QueueInteractive, QueueDefault, QueueBulk)
	case typ == TypeRevoke && q != QueueRevoke:
		return fmt.Errorf("queue %q does not take revocations: a revoke task goes on the %q queue, "+
			"where rekey's sweeps look for it; leave the queue out for it", q, QueueRevoke)
	}
	return nil
}

// wholeSecondAfter rounds t up to a whole second. asynq keeps a scheduled
// task's time in whole seconds, cutting the fraction off, so a task asked
// for at 12:00:00.4 would run at 12:00:00, before its revoke time, and only
// wait to run again.
func wholeSecondAfter(t time.Time) time.Time {
	if r := t.Truncate(time.Second); r.Before(t) {
		return r.Add(time.Second)
	}
	return t
}

// RotateTaskID is the TaskID of a rotation's task.
func RotateTaskID(rotationID string) string { return "rotate:" + rotationID }

// RevokeTaskID is the TaskID of a credential's revoke task.
func RevokeTaskID(instanceID, credentialID string) string {
	return "revoke:" + instanceID + ":" + credentialID
}

// ParseRotate decodes a rotate task's payload.
func ParseRotate(t *asynq.Task) (RotatePayload, error) {
	var p RotatePayload
	if err := decode(t, TypeRotate, &p); err != nil {
		return p, err
	}
	if p.InstanceID == "" || p.RotationID == "" {
		return p, fmt.Errorf("%w: rotate needs instance_id and rotation_id", ErrInvalidPayload)
	}
	if err := checkIDs(p); err != nil {
		return p, fmt.Errorf("%w: %w", ErrInvalidPayload, err)
	}
	p.Reason = cutReason(p.Reason) // a producer that did not use NewRotateTask
	if !UsableBatchID(p.BatchID) {
		p.BatchID = ""
	}
	if !p.RequestedAt.IsZero() {
		p.RequestedAt = p.RequestedAt.UTC() // one form whatever offset the producer wrote
	}
	return p, nil
}

// ValidID reports whether s is usable as an instance, rotation or
// credential id: 1 to 128 characters of A-Z, a-z, 0-9, '-', '_', '.' and
// '@', which are safe in Redis keys, URLs and logs, and not dots alone,
// which a URL's path would read as its current or parent segment
// (DELETE /credentials/.. is a request for another resource). rekey's
// store refuses any other id, so a rotation that names one can never run.
func ValidID(s string) bool {
	if s == "" || len(s) > 128 || strings.Trim(s, ".") == "" {
		return false
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '@'
		if !ok {
			return false
		}
	}
	return true
}

// checkIDs refuses a rotation whose ids ValidID refuses.
func checkIDs(p RotatePayload) error {
	if err := checkID("instance_id", p.InstanceID); err != nil {
		return err
	}
	return checkID("rotation_id", p.RotationID)
}

// MaxBatchIDLen bounds a rotate task's BatchID, in bytes.
const MaxBatchIDLen = 128

// UsableBatchID reports whether b is usable as a rotate task's BatchID:
// 1 to MaxBatchIDLen printable ASCII characters. A batch id names no key
// of the rotation's (the store counts into a batch only under an id
// ValidID takes), so another app's correlation id may hold a space or a
// colon; the rotation's record keeps it for 30 days and operators read it,
// so not a megabyte of text, line breaks or terminal escapes.
func UsableBatchID(b string) bool {
	if b == "" || len(b) > MaxBatchIDLen {
		return false
	}
	for i := 0; i < len(b); i++ {
		if b[i] < ' ' || b[i] > '~' {
			return false
		}
	}
	return true
}

// checkRevokeIDs refuses a revocation whose ids ValidID refuses.
func checkRevokeIDs(p RevokePayload) error {
	if err := checkID("instance_id", p.InstanceID); err != nil {
		return err
	}
	return checkID("credential_id", p.CredentialID)
}

// checkID refuses an id ValidID refuses. The error gives the id's length,
// not the id, which may be anything of any size (line breaks and terminal
// escapes included), and would be kept as the task's last error
// (/monitoring) and logged.
func checkID(field, id string) error {
	if ValidID(id) {
		return nil
	}
	return fmt.Errorf("%s of %d bytes is not a usable id (1 to 128 of A-Z a-z 0-9 - _ . @)", field, len(id))
}

// cutReason cuts s to MaxReasonLen bytes at a character's boundary.
func cutReason(s string) string {
	if len(s) <= MaxReasonLen {
		return s
	}
	n := MaxReasonLen
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// ParseRevoke decodes a revoke task's payload.
func ParseRevoke(t *asynq.Task) (RevokePayload, error) {
	var p RevokePayload
	if err := decode(t, TypeRevoke, &p); err != nil {
		return p, err
	}
	if p.InstanceID == "" || p.CredentialID == "" {
		return p, fmt.Errorf("%w: revoke needs instance_id and credential_id", ErrInvalidPayload)
	}
	if err := checkRevokeIDs(p); err != nil {
		return p, fmt.Errorf("%w: %w", ErrInvalidPayload, err)
	}
	return p, nil
}

func decode(t *asynq.Task, typ string, v any) error {
	if t.Type() != typ {
		return fmt.Errorf("%w: task type %q, want %q", ErrInvalidPayload, t.Type(), typ)
	}
	if err := json.Unmarshal(t.Payload(), v); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		if errors.As(err, &typeErr) || errors.As(err, &syntaxErr) {
			return fmt.Errorf("%w: %s: %v", ErrInvalidPayload, typ, err) // names no value
		}
		// A field's own parser (a grace, a request time) quotes the value
		// it refused, which may be anything of any size and would be kept
		// as the task's last error (/monitoring) and logged: as checkID,
		// say what was wrong, never the value.
		return fmt.Errorf("%w: %s: a value does not parse (a grace that is neither a Go duration nor a number of seconds, "+
			"or a requested_at that is no RFC 3339 time)", ErrInvalidPayload, typ)
	}
	return nil
}

// NewID returns a random id with a readable prefix, such as "rot_3f9a…".
func NewID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

// Duration is a time.Duration that encodes as a Go duration string ("2h")
// in JSON and also decodes a number of seconds. In Go it counts
// nanoseconds, as a time.Duration does: Duration(86400) is 86.4µs.
type Duration time.Duration

// MarshalJSON encodes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON decodes a duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration must be a string such as \"2h\" or a number of seconds")
	}
	// A float64 beyond int64's range converts to an arbitrary duration (a
	// negative one on amd64): refuse it rather than wrap round.
	if ns := secs * float64(time.Second); ns >= math.MaxInt64 || ns <= math.MinInt64 {
		return fmt.Errorf("duration of %g seconds is out of range", secs)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}
