package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/config"
	"github.com/rekeyhq/rekey/internal/health"
	"github.com/rekeyhq/rekey/internal/logging"
	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/store"
)

// sealedCheckLimit bounds the start-up check of sealed values: about this
// many are opened, a few milliseconds of work, whatever the fleet's size.
const sealedCheckLimit = 2000

// openService builds the app of a long-running process (web, worker,
// clock) without waiting for Redis: a watcher pings it with back-off and
// logs redis_down and redis_up once per change, so a process started
// before Redis, or during an outage, keeps running instead of exiting into
// Heroku's crash-restart cool-down. go-redis's own log lines go through
// zerolog, demoted while Redis is down. It first logs the settings that
// may make revocations early or holds long (config.Warnings), as every
// command logs the REKEY_ settings rekey does not read (newLogger).
//
// role names the process ("web", "worker", "scheduler") in the keys it
// announces (announceKeys). Once Redis answers it checks the server
// (checkServer): the context it returns ends, its cause a
// *health.VersionError, when Redis is too old, and the process then exits
// with that error (refused). It ends too, the watcher holding a
// *health.RefusedError, when Redis refuses REDIS_URL before it ever
// answered it in a way no waiting mends (a wrong password, a database it
// does not have, TLS the server does not speak).
func openService(ctx context.Context, cfg *config.Config, log zerolog.Logger, role string) (*app, context.Context, error) {
	for _, w := range cfg.Warnings() {
		log.Warn().Str("detail", w.Detail).Msg(w.Name)
	}
	if role == "web" && cfg.OAuthClientSecret.IsZero() && cfg.AddonPassword.IsZero() {
		// The worker refuses to start without it or V1's credentials; the
		// web process starts, and every V3 provisioning would answer 503.
		// A deployment with V1's credentials may be V1 only: not nagged.
		log.Warn().Str("detail", "HEROKU_OAUTH_CLIENT_SECRET is not set: every V3 provisioning (an oauth_grant to "+
			"exchange) is answered 503, and workers refuse to start without it or V1's credentials").Msg("no_oauth_client_secret")
	}
	a, err := newApp(cfg, log)
	if err != nil {
		return nil, ctx, err
	}
	// redis_up and redis_down name the pool's size too, so the first line a
	// process logs about Redis says how many connections it may open
	// (REKEY_REDIS_POOL_SIZE, or REDIS_URL's pool_size).
	opt := a.rdb.Options()
	ping := health.PingTLSChecked(func(ctx context.Context) error { return a.rdb.Ping(ctx).Err() }, opt.Addr, opt.TLSConfig != nil)
	w, err := health.NewRedis(health.Params{Ping: ping, Full: a.redisFull,
		Logger: log.With().Str("redis_addr", opt.Addr).Int("redis_pool_size", opt.PoolSize).Logger(), Redact: a.redact})
	if err != nil {
		_ = a.Close()
		return nil, ctx, err
	}
	redis.SetLogger(logging.GoRedis{L: log, Quiet: w.LibraryError, Redact: a.redact})
	wctx, cancel := context.WithCancel(ctx)
	a.health, a.stopWatch = w, cancel
	go w.Run(wctx)
	ctx, refuse := context.WithCancelCause(ctx)
	a.serverChecked = make(chan struct{})
	go func() {
		defer close(a.serverChecked)
		err := w.Wait(wctx)
		if _, ok := errors.AsType[*health.RefusedError](err); ok {
			refuse(err) // a.refused says it in an operator's words
			return
		}
		if err == nil {
			if err := a.checkServer(wctx, true); err != nil {
				refuse(err)
				return
			}
			if err := a.checkPermitted(wctx); err != nil {
				refuse(err)
				return
			}
			a.warnShared(wctx) // a proxy that refuses INFO may still answer SCAN
		}
	}()
	a.keepClock(wctx)
	name := processName(role, cfg.Dyno)
	a.schedules = role == "scheduler"
	if role == "worker" {
		// A worker announces its keys once they pass its start-up
		// comparison (keysChecked): a worker on other keys, waiting,
		// would otherwise make every process of the fleet fail the same
		// comparison, itself included.
		a.announce = func() { a.withdrawKeys = a.announceKeys(wctx, name) }
	} else {
		a.withdrawKeys = a.announceKeys(wctx, name)
	}
	return a, ctx, nil
}

// permissionError is Redis refusing REDIS_URL's user a command rekey
// needs (checkPermitted).
type permissionError struct{ msg string }

func (e *permissionError) Error() string { return e.msg }

// checkPermitted reads the running processes' announcements, a Lua script
// as most of rekey's commands are, and returns a *permissionError when
// Redis refuses REDIS_URL's user that (NOPERM): an ACL no waiting mends,
// under which every request, rotation and sweep would fail. Any other
// error is no verdict.
func (a *app) checkPermitted(ctx context.Context) error {
	_, err := a.store.Keyrings(ctx)
	if !health.NoPermission(err) {
		return nil
	}
	return &permissionError{msg: fmt.Sprintf("the Redis at %s refuses REDIS_URL's user a command rekey needs (%s): "+
		"give that user every command (+@all, the scripting ones among them) and every key (~*) of rekey's database",
		a.rdb.Options().Addr, a.redact(err.Error()))}
}

// redisFull says whether the Redis at REDIS_URL refuses new connections
// for having reached its maxclients, and what to lower; "" when it does
// not (health.MaxClientsHint).
func (a *app) redisFull(ctx context.Context) string {
	opt := a.rdb.Options()
	return health.MaxClientsHint(ctx, opt.Addr, opt.TLSConfig != nil)
}

// checkServer reads Redis's version and maxmemory-policy from INFO. It
// returns a *health.VersionError for a Redis older than
// health.MinRedisVersion, whose commands rekey's would fail on every time.
// With warnEvict it logs redis_evicts, at error level, when Redis may
// evict keys to make room: an evicted revocation index leaves old
// credentials unrevoked for ever (I3); and what keeps the workers from
// waiting for the replicas REKEY_REDIS_WAIT_REPLICAS asks for
// (checkReplicas). A Redis that refuses INFO (a proxy
// or a managed service that blocks it) is not refused.
func (a *app) checkServer(ctx context.Context, warnEvict bool) error {
	info, err := a.rdb.Info(ctx, "server").Result()
	if err == nil {
		if err := health.ParseInfo(info).CheckVersion(); err != nil {
			return err
		}
		// INFO takes one section before Redis 7.
		if warnEvict {
			info, err = a.rdb.Info(ctx, "memory").Result()
		}
	}
	if err != nil {
		a.log.Debug().Str("error", a.redact(err.Error())).Msg("redis_info_failed")
	}
	if !warnEvict {
		return nil
	}
	if s := health.ParseInfo(info); err == nil && s.EvictionWarning() != "" {
		a.log.Error().Str("policy", s.MaxmemoryPolicy).Str("detail", s.EvictionWarning()).Msg("redis_evicts")
	}
	a.checkReplicas(ctx)
	return nil
}

// checkReplicas logs, at error level, why the workers would mint, push
// and revoke nothing under REKEY_REDIS_WAIT_REPLICAS: fewer replicas
// connected than it asks (redis_replicas_missing), or a wait that fails
// (redis_wait_failed: a proxy or a managed Redis that refuses WAIT, which
// may refuse INFO too).
func (a *app) checkReplicas(ctx context.Context) {
	want := a.cfg.RedisWaitReplicas
	if want == 0 {
		return
	}
	if info, err := a.rdb.Info(ctx, "replication").Result(); err == nil {
		s := health.ParseInfo(info)
		if w := s.ReplicasWarning(want); w != "" {
			a.log.Error().Int("replicas", s.ConnectedReplicas).Int("wait_for", want).Str("detail", w).Msg("redis_replicas_missing")
			return
		}
	}
	if err := a.store.Durable(ctx); err != nil {
		a.log.Error().Int("wait_for", want).Str("error", a.redact(err.Error())).Str("detail", "REKEY_REDIS_WAIT_REPLICAS is "+
			strconv.Itoa(want)+" but waiting for the replicas failed: workers mint, push and revoke only once they "+
			"acknowledge rekey's writes, and retry until then; lower the setting to 0 if this Redis cannot WAIT").Msg("redis_wait_failed")
	}
}

// ownKeyPrefixes are the prefixes of every key rekey's processes write:
// the store's, asynq's and the rate limiter's (redis_rate adds "rate:").
var ownKeyPrefixes = []string{"rekey:", "asynq:", ratelimit.KeyPrefix}

// sharedScanLimit bounds how many SCAN calls warnShared makes: a few
// thousand keys looked at, a few milliseconds of Redis's time.
const sharedScanLimit = 8

// warnShared logs redis_shared, at warn level, when REDIS_URL's database
// holds a key that is not rekey's: another app shares it, and its FLUSHDB,
// its own eviction settings or a clashing key would wipe or corrupt the
// revocations rekey owes (I3). It names no key (another app's key names
// may be its session ids); it looks at a bounded part of a large database.
func (a *app) warnShared(ctx context.Context) {
	var cursor uint64
	for range sharedScanLimit {
		keys, next, err := a.rdb.Scan(ctx, cursor, "", 1000).Result()
		if err != nil {
			a.log.Debug().Str("error", a.redact(err.Error())).Msg("redis_scan_failed")
			return
		}
		for _, k := range keys {
			if !slices.ContainsFunc(ownKeyPrefixes, func(p string) bool { return strings.HasPrefix(k, p) }) {
				a.log.Warn().Int("redis_db", a.rdb.Options().DB).Str("detail", fmt.Sprintf("REDIS_URL's database %d "+
					"holds keys that are neither rekey's nor asynq's: another app shares it, and its FLUSHDB, its "+
					"eviction or a key of the same name would wipe or corrupt what rekey keeps (credentials waiting "+
					"for revocation among it); give rekey a Redis of its own, or at least a database of its own "+
					"(REDIS_URL ending in /1 or another number)", a.rdb.Options().DB)).Msg("redis_shared")
				return
			}
		}
		if cursor = next; cursor == 0 {
			return
		}
	}
}

// refused is err, or what refused the process at start when that is what
// ended ctx (openService): the server check's refusal, Redis refusing
// REDIS_URL's user a command (checkPermitted), or Redis's refusal
// of REDIS_URL before it ever answered (health.RefusedError), which the
// watcher holds as soon as Wait returns it.
func (a *app) refused(ctx context.Context, err error) error {
	if v, ok := errors.AsType[*health.VersionError](context.Cause(ctx)); ok {
		return v
	}
	if p, ok := errors.AsType[*permissionError](context.Cause(ctx)); ok {
		return p
	}
	if r := a.health.Refusal(); r != nil {
		return a.redisRefused(r)
	}
	return err
}

// keepClock measures the offset of this machine's clock from Redis's once
// Redis answers, and again every redisclock.DefaultInterval until ctx ends
// (two TIME commands a minute), logging clock_skew when it passes 2 s. It
// starts that once per app; later calls do nothing.
func (a *app) keepClock(ctx context.Context) {
	a.clockOnce.Do(func() {
		go func() {
			if a.health.Wait(ctx) == nil {
				a.clock.Run(ctx)
			}
		}()
	})
}

// clockMeasured waits until the app's clock has been measured against
// Redis's (keepClock), so that a worker writes and checks no revoke time
// on its machine's clock alone. It fails only when ctx ends first.
//
// It also waits for openService's check of the server, when there is
// one, so that no task or sweep runs on a Redis that check refuses.
func (a *app) clockMeasured(ctx context.Context) error {
	a.keepClock(ctx)
	select {
	case <-a.clock.Measured():
	case <-ctx.Done():
		return ctx.Err()
	}
	if a.serverChecked == nil {
		return nil
	}
	select {
	case <-a.serverChecked:
		return ctx.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// The announcement of a process's keys (store.Keyrings) is renewed every
// keyringRenew and holds keyringTTL: a process that died without
// withdrawing it stops counting within minutes.
const (
	keyringRenew = time.Minute
	keyringTTL   = 3 * time.Minute
)

// announceKeys says, once Redis answers and then every keyringRenew until
// ctx ends, which keys of REKEY_ENCRYPTION_KEYS this process holds, so
// that 'rekey keys reseal' refuses to run while a process still seals
// under another key. The function it returns stops the announcing and
// withdraws the announcement (Close calls it before closing Redis).
func (a *app) announceKeys(ctx context.Context, name string) (withdraw func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if a.health.Wait(ctx) != nil {
			return
		}
		t := time.NewTicker(keyringRenew)
		defer t.Stop()
		settings := a.announcedSettings()
		disagreement, epoch := "", ""
		for {
			if err := a.store.AnnounceKeyring(ctx, name, keyringTTL); err != nil && ctx.Err() == nil {
				log := a.quietLog()
				log.Warn().Str("error", a.redact(err.Error())).Msg("keys_announce_failed")
			}
			disagreement = a.announceSettings(ctx, name, settings, disagreement)
			epoch = a.watchEpoch(ctx, epoch)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
			wctx, stop := context.WithTimeout(context.Background(), 2*time.Second)
			defer stop()
			_ = a.store.WithdrawKeyring(wctx, name)
			_ = a.store.WithdrawSharedSettings(wctx, name)
		})
	}
}

// watchEpoch reads Redis's epoch mark (store.Epoch), and logs
// redis_data_lost, at error level, when it is not the one seen, the mark
// this process read before: Redis came back without rekey's data
// (restarted without persistence, flushed, or REDIS_URL naming another
// Redis), and every revocation it owed is forgotten (I3), every instance's
// registration too, without another word from anything. It returns the
// mark to compare with next time; a failed read keeps seen.
func (a *app) watchEpoch(ctx context.Context, seen string) string {
	got, err := a.store.Epoch(ctx, store.NewEpochMark(time.Now()))
	if err != nil {
		return seen
	}
	if seen != "" && got != seen {
		since := "an unknown time"
		if t, ok := store.EpochSince(seen); ok {
			since = t.Format(time.RFC3339)
		}
		a.log.Error().Str("since", since).Str("detail", "Redis no longer holds the mark rekey wrote there at "+since+
			": it restarted without persistence, was flushed, or REDIS_URL names another Redis; the instances and the "+
			"revocations it held are forgotten. Restore Redis from a backup, or register the fleet again (rekey instances "+
			"import) and revoke at the issuer the credentials no instance holds").Msg("redis_data_lost")
	}
	return got
}

// announcedSettings are the settings the process announces: the shared
// ones, and a clock's maintenance window. Only clocks schedule: a web or
// worker process without the setting would read as disagreeing with them.
func (a *app) announcedSettings() string {
	s := sharedSettings(a.cfg)
	if w, err := globalWindow(a.cfg); a.schedules && err == nil {
		text := ""
		if w != nil {
			text = w.String()
		}
		s += " " + store.WindowSetting + "=" + text
	}
	return s
}

// sharedSettings names the settings every process of a deployment must
// share: the Heroku budget's, the graces a worker applies and the web
// process tells customers, with the floor and ceiling the worker holds
// them to (as it applies them: REKEY_MIN_GRACE lowered to REKEY_GRACE,
// REKEY_MAX_GRACE raised to both graces), and where credentials are minted and revoked
// and pushed. A worker minting from another issuer than the others revokes
// their credentials at an issuer that does not know them (its 404 counts
// as revoked, leaving them live) and pushes its own; one pushing to
// another Heroku API leaves the apps unchanged. The issuer, http or
// postgres, is announced under one name by processes configured with one,
// as its kind, its host and a fingerprint keyed by its secret
// (issuerIdentity); HEROKU_API_URL, a host without a path, as its host.
func sharedSettings(cfg *config.Config) string {
	// A worker without REKEY_REDIS_WAIT_REPLICAS beside others with it
	// would push and revoke without the wait the operator asked for.
	s := fmt.Sprintf("REKEY_HEROKU_RATE=%d REKEY_RATE_SCOPE=%s REKEY_GRACE=%s REKEY_PRIVATE_SPACE_GRACE=%s "+
		"REKEY_MIN_GRACE=%s REKEY_MAX_GRACE=%s REKEY_REDIS_WAIT_REPLICAS=%d",
		cfg.HerokuRate, cfg.RateScope, cfg.Grace, cfg.PrivateSpaceGrace, cfg.GraceFloor(), cfg.GraceCeiling(), cfg.RedisWaitReplicas)
	if id := issuerIdentity(cfg); id != "" {
		s += " REKEY_ISSUER=" + id
	}
	if cfg.Issuer == config.IssuerPostgres {
		// Its own setting, so that a mismatch names it: two processes
		// listing REKEY_ENCRYPTION_KEYS in another order derive other
		// keys, and one never revokes the roles the other minted.
		s += " REKEY_POSTGRES_KEY=" + keyedFingerprint(cfg.PostgresDerivationKey(), "postgres issuer key")
	}
	if cfg.HerokuAPIURL != "" {
		s += " HEROKU_API_URL=" + urlHost(cfg.HerokuAPIURL)
	}
	return s
}

// urlHost is raw's host and port, "?" when it has none: never its user
// info, path or query, which may carry a secret.
func urlHost(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Host
	}
	return "?"
}

// issuerIdentity names the issuer a process mints from: "http:HOST@FP" for
// REKEY_ISSUER_URL, "postgres@FP" for REKEY_POSTGRES_SERVERS, "" for none.
// FP is an HMAC of the whole URL (which may carry a token in its path or
// user info), or of the servers' ids and hosts, under the issuer's own
// secret (REKEY_ISSUER_SECRET, REKEY_POSTGRES_KEY): a plain hash of a URL
// could be reversed by guessing, and the announcements are in Redis and
// in logs. Two processes with one issuer and one secret announce alike.
func issuerIdentity(cfg *config.Config) string {
	switch {
	case cfg.Issuer == config.IssuerPostgres:
		return "postgres@" + keyedFingerprint(cfg.PostgresDerivationKey(), postgresServers(cfg))
	case cfg.Issuer == config.IssuerHTTP && cfg.IssuerURL != "" && !cfg.IssuerSecret.IsZero():
		// Without its secret (a web or clock process on a VM may lack
		// REKEY_ISSUER_SECRET) the fingerprint would be a plain hash:
		// such a process announces no issuer.
		u := canonicalURL(cfg.IssuerURL)
		return "http:" + urlHost(u) + "@" + keyedFingerprint([]byte(cfg.IssuerSecret.Reveal()), u)
	}
	return ""
}

// canonicalURL is raw with its scheme and host in lower case and the
// scheme's default port dropped, so that one issuer written two ways
// (ISSUER.example, issuer.example:443) is announced alike.
func canonicalURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if host, port, err := net.SplitHostPort(u.Host); err == nil &&
		(u.Scheme == "https" && port == "443" || u.Scheme == "http" && port == "80") {
		u.Host = host
		if strings.Contains(host, ":") {
			u.Host = "[" + host + "]"
		}
	}
	return u.String()
}

// postgresServers names REKEY_POSTGRES_SERVERS by each server's id and
// host, in order: no password or database.
func postgresServers(cfg *config.Config) string {
	var b strings.Builder
	for _, srv := range cfg.PostgresServers {
		fmt.Fprintf(&b, "%s=%s,", srv.ID, urlHost(srv.AdminURL.Reveal()))
	}
	return b.String()
}

// keyedFingerprint is the first 8 hex digits of the HMAC-SHA-256 of s
// under key, labelled so that it is no HMAC the key makes for another use
// (the issuer's request signatures).
func keyedFingerprint(key []byte, s string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("rekey shared settings v1\x00" + s))
	return hex.EncodeToString(m.Sum(nil)[:4])
}

// announceSettings says what this process runs with of the shared settings
// and logs settings_mismatch, once while the disagreement lasts, when the
// running processes do not all say the same: one with a typo in
// REKEY_HEROKU_RATE spends its own budget beside the others', one with
// another REKEY_GRACE revokes sooner or later than the web process tells
// customers, and nothing else tells. It returns the disagreement logged,
// "" when none.
func (a *app) announceSettings(ctx context.Context, name, settings, logged string) string {
	log := a.quietLog()
	if err := a.store.AnnounceSharedSettings(ctx, name, settings, keyringTTL); err != nil {
		if ctx.Err() == nil {
			log.Warn().Str("error", a.redact(err.Error())).Msg("settings_announce_failed")
		}
		return logged
	}
	live, err := a.store.SharedSettings(ctx)
	if err != nil {
		return logged
	}
	d := settingsDisagreement(live)
	if d != "" && d != logged {
		log.Warn().Str("own", settings).Str("detail", d+": every process must run with the same, or together they "+
			"spend more of Heroku's calls than it allows, or revoke old credentials sooner than customers were told; "+
			"give them all the same environment (while a changed setting rolls out, this lasts until the last process "+
			"with the old one has stopped, or its announcement lapsed, 3 minutes after it died)").Msg("settings_mismatch")
	}
	return d
}

// settingsDisagreement describes, setting by setting, the shared settings
// the live announcements do not all give alike, with the processes under
// each value: "REKEY_HEROKU_RATE=3600: worker.1, worker.2;
// REKEY_HEROKU_RATE=36000: worker.3".
func settingsDisagreement(live []store.SettingsAnnouncement) string {
	var parts []string
	for _, values := range store.SettingsDisagreements(live) {
		for _, v := range values {
			parts = append(parts, v.Setting+": "+strings.Join(v.Processes, ", "))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "the running processes run with different settings (" + strings.Join(parts, "; ") + ")"
}

// processName names this process in the keys it announces: its dyno on
// Heroku (DYNO, "worker.1"), else its role, host and pid; a random suffix keeps
// apart a restarted dyno and the one it replaces while both run.
func processName(role, dyno string) string {
	name := dyno
	if name == "" {
		host, _ := os.Hostname()
		name = fmt.Sprintf("%s on %s pid %d", role, host, os.Getpid())
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return name + " #" + hex.EncodeToString(b)
}

// quietLog is the app's logger for components that only talk to Redis:
// their warnings are dropped while the watcher knows Redis is down.
func (a *app) quietLog() zerolog.Logger {
	return logging.QuietWhile(a.log, a.health.LibraryError)
}

// untilDone runs fn once Redis answers, and again when fn fails while
// Redis is down, so an outage during a component's start-up does not end
// the process. It returns nil when ctx ends (SIGTERM), and fn's error when
// fn failed with Redis answering.
func (a *app) untilDone(ctx context.Context, fn func(context.Context) error) error {
	for {
		if a.health.Wait(ctx) != nil {
			return nil
		}
		err := fn(ctx)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		if a.health == nil || a.health.Check(ctx) {
			return err
		}
	}
}

// checkSealed opens a bounded sample of the stored sealed values and, when
// some cannot be opened, says loudly which variable to fix. The process
// starts anyway: most instances may be fine, and a rotation whose token
// cannot be opened fails on its own; the count is also served as
// rekey_sealed_unreadable by the web process.
func (a *app) checkSealed(ctx context.Context) {
	st, err := a.store.SealedStatus(ctx, sealedCheckLimit)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn().Str("error", a.redact(err.Error())).Msg("sealed_check_failed")
		}
		return
	}
	n := st.UnreadableTotal()
	a.unreadable.Store(n)
	if n == 0 {
		return
	}
	ids := make([]string, 0, len(st.Unreadable))
	for id := range st.Unreadable {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	a.log.Error().Int64("unreadable", n).Int64("checked", st.Values).Bool("partial", st.Partial).
		Strs("sealed_under_key_ids", ids).Str("detail", fmt.Sprintf(
		"%d of the %d stored sealed values checked cannot be opened with any key of REKEY_ENCRYPTION_KEYS "+
			"(sealed under key id %s): add the key they were sealed under back to REKEY_ENCRYPTION_KEYS; "+
			"rotations of the instances they belong to fail until then; see 'rekey keys status'",
		n, st.Values, strings.Join(ids, ", "))).Msg("sealed_values_unreadable")
}

// checkSealedWhenUp runs checkSealed once Redis first answers, in the
// background, so a process serves (web) or waits (clock) meanwhile.
func (a *app) checkSealedWhenUp(ctx context.Context) {
	go func() {
		if a.health.Wait(ctx) == nil {
			a.checkSealed(ctx)
		}
	}()
}

// unreadableCount is the start-up check's result for /metrics.
func (a *app) unreadableCount() (int64, bool) {
	n := a.unreadable.Load()
	return n, n >= 0
}
