// Package registry registers add-on instances with rekey: it checks what a
// producer sends (the HTTP API's PUT, `rekey instances import`), exchanges a
// V3 OAuth grant code for tokens at once (codes are single use and expire
// in about five minutes), and stores the instance with its tokens sealed,
// in one atomic step.
//
// A grant is spent the moment Heroku exchanges it, so everything that can
// refuse a registration is checked before the exchange, and a failure
// after it is reported as such (*GrantSpentError), never as "nothing
// happened". The PUT is idempotent all the same: the store remembers which
// grant registered an instance, and a registration retried with it repeats
// the first without asking Heroku, which would refuse the spent code.
package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/printable"
	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// Input is one instance's registration as producers send it, in the HTTP
// API's JSON shape (README.md, "HTTP API").
type Input struct {
	// ID is the add-on uuid; the HTTP API takes it from the path.
	ID           string   `json:"id,omitempty"`
	APIVersion   string   `json:"api_version"`
	ConfigVars   []string `json:"config_vars"`
	HerokuID     string   `json:"heroku_id,omitempty"`
	PrivateSpace bool     `json:"private_space"`
	// Grace is a Go duration such as "2h"; empty means the default.
	Grace               string `json:"grace,omitempty"`
	CurrentCredentialID string `json:"current_credential_id,omitempty"`
	// CurrentConfig is the config the app holds for CurrentCredentialID
	// (var name -> value), as the partner gave it at provisioning. rekey
	// keeps only its keyed fingerprint, never the values, so that a first
	// rotation whose mint answers a new id with that config is refused
	// (currentconfig.go).
	CurrentConfig map[string]secret.String `json:"current_config,omitempty"`
	// OAuthGrant is the provision request's grant, exchanged at once.
	OAuthGrant *Grant `json:"oauth_grant,omitempty"`
	// OAuth carries tokens the partner already holds.
	OAuth *Tokens `json:"oauth,omitempty"`
	// LogInputURL is the provision request's log_input_url, where rekey
	// writes notices into the app's log stream; it carries a token, so it
	// is kept sealed (loginput.go).
	LogInputURL secret.String `json:"log_input_url,omitzero"`
	// Database is where the instance's database lives, for
	// REKEY_ISSUER=postgres (README "The PostgreSQL issuer").
	Database *store.Database `json:"database,omitempty"`
}

// Grant is an OAuth authorization code.
type Grant struct {
	Code secret.String `json:"code"`
}

// Tokens are OAuth tokens the partner already holds.
type Tokens struct {
	RefreshToken secret.String `json:"refresh_token"`
	AccessToken  secret.String `json:"access_token"`
	ExpiresAt    time.Time     `json:"expires_at"`
}

// Exchanger trades a grant code for tokens (*heroku.Client).
type Exchanger interface {
	ExchangeGrant(ctx context.Context, code secret.String) (heroku.Token, error)
}

// Registry registers instances. It is safe for concurrent use.
type Registry struct {
	store *store.Store
	oauth Exchanger
	// minGrace and maxGrace are the shortest and the longest grace a
	// registration may ask for.
	minGrace, maxGrace time.Duration
	// storeWaits are the pauses between attempts to store a registration
	// whose grant is already exchanged; one attempt more than pauses.
	storeWaits []time.Duration
	// rotateShared requests a rotation of an instance registered with
	// another instance's live credential (WithSharedCurrentRotation); nil
	// requests none.
	rotateShared func(ctx context.Context, instanceID string) error
	// logStandIns are the host:ports a log_input_url may name over http
	// (WithLocalStandIn).
	logStandIns []string
	// grants counts the grants being exchanged and stored (WaitGrants),
	// inFlight the same for logs. grantsMu orders each rise of grants from
	// zero before WaitGrants's Wait, as sync.WaitGroup requires, and
	// stopping refuses grants from then on.
	grantsMu sync.Mutex
	stopping bool
	grants   sync.WaitGroup
	inFlight atomic.Int64
}

// ErrStopping is a registration with an oauth_grant that came as the
// process stopped (WaitGrants): its code was not exchanged, so the same
// PUT sent again, to another process, registers the instance.
var ErrStopping = errors.New("this rekey process is stopping: the oauth_grant was not exchanged")

// startGrant counts one more grant under way, or refuses it (false) once
// WaitGrants has begun.
func (r *Registry) startGrant() bool {
	r.grantsMu.Lock()
	defer r.grantsMu.Unlock()
	if r.stopping {
		return false
	}
	r.grants.Add(1)
	r.inFlight.Add(1)
	return true
}

// endGrant counts a grant started by startGrant as over.
func (r *Registry) endGrant() {
	r.inFlight.Add(-1)
	r.grants.Done()
}

// GrantsInFlight is how many grants are being exchanged or stored.
func (r *Registry) GrantsInFlight() int64 { return r.inFlight.Load() }

// WaitGrants refuses grants from now on (ErrStopping) and waits until none
// is being exchanged or its tokens stored, or until ctx is done (its error
// then). A process that stops waits for them before it exits: Heroku
// spends a code once asked, whether or not its answer is read, and tokens
// dropped leave an add-on that cannot be rotated until it is provisioned
// again.
func (r *Registry) WaitGrants(ctx context.Context) error {
	r.grantsMu.Lock()
	r.stopping = true
	r.grantsMu.Unlock()
	done := make(chan struct{})
	go func() {
		r.grants.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WithLocalStandIn lets a log_input_url name each host:port over http
// (logplex.LocalStandIn's form): a local Heroku stand-in, whose log input
// `rekey dev` and the tests serve. Without it a log_input_url must be
// https.
func WithLocalStandIn(hostports ...string) Option {
	return func(r *Registry) { r.logStandIns = append(r.logStandIns, hostports...) }
}

// Option configures a Registry.
type Option func(*Registry)

// WithMinGrace sets the grace floor (config.GraceFloor): a registration
// asking for a shorter grace is refused. Zero or less keeps
// fleet.DefaultMinGrace.
func WithMinGrace(floor time.Duration) Option {
	return func(r *Registry) {
		if floor > 0 {
			r.minGrace = floor
		}
	}
}

// WithMaxGrace sets the grace ceiling (config.GraceCeiling): a
// registration asking for a longer grace is refused. Zero or less keeps
// fleet.DefaultMaxGrace.
func WithMaxGrace(ceiling time.Duration) Option {
	return func(r *Registry) {
		if ceiling > 0 {
			r.maxGrace = ceiling
		}
	}
}

// WithSharedCurrentRotation has a registration whose current_config is
// the config of another instance's live credential (the partner
// provisioned the add-on with that instance's credential: its apps hold
// the other's secret) request a rotation of the instance at once, through
// rotate, so that its apps move to a credential of their own within
// minutes rather than at its next scheduled rotation. Until they do, the
// other instance's revocation of that credential would break them; once
// they have, the shared credential's own revocation waits for the other
// instance's (handlers, Revoke). A failed request does not fail the
// registration, which is stored: rotate reports its own failure, and the
// same PUT again requests the rotation again.
func WithSharedCurrentRotation(rotate func(ctx context.Context, instanceID string) error) Option {
	return func(r *Registry) { r.rotateShared = rotate }
}

// WithStoreRetries sets the pauses between attempts to store a
// registration after its grant was exchanged (default 250ms, 1s, 3s: a
// spent grant is worth a few seconds of a brief Redis failover).
func WithStoreRetries(waits ...time.Duration) Option {
	return func(r *Registry) { r.storeWaits = waits }
}

// New returns a Registry over st; oauth exchanges V3 grant codes.
func New(st *store.Store, oauth Exchanger, opts ...Option) *Registry {
	r := &Registry{store: st, oauth: oauth, minGrace: fleet.DefaultMinGrace, maxGrace: fleet.DefaultMaxGrace,
		storeWaits: []time.Duration{250 * time.Millisecond, time.Second, 3 * time.Second}}
	for _, o := range opts {
		o(r)
	}
	return r
}

// InputError is a registration that is not acceptable as sent. Nothing was
// stored and no grant was spent.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// GrantSpentError is a registration whose oauth_grant Heroku exchanged, but
// which could not be stored afterwards: nothing was stored, and the grant
// cannot be used again. Err says why storing failed.
type GrantSpentError struct {
	ID  string
	Err error
}

func (e *GrantSpentError) Error() string {
	return fmt.Sprintf("the oauth_grant of %s was exchanged with Heroku, but storing the instance and its tokens failed (%v); "+
		"nothing was stored and the grant cannot be used again: re-provision the add-on, or send \"oauth\" with tokens you hold", e.ID, e.Err)
}

func (e *GrantSpentError) Unwrap() error { return e.Err }

// ExchangeError is a registration whose oauth_grant Heroku's OAuth
// endpoint did not exchange (refused it, answered something else, or could
// not be reached). Nothing was stored; Err says what the exchange got, as
// heroku.Classify reads it. Other failures of Put come from rekey's own
// storage, never from Heroku.
type ExchangeError struct {
	ID  string
	Err error
}

func (e *ExchangeError) Error() string {
	return fmt.Sprintf("exchange oauth grant of %s: %v", e.ID, e.Err)
}

func (e *ExchangeError) Unwrap() error { return e.Err }

// IncompleteError is a registration stored with its tokens (a grant it
// carried exchanged, and remembered as having registered the instance)
// whose log_input_url or current_config fingerprint could not be stored
// after it.
// The instance is registered; the same registration again stores the rest,
// without exchanging its grant again.
type IncompleteError struct {
	ID  string
	Err error
}

func (e *IncompleteError) Error() string {
	return fmt.Sprintf("instance %s and its tokens were stored, but storing its log_input_url or "+
		"current_config fingerprint failed (%v); "+
		"send the same registration again", e.ID, e.Err)
}

func (e *IncompleteError) Unwrap() error { return e.Err }

// Registration checks in and returns the store's registration for it.
func (in Input) Registration() (store.Registration, error) {
	r := store.Registration{ID: in.ID, APIVersion: in.APIVersion, ConfigVars: in.ConfigVars,
		HerokuID: in.HerokuID, PrivateSpace: in.PrivateSpace, CurrentCredentialID: in.CurrentCredentialID,
		Database: in.Database}
	if in.Grace != "" {
		d, err := time.ParseDuration(in.Grace)
		if err != nil || d <= 0 {
			return r, &InputError{fmt.Errorf("grace %s is not a positive Go duration such as \"2h\"%s",
				secret.QuoteInput(in.Grace, 64), printable.RefusedDurationHint(err, in.Grace))}
		}
		r.Grace = d
	}
	if err := r.Validate(); err != nil {
		return r, &InputError{err}
	}
	if err := in.checkCurrentConfig(); err != nil {
		return r, &InputError{err}
	}
	switch {
	case in.OAuthGrant != nil && in.OAuth != nil:
		return r, &InputError{errors.New("send oauth_grant or oauth, not both")}
	case in.OAuthGrant != nil && in.OAuthGrant.Code.IsZero():
		return r, &InputError{errors.New("oauth_grant.code is empty")}
	case in.OAuth != nil && in.OAuth.RefreshToken.IsZero():
		return r, &InputError{errors.New("oauth.refresh_token is required")}
	case in.OAuth != nil && !heroku.UsableToken(in.OAuth.RefreshToken.Reveal()):
		return r, &InputError{errors.New("oauth.refresh_token " + unusableToken)}
	case in.OAuth != nil && !in.OAuth.AccessToken.IsZero() && !heroku.UsableToken(in.OAuth.AccessToken.Reveal()):
		return r, &InputError{errors.New("oauth.access_token " + unusableToken)}
	case in.APIVersion == store.APIv1 && (in.OAuthGrant != nil || in.OAuth != nil):
		return r, &InputError{errors.New("oauth is for api_version v3; v1 uses the manifest credentials")}
	}
	return r, nil
}

// unusableToken says why a registration's OAuth token is refused, quoting
// nothing of it: rekey sends the token in an Authorization header, which
// cannot hold a line break, a space or a NUL (a token read from a file
// with its newline), and keeps it sealed for as long as the instance lives.
const unusableToken = "holds characters no OAuth bearer token has (a line break, a space, a NUL), or is longer " +
	"than 4096 bytes: send the token exactly as Heroku issued it"

// Put registers or updates one instance and its tokens in one step.
// Everything that can refuse it is checked before a V3 grant is exchanged:
// the input, the grace floor and, for a V3 instance sent without tokens,
// whether it already holds some. Errors in the input are *InputError; a
// grant Heroku did not exchange is an *ExchangeError (nothing stored); a
// failure after the exchange is a *GrantSpentError. A grant
// that registered the instance already is not exchanged again (putGrant).
func (r *Registry) Put(ctx context.Context, in Input) error {
	reg, err := in.Registration()
	if err != nil {
		return err
	}
	// Before anything that waits (the grant's exchange above all): a
	// DELETE answered from here on is not undone by this registration.
	if reg.Deletes, err = r.store.DeleteMark(ctx, in.ID); err != nil {
		return err
	}
	if err := fleet.CheckGrace(reg.Grace, r.minGrace, r.maxGrace); err != nil {
		return &InputError{err}
	}
	if err := r.checkLogInput(in.LogInputURL); err != nil {
		return err
	}
	if err := r.checkTokens(ctx, in); err != nil {
		return err
	}
	// Tokens sealed under keys the fleet does not hold are tokens no
	// worker can read: a process whose REKEY_ENCRYPTION_KEYS opens no
	// fingerprint key stores none.
	if err := r.store.CheckSealedByTheFleet(ctx); err != nil {
		return fmt.Errorf("check REKEY_ENCRYPTION_KEYS: %w", err)
	}
	if err := r.store.CheckCurrent(ctx, reg); err != nil {
		return refusedCurrent(in.ID, reg.CurrentCredentialID, err)
	}
	if err := r.checkDatabase(ctx, in); err != nil {
		return err
	}
	if in.OAuthGrant != nil {
		return r.putGrant(ctx, in, reg)
	}
	var tok *heroku.Token
	if in.OAuth != nil {
		tok = &heroku.Token{AccessToken: in.OAuth.AccessToken, RefreshToken: in.OAuth.RefreshToken,
			ExpiresAt: in.OAuth.ExpiresAt}
	}
	return r.save(ctx, in, func() error { return r.store.Register(ctx, reg, tok) }, tok != nil)
}

// putGrant is Put with an oauth_grant. The grant is exchanged only when no
// registration spent it already: a PUT retried with the code that
// registered the instance (its client timed out on the first answer) is a
// repeat of that registration, and of two PUTs with one code at once the
// second waits for the first (store.ClaimGrant). Heroku refuses a code
// twice, so exchanging it again would answer 422 for an instance that is
// registered.
func (r *Registry) putGrant(ctx context.Context, in Input, reg store.Registration) error {
	code := in.OAuthGrant.Code
	claim, err := r.claimGrant(ctx, in.ID, code)
	if err != nil {
		return err
	}
	if claim == store.GrantAlreadyRegistered {
		return r.save(ctx, in, func() error { return r.store.Register(ctx, reg, nil) }, false)
	}
	// Once asked, Heroku spends the code whether or not its answer is
	// read: the exchange and the storing of the tokens it bought go on when
	// the caller stops waiting (a client that hung up, Ctrl-C on an
	// import), within grantSaveTimeout. Dropped, the tokens would leave an
	// add-on that cannot be rotated until it is provisioned again.
	if err := ctx.Err(); err != nil {
		r.releaseGrant(ctx, in.ID, code)
		return err
	}
	if !r.startGrant() {
		r.releaseGrant(ctx, in.ID, code)
		return ErrStopping
	}
	defer r.endGrant()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grantSaveTimeout)
	defer cancel()
	tok, err := r.exchange(sctx, in.ID, code)
	if err != nil {
		r.releaseGrant(ctx, in.ID, code)
		return &ExchangeError{ID: in.ID, Err: err}
	}
	err = r.save(sctx, in, func() error { return r.store.RegisterGrant(sctx, reg, tok, code) }, true)
	var incomplete *IncompleteError
	if errors.As(err, &incomplete) {
		return err // registered: the grant is remembered, not lost
	}
	if errors.Is(err, store.ErrDeletedSince) {
		// The same PUT sent after the DELETE, waiting for this claim,
		// registers with these tokens: the code is spent.
		if kerr := r.store.KeepGrantTokens(sctx, in.ID, code, tok); kerr != nil {
			err = &InputError{fmt.Errorf("instance %s was deprovisioned (DELETE) while this registration was under way, "+
				"so it was not registered, and keeping the tokens its oauth_grant bought failed (%w)", in.ID, kerr)}
		}
	}
	if err != nil {
		r.releaseGrant(ctx, in.ID, code)
		return &GrantSpentError{ID: in.ID, Err: err}
	}
	return nil
}

// exchange returns the tokens grant code buys: those a registration with
// the same code, refused for a DELETE that came while it was under way,
// kept (store.KeepGrantTokens), else Heroku's for it.
func (r *Registry) exchange(ctx context.Context, id string, code secret.String) (heroku.Token, error) {
	tok, kept, err := r.store.TakeGrantTokens(ctx, id, code)
	if err != nil || kept {
		return tok, err
	}
	return r.oauth.ExchangeGrant(ctx, code)
}

// claimGrant asks the store whether to exchange code, waiting while
// another registration exchanges the same code: until it registered the
// instance, gave the code up, or its claim lapsed.
func (r *Registry) claimGrant(ctx context.Context, id string, code secret.String) (store.GrantClaim, error) {
	for {
		claim, err := r.store.ClaimGrant(ctx, id, code)
		if err != nil || claim != store.GrantBusy {
			return claim, err
		}
		if err := retry.Sleep(ctx, grantPoll); err != nil {
			return claim, fmt.Errorf("%w: %w", ErrGrantBusy, err)
		}
	}
}

// grantSaveTimeout bounds a grant's exchange and the storing of the tokens
// it bought, which go on when the caller stops waiting: long enough for
// the exchange and every attempt storeWaits allows.
const grantSaveTimeout = 45 * time.Second

// grantPoll is how often a registration asks again whether another one
// with the same grant code has finished.
const grantPoll = 100 * time.Millisecond

// ErrGrantBusy is a registration that gave up waiting for another one with
// the same oauth_grant code to finish: nothing was stored and its grant was
// not spent by it; the same PUT again will answer as the other ended.
var ErrGrantBusy = errors.New("another registration with the same oauth_grant is being stored")

// releaseGrant gives up the claim of code after a failed exchange or
// registration, so that a registration waiting for it goes on at once. A
// claim left behind lapses by itself.
func (r *Registry) releaseGrant(ctx context.Context, id string, code secret.String) {
	_ = r.store.ReleaseGrant(context.WithoutCancel(ctx), id, code)
}

// save stores the registration with register (the database location with
// it), then the log input URL and the current config's fingerprint; a
// failure of those is an *IncompleteError, the instance being registered.
// again says whether a failure of Redis itself is tried again: when tokens
// depend on it.
func (r *Registry) save(ctx context.Context, in Input, register func() error, again bool) error {
	if err := r.register(ctx, in, register, again); err != nil {
		return err
	}
	err := r.saveLogInput(ctx, in)
	learned := store.FingerprintNotCurrent
	if err == nil && len(in.CurrentConfig) > 0 {
		// After the registration, which putInstanceScript stores alone: the
		// step writes only while the credential is still current.
		learned, err = r.store.LearnCurrentFingerprint(ctx, in.ID, in.CurrentCredentialID, in.CurrentConfig)
	}
	if err != nil {
		return &IncompleteError{ID: in.ID, Err: err}
	}
	if learned == store.FingerprintLiveElsewhere && r.rotateShared != nil {
		// The registration is stored: a failed request is rotateShared's
		// to report, and the same PUT again makes it again.
		_ = r.rotateShared(ctx, in.ID)
	}
	return nil
}

// checkTokens refuses a V3 registration without tokens when the instance
// holds none: it could never be rotated.
func (r *Registry) checkTokens(ctx context.Context, in Input) error {
	if in.APIVersion != store.APIv3 || in.OAuthGrant != nil || in.OAuth != nil {
		return nil
	}
	need, err := r.store.NeedsToken(ctx, in.ID)
	if err != nil {
		return err
	}
	if need {
		return &InputError{tokenRequired(in.ID)}
	}
	return nil
}

// refusedCurrent turns the store's refusal of the current credential a
// registration names (a revoked one, or one whose revocation is due) into
// the answer's sentence; any other error is returned as it is.
func refusedCurrent(id, credID string, err error) error {
	switch {
	case errors.Is(err, store.ErrCredentialRevoked):
		return &InputError{fmt.Errorf("current_credential_id %q names a credential of instance %s that was revoked: "+
			"an app given it could not connect; send the id of the credential minted for this provisioning", credID, id)}
	case errors.Is(err, store.ErrCredentialRevokeDue):
		return &InputError{fmt.Errorf("current_credential_id %q names a credential of instance %s whose revocation "+
			"is due (its revoke time has passed or comes within %s): the issuer may be revoking it now; mint a new "+
			"credential for this provisioning and send its id", credID, id, store.RevokeDueMargin)}
	}
	return err
}

// herokuIDTaken is the answer's sentence for a V1 registration whose
// heroku_id another live V1 instance holds with a var of the same name;
// err names that instance and the var.
func herokuIDTaken(herokuID string, err error) error {
	holder, name := "another live v1 instance", "a config var"
	if taken, ok := errors.AsType[*store.HerokuIDTakenError](err); ok {
		holder, name = "live v1 instance "+taken.Holder, taken.ConfigVar
	}
	return fmt.Errorf("heroku_id %q is that of %s, which sets %s too: Heroku's v1 calls name the app alone, so "+
		"each rotation of either would put its credential in the other's config; nothing was stored. Check the "+
		"heroku_id; a second install of the add-on on one app cannot be told apart over v1: register it as v3 "+
		"(its calls name the add-on); if the add-on really moved, deprovision the other instance first",
		herokuID, holder, name)
}

// checkDatabase refuses, before any grant is exchanged, a registration
// whose database location another live instance holds: the one it names,
// else, for a deprovisioned instance registered again, the one it kept and
// goes on with. The registration's script checks again as it stores.
func (r *Registry) checkDatabase(ctx context.Context, in Input) error {
	loc := in.Database
	if loc == nil {
		inst, err := r.store.Instance(ctx, in.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil
		case err != nil:
			return err
		case !inst.Deprovisioned():
			return nil
		}
		kept, err := r.store.Database(ctx, in.ID)
		if err != nil || kept.Validate() != nil {
			// None, or none read whole: the registration's script, which
			// reads it its own way, decides.
			return nil
		}
		loc = &kept
	}
	if err := r.store.CheckDatabase(ctx, in.ID, *loc); err != nil {
		return databaseTaken(err)
	}
	return nil
}

// databaseTaken is the answer to a registration whose database location
// another live instance registered (store.DatabaseTakenError): every
// credential the PostgreSQL issuer minted for either would open the
// other's data.
func databaseTaken(err error) error {
	taken, ok := errors.AsType[*store.DatabaseTakenError](err)
	if !ok {
		return err
	}
	return &InputError{fmt.Errorf("database: the %s is that of live instance %s on the same server: each credential "+
		"minted for either would open the other's data; nothing was stored. Check the database location; if the "+
		"database really moved, deprovision the other instance first", taken.What, taken.Holder)}
}

func tokenRequired(id string) error {
	return fmt.Errorf("instance %s is api_version v3 and holds no OAuth tokens: send \"oauth_grant\" (from Heroku's provisioning request) or \"oauth\"; without them it could never be rotated", id)
}

// register runs register (one atomic store of the registration and its
// tokens), trying again after a failure of Redis itself when again says
// tokens depend on it. Refusals are not retried.
func (r *Registry) register(ctx context.Context, in Input, register func() error, again bool) error {
	id := in.ID
	for attempt := 0; ; attempt++ {
		err := register()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, store.ErrConflict):
			return &InputError{fmt.Errorf("instance %s was deprovisioned and cannot be registered again", id)}
		case errors.Is(err, store.ErrTokenRequired):
			return &InputError{tokenRequired(id)}
		case errors.Is(err, store.ErrCredentialRevoked), errors.Is(err, store.ErrCredentialRevokeDue):
			return refusedCurrent(id, in.CurrentCredentialID, err)
		case errors.Is(err, store.ErrHerokuIDTaken):
			return &InputError{herokuIDTaken(in.HerokuID, err)}
		case errors.Is(err, store.ErrDatabaseTaken):
			return databaseTaken(err)
		case errors.Is(err, store.ErrDeletedSince):
			return &InputError{fmt.Errorf("instance %s: %w, so it was not registered; send the PUT again if the add-on "+
				"is provisioned again (with the same oauth_grant within two minutes)", id, store.ErrDeletedSince)}
		case !again || attempt >= len(r.storeWaits):
			return err
		}
		if werr := retry.Sleep(ctx, r.storeWaits[attempt]); werr != nil {
			return errors.Join(err, werr)
		}
	}
}
