package issuer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
)

// DefaultConfigVar is the config var a Demo mints when not told otherwise.
const DefaultConfigVar = "MYADDON_URL"

// Demo is an in-memory issuer that knows, at every moment, which credentials
// work. Tests use it to check rekey's invariants (a published credential is
// never revoked; no rotation mints twice); `rekey dev` uses it as the
// partner's service. It is safe for concurrent use.
type Demo struct {
	now          func() time.Time
	varNames     func(instanceID string) []string
	shared       map[string]string // config var -> the value every credential holds (WithSharedValue)
	beforeRevoke func(instanceID string, c Credential) error
	mintFault    func(instanceID, rotationID string) error
	verifyFault  func(instanceID, credentialID string) error
	revokeFault  func(instanceID, credentialID string) error
	noVerify     bool

	mu         sync.Mutex
	creds      map[string]*demoCredential // by credential id
	byRotation map[[2]string]string       // {instance, rotation} -> credential id
	byValue    map[string]string          // config value -> credential id
	stats      Stats

	usage demoUsage
}

var _ Issuer = (*Demo)(nil)

type demoCredential struct {
	instanceID string
	cred       Credential
	revokedAt  time.Time
}

// Stats counts what a Demo was asked to do.
type Stats struct {
	MintCalls int // every Mint call, repeats and faults included
	Minted    int // credentials created
	// MintedPerRotation counts credentials created per rotation id; a value
	// above 1 means one rotation minted twice.
	MintedPerRotation map[string]int
	Revoked           int // credentials revoked
	VerifyCalls       int // every Verify call
}

// DemoOption configures a Demo.
type DemoOption func(*Demo)

// WithConfigVars sets the config var names minted for each instance
// (default: DefaultConfigVar only).
func WithConfigVars(names func(instanceID string) []string) DemoOption {
	return func(d *Demo) { d.varNames = names }
}

// WithSharedValue makes every credential hold value in config var name, as
// a database's host or port is the same in each of its credentials.
func WithSharedValue(name, value string) DemoOption {
	return func(d *Demo) {
		if d.shared == nil {
			d.shared = map[string]string{}
		}
		d.shared[name] = value
	}
}

// WithBeforeRevoke sets a hook called before a credential is revoked. If it
// returns an error, the credential stays valid and Revoke returns the error.
// Tests use it to check the credential is no longer in use.
func WithBeforeRevoke(f func(instanceID string, c Credential) error) DemoOption {
	return func(d *Demo) { d.beforeRevoke = f }
}

// WithMintFault makes Mint return f's error, when not nil, before anything
// else happens. Return an *Error with a 4xx or 5xx Status to fail
// permanently or transiently.
func WithMintFault(f func(instanceID, rotationID string) error) DemoOption {
	return func(d *Demo) { d.mintFault = f }
}

// WithVerifyFault makes Verify return f's error, when not nil.
func WithVerifyFault(f func(instanceID, credentialID string) error) DemoOption {
	return func(d *Demo) { d.verifyFault = f }
}

// WithRevokeFault makes Revoke return f's error, when not nil, without
// revoking.
func WithRevokeFault(f func(instanceID, credentialID string) error) DemoOption {
	return func(d *Demo) { d.revokeFault = f }
}

// WithoutVerify makes Verify return ErrVerifyUnsupported, like a backend
// that cannot verify.
func WithoutVerify() DemoOption { return func(d *Demo) { d.noVerify = true } }

// WithDemoClock sets the clock for revocation times and for signature
// checks in NewDemoServer.
func WithDemoClock(now func() time.Time) DemoOption { return func(d *Demo) { d.now = now } }

// NewDemo returns an empty Demo issuer.
func NewDemo(opts ...DemoOption) *Demo {
	d := &Demo{
		now:        time.Now,
		varNames:   func(string) []string { return []string{DefaultConfigVar} },
		creds:      map[string]*demoCredential{},
		byRotation: map[[2]string]string{},
		byValue:    map[string]string{},
		stats:      Stats{MintedPerRotation: map[string]int{}},
	}
	for _, opt := range opts {
		opt(d)
	}
	return d
}

// Mint returns the rotation's credential, creating it on the first call.
func (d *Demo) Mint(ctx context.Context, instanceID, rotationID string) (Credential, error) {
	d.mu.Lock()
	d.stats.MintCalls++
	d.mu.Unlock()
	if err := d.precheck(ctx, "mint", instanceID, rotationID, d.mintFault); err != nil {
		return Credential{}, err
	}
	names := d.varNames(instanceID)
	if len(names) == 0 {
		names = []string{DefaultConfigVar}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if id, ok := d.byRotation[[2]string{instanceID, rotationID}]; ok {
		return copyCredential(d.creds[id].cred), nil
	}
	c := newDemoCredential(instanceID, names)
	for name, v := range d.shared {
		if _, ok := c.Config[name]; ok {
			c.Config[name] = secret.New(v)
		}
	}
	d.creds[c.ID] = &demoCredential{instanceID: instanceID, cred: c}
	d.byRotation[[2]string{instanceID, rotationID}] = c.ID
	for name, v := range c.Config {
		if _, shared := d.shared[name]; !shared {
			d.byValue[v.Reveal()] = c.ID
		}
	}
	d.stats.Minted++
	d.stats.MintedPerRotation[rotationID]++
	return copyCredential(c), nil
}

// precheck refuses empty ids and a done context, then applies a fault.
func (d *Demo) precheck(ctx context.Context, op, instanceID, id string, fault func(string, string) error) error {
	if instanceID == "" || id == "" {
		return fmt.Errorf("issuer %s: empty id: %w", op, ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return &Error{Op: op, Code: transportCode(err)}
	}
	if fault != nil {
		return fault(instanceID, id)
	}
	return nil
}

// Verify succeeds while the credential belongs to the instance and is not
// revoked; otherwise it fails permanently (410 revoked, 422 unknown).
func (d *Demo) Verify(ctx context.Context, instanceID, credentialID string) error {
	d.mu.Lock()
	d.stats.VerifyCalls++
	d.mu.Unlock()
	if d.noVerify {
		return ErrVerifyUnsupported
	}
	if err := d.precheck(ctx, "verify", instanceID, credentialID, d.verifyFault); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.creds[credentialID]
	switch {
	case !ok || c.instanceID != instanceID:
		return &Error{Op: "verify", Status: http.StatusUnprocessableEntity, Code: "unknown_credential"}
	case !c.revokedAt.IsZero():
		return &Error{Op: "verify", Status: http.StatusGone, Code: "credential_revoked"}
	}
	return nil
}

// Revoke revokes the credential; unknown and already revoked credentials
// succeed. A credential of another instance is refused (409).
func (d *Demo) Revoke(ctx context.Context, instanceID, credentialID string) error {
	_, err := d.revoke(ctx, instanceID, credentialID)
	return err
}

// revoke reports whether this call did the revoking.
func (d *Demo) revoke(ctx context.Context, instanceID, credentialID string) (bool, error) {
	if err := d.precheck(ctx, "revoke", instanceID, credentialID, d.revokeFault); err != nil {
		return false, err
	}
	c, live, err := d.revocable(instanceID, credentialID)
	if err != nil || !live {
		return false, err
	}
	// The hook runs unlocked so that it may call Valid or Lookup.
	if d.beforeRevoke != nil {
		if err := d.beforeRevoke(instanceID, c); err != nil {
			return false, err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	dc := d.creds[credentialID]
	if !dc.revokedAt.IsZero() {
		return false, nil
	}
	dc.revokedAt = d.now()
	d.stats.Revoked++
	return true, nil
}

// revocable returns a copy of the credential and whether it is live.
func (d *Demo) revocable(instanceID, credentialID string) (Credential, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dc, ok := d.creds[credentialID]
	switch {
	case !ok:
		return Credential{}, false, nil
	case dc.instanceID != instanceID:
		return Credential{}, false, &Error{Op: "revoke", Status: http.StatusConflict, Code: "other_instance"}
	}
	return copyCredential(dc.cred), dc.revokedAt.IsZero(), nil
}

// Valid reports whether the credential exists and is not revoked: whether
// an app holding it could connect right now.
func (d *Demo) Valid(credentialID string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.creds[credentialID]
	return ok && c.revokedAt.IsZero()
}

// Lookup returns the credential a config value belongs to, revoked or not.
func (d *Demo) Lookup(value string) (credentialID string, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	credentialID, ok = d.byValue[value]
	return credentialID, ok
}

// RevokedAt returns when the credential was revoked; ok is false when it is
// unknown or not revoked.
func (d *Demo) RevokedAt(credentialID string) (at time.Time, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, found := d.creds[credentialID]
	if !found || c.revokedAt.IsZero() {
		return time.Time{}, false
	}
	return c.revokedAt, true
}

// Stats returns a snapshot of the counters.
func (d *Demo) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats
	s.MintedPerRotation = maps.Clone(d.stats.MintedPerRotation)
	return s
}

// newDemoCredential makes a credential whose values look like the database
// URLs a real add-on hands out, each with its own random password.
func newDemoCredential(instanceID string, names []string) Credential {
	id := "cred_" + randomHex(8)
	c := Credential{ID: id, Config: make(map[string]secret.String, len(names))}
	for _, name := range names {
		c.Config[name] = secret.New(fmt.Sprintf("postgres://u_%s:%s@db.myaddon.example/d_%s", id, randomHex(16), instanceID))
	}
	return c
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

func copyCredential(c Credential) Credential {
	return Credential{ID: c.ID, Config: maps.Clone(c.Config)}
}
