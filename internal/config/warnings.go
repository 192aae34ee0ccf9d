package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/secret"
)

// Warning is a setting Load accepts but that an operator must hear of:
// every long-running process (web, worker, clock) logs each one at start-up
// as a warning whose message is Name and whose "detail" is Detail. Neither
// ever holds a secret: only variable names and durations.
type Warning struct {
	Name   string
	Detail string
}

// Warning names, the log lines' fixed messages.
const (
	// WarnShortGrace: the grace floor lets an old credential be revoked
	// soon after its rotation, or the Private Spaces grace is shorter than
	// the default one.
	WarnShortGrace = "short_grace"
	// WarnLongHold: a held revocation may last longer past its grace than
	// the grace ceiling.
	WarnLongHold = "long_hold"
	// WarnHoldForever: a held revocation is kept past its cap.
	WarnHoldForever = "hold_at_cap_hold"
	// WarnShortPeriod: scheduled rotations come round faster than the
	// grace, so instances keep more than one old credential waiting.
	WarnShortPeriod = "short_rotation_period"
	// WarnLongPeriod: scheduled rotations come round less than once a
	// year.
	WarnLongPeriod = "long_rotation_period"
	// WarnLongGrace: REKEY_GRACE or REKEY_PRIVATE_SPACE_GRACE is longer
	// than REKEY_MAX_GRACE, and so raises the grace ceiling.
	WarnLongGrace = "long_grace"
	// WarnWeakIssuerSecret: REKEY_ISSUER_SECRET is shorter than
	// MinIssuerSecretLen.
	WarnWeakIssuerSecret = "weak_issuer_secret"
	// WarnSharedSecret: two secret variables hold the same value, so
	// whoever holds one (an operator with the monitoring password, the
	// issuer's owner, Heroku) holds the other.
	WarnSharedSecret = "shared_secret"
	// WarnPreviousUnchanged: a *_PREVIOUS variable holds the value of the
	// one it stands behind, so it takes nothing more during a rotation.
	WarnPreviousUnchanged = "previous_unchanged"
	// WarnRateAboveHeroku: REKEY_HEROKU_RATE is above what Heroku allows
	// an account in an hour.
	WarnRateAboveHeroku = "rate_above_heroku"
	// WarnPostgresWithoutTLS: a PostgreSQL issuer's admin URL to another
	// machine does not require TLS.
	WarnPostgresWithoutTLS = "postgres_without_tls"
	// WarnPostgresKeyFromOrder: the PostgreSQL issuer's key derives from
	// whichever REKEY_ENCRYPTION_KEYS key is listed first.
	WarnPostgresKeyFromOrder = "postgres_key_from_key_order"
	// WarnQuotedValue: a variable's value is wrapped in quotes, which
	// rekey takes as part of it.
	WarnQuotedValue = "quoted_value"
	// WarnPostgresIgnored: the PostgreSQL issuer's settings are set while
	// REKEY_ISSUER is http, which ignores them.
	WarnPostgresIgnored = "postgres_settings_ignored"
	// WarnCustomerUncapped: REKEY_CUSTOMER_ROTATIONS_PER_DAY is 0, no daily
	// cap on the dashboard's button.
	WarnCustomerUncapped = "customer_rotations_uncapped"
)

// HerokuHourlyLimit is about how many calls an hour Heroku's partner API
// allows an account, shared with the partner's other clients.
const HerokuHourlyLimit = 4500

// MinIssuerSecretLen is the length in bytes under which Warnings warns of
// REKEY_ISSUER_SECRET: it keys the HMAC-SHA256 signatures of every webhook
// request, and a short one can be guessed offline from one signed request.
const MinIssuerSecretLen = 16

// ShortGraceFloor is the grace floor under which Warnings warns: Heroku
// restarts an app's dynos over minutes (longer in Private Spaces), and an
// app runs the old credential until its dynos have restarted.
const ShortGraceFloor = 5 * time.Minute

// Warnings lists what in c may make revocations early, holds long,
// scheduled rotations pile up or the issuer's signatures weak.
func (c *Config) Warnings() []Warning {
	out := c.quotedWarnings()
	if d := c.shortGrace(); d != "" {
		out = append(out, Warning{Name: WarnShortGrace, Detail: d})
	}
	if d := c.longGrace(); d != "" {
		out = append(out, Warning{Name: WarnLongGrace, Detail: d})
	}
	for _, name := range c.weakIssuerSecrets() {
		out = append(out, Warning{Name: WarnWeakIssuerSecret, Detail: fmt.Sprintf("%s is shorter "+
			"than %d bytes: it signs every request to the issuer webhook, and one signed request lets anyone who "+
			"sees it guess a short secret offline; make one with: openssl rand -hex 32", name, MinIssuerSecretLen)})
	}
	if d := c.shortPeriod(); d != "" {
		out = append(out, Warning{Name: WarnShortPeriod, Detail: d})
	}
	if c.RotationPeriod > LongPeriodCeiling {
		out = append(out, Warning{Name: WarnLongPeriod, Detail: fmt.Sprintf("REKEY_ROTATION_PERIOD (%s) is longer "+
			"than a year: an instance's credential is rotated on schedule once every %.0f days; the default, 2160h, "+
			"is 90 days", c.RotationPeriod, c.RotationPeriod.Hours()/24)})
	}
	if c.HerokuRate > HerokuHourlyLimit {
		out = append(out, Warning{Name: WarnRateAboveHeroku, Detail: fmt.Sprintf("REKEY_HEROKU_RATE (%d calls an hour) "+
			"is above the about %d an hour Heroku allows an account, shared with the partner's other clients: "+
			"waves would run into 429s; leave headroom, such as 4000", c.HerokuRate, HerokuHourlyLimit)})
	}
	if ids := c.postgresWithoutTLS(); len(ids) > 0 {
		out = append(out, Warning{Name: WarnPostgresWithoutTLS, Detail: "the admin URL of PostgreSQL server " +
			strings.Join(ids, ", ") + " (REKEY_POSTGRES_SERVERS) names another machine without sslmode=require, " +
			"verify-ca or verify-full: its admin password, and every password it sets, may cross the network in clear"})
	}
	if d := c.postgresIgnored(); d != "" {
		out = append(out, Warning{Name: WarnPostgresIgnored, Detail: d})
	}
	if c.Issuer == IssuerPostgres && len(c.PostgresKey) == 0 && len(c.EncryptionKeys) > 1 {
		out = append(out, Warning{Name: WarnPostgresKeyFromOrder, Detail: "REKEY_POSTGRES_KEY is not set, so the " +
			"PostgreSQL issuer derives role names and passwords from the first key of REKEY_ENCRYPTION_KEYS: a process " +
			"that lists the keys in another order does not recognise the roles the others minted and never revokes " +
			"them; set REKEY_POSTGRES_KEY on every process (any 32 random bytes, base64), or list the keys in one " +
			"order everywhere"})
	}
	if d := c.customerUncapped(); d != "" {
		out = append(out, Warning{Name: WarnCustomerUncapped, Detail: d})
	}
	for _, pair := range c.sharedSecrets() {
		if pair[1] == pair[0]+"_PREVIOUS" {
			out = append(out, Warning{Name: WarnPreviousUnchanged, Detail: pair[1] + " holds " + pair[0] + "'s value, " +
				"so it adds nothing: set it to the value " + pair[0] + " replaced while the other side moves to the new " +
				"one, or unset it"})
			continue
		}
		out = append(out, Warning{Name: WarnSharedSecret, Detail: pair[0] + " and " + pair[1] + " hold the same value: " +
			"each grants its own access (or is given to another party), so whoever holds one holds both; " +
			"give each its own, such as from: openssl rand -hex 32"})
	}
	if c.HoldQuiet > 0 && c.HoldAtCap == HoldAtCapHold {
		out = append(out, Warning{Name: WarnHoldForever, Detail: "REKEY_HOLD_AT_CAP is hold: a revocation held " +
			"while its credential is in use is kept past its cap (REKEY_HOLD_MAX), for as long as the issuer " +
			"reports the credential used, until an operator releases it (rekey holds release)"})
	}
	if ceiling := c.GraceCeiling(); c.HoldQuiet > 0 && c.HoldMax > ceiling {
		out = append(out, Warning{Name: WarnLongHold, Detail: fmt.Sprintf(
			"REKEY_HOLD_MAX (%s) is longer than the grace ceiling (%s: REKEY_MAX_GRACE, or REKEY_GRACE or "+
				"REKEY_PRIVATE_SPACE_GRACE when longer): a held revocation may keep an old credential valid %s past "+
				"its grace; set REKEY_HOLD_MAX to at most %s", c.HoldMax, ceiling, c.HoldMax, ceiling)})
	}
	return out
}

// shortGrace says why a grace is short, or "" when none is: the grace
// floor (shortFloor), and REKEY_PRIVATE_SPACE_GRACE shorter than
// REKEY_GRACE (shortPrivateGrace).
func (c *Config) shortGrace() string {
	var parts []string
	for _, s := range []string{c.shortPrivateGrace(), c.shortFloor()} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "; ")
}

// shortPrivateGrace says when REKEY_PRIVATE_SPACE_GRACE is shorter than
// REKEY_GRACE, which no deployment means (a typo such as 4m for 4h): dynos
// in Private Spaces restart more slowly, and workers raise a grace below
// the floor to it without a word.
func (c *Config) shortPrivateGrace() string {
	if c.PrivateSpaceGrace >= c.Grace {
		return ""
	}
	floor := c.GraceFloor()
	msg := fmt.Sprintf("REKEY_PRIVATE_SPACE_GRACE (%s) is shorter than REKEY_GRACE (%s), though dynos in Private Spaces "+
		"restart more slowly: an old credential of an instance in a Private Space may be revoked %s after its rotation",
		c.PrivateSpaceGrace, c.Grace, max(c.PrivateSpaceGrace, floor))
	if c.PrivateSpaceGrace < floor {
		msg += fmt.Sprintf(" (workers raise it to the grace floor, %s)", floor)
	}
	return msg
}

// shortFloor says why the grace floor is short, or "" when it is not:
// REKEY_GRACE below REKEY_MIN_GRACE lowers the floor to itself (the
// documented contract of GraceFloor, which rekey dev and tests use), and
// a floor under ShortGraceFloor may revoke a credential an app still runs.
func (c *Config) shortFloor() string {
	floor := c.GraceFloor()
	var msg string
	switch {
	case c.Grace < c.MinGrace:
		msg = fmt.Sprintf("REKEY_GRACE (%s) is shorter than REKEY_MIN_GRACE (%s), so the grace floor is %s, not %s: "+
			"an old credential may be revoked %s after its rotation, by default and on request",
			c.Grace, c.MinGrace, floor, c.MinGrace, floor)
	case floor < ShortGraceFloor:
		msg = fmt.Sprintf("the grace floor is %s (REKEY_MIN_GRACE; REKEY_GRACE is %s): a rotation may ask for its "+
			"old credential to be revoked %s after it", floor, c.Grace, floor)
	default:
		return ""
	}
	if floor < ShortGraceFloor {
		msg += fmt.Sprintf("; Heroku takes minutes to restart an app's dynos, so a floor under %s may revoke "+
			"a credential an app still runs", ShortGraceFloor)
	}
	return msg
}

// ShortPeriodFloor is the rotation period under which Warnings warns even
// when it is longer than every grace: each scheduled rotation restarts an
// instance's apps, and credential policies rotate monthly or quarterly; a
// period of hours or days is most often one typed in minutes (2160m for
// 2160h).
const ShortPeriodFloor = 7 * 24 * time.Hour

// LongPeriodCeiling is the rotation period over which Warnings warns:
// credential policies rotate yearly at the least, and a period of years is
// most often one typed with a digit too many (21600h for 2160h), which
// leaves every credential in use that long.
const LongPeriodCeiling = 366 * 24 * time.Hour

// shortPeriod says when REKEY_ROTATION_PERIOD is shorter than a default
// grace, which no deployment means (a period typed in minutes for hours):
// every scheduled rotation restarts the instance's apps while the old
// credential of the one before still waits for revocation. Otherwise it
// says when the period is under ShortPeriodFloor, with the largest fleet
// whose scheduled rotations REKEY_HEROKU_RATE keeps up with (one push each).
func (c *Config) shortPeriod() string {
	if c.RotationPeriod == 0 {
		return ""
	}
	if c.RotationPeriod >= max(c.Grace, c.PrivateSpaceGrace) {
		if c.RotationPeriod >= ShortPeriodFloor {
			return ""
		}
		return fmt.Sprintf("REKEY_ROTATION_PERIOD (%s) is shorter than a week: every instance's apps restart every %s "+
			"for a scheduled rotation, and REKEY_HEROKU_RATE (%d calls an hour) keeps up with the scheduled rotations "+
			"of at most %d instances; the default, 2160h, is 90 days", c.RotationPeriod, c.RotationPeriod, c.HerokuRate,
			int64(float64(c.HerokuRate)*c.RotationPeriod.Hours()))
	}
	var longer []string
	if c.RotationPeriod < c.Grace {
		longer = append(longer, fmt.Sprintf("REKEY_GRACE (%s)", c.Grace))
	}
	if c.RotationPeriod < c.PrivateSpaceGrace {
		longer = append(longer, fmt.Sprintf("REKEY_PRIVATE_SPACE_GRACE (%s)", c.PrivateSpaceGrace))
	}
	msg := fmt.Sprintf("REKEY_ROTATION_PERIOD (%s) is shorter than %s: every %s a scheduled rotation restarts an "+
		"instance's apps before the old credential of its last rotation is revoked, so instances keep two old "+
		"credentials or more waiting", c.RotationPeriod, strings.Join(longer, " and "), c.RotationPeriod)
	if c.MaxPrevious > 0 {
		msg += fmt.Sprintf(", and their scheduled rotations are refused once %d wait (REKEY_MAX_PREVIOUS)", c.MaxPrevious)
	}
	return msg
}

// longGrace says when REKEY_GRACE or REKEY_PRIVATE_SPACE_GRACE is longer
// than REKEY_MAX_GRACE (as set, or its default), or "" when neither is:
// GraceCeiling raises the ceiling to it, so a typo (2000h for 200h) would
// keep old credentials valid for months and let requests ask as much.
func (c *Config) longGrace() string {
	var parts []string
	for _, g := range []struct {
		name string
		d    time.Duration
	}{{"REKEY_GRACE", c.Grace}, {"REKEY_PRIVATE_SPACE_GRACE", c.PrivateSpaceGrace}} {
		if g.d > c.MaxGrace {
			parts = append(parts, fmt.Sprintf("%s (%s)", g.name, g.d))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	ceiling, verb := c.GraceCeiling(), "is"
	if len(parts) > 1 {
		verb = "are"
	}
	return fmt.Sprintf("%s %s longer than REKEY_MAX_GRACE (%s), so the grace ceiling is %s: an old credential may "+
		"stay valid %s after its rotation, and a rotation request or an instance may ask for a grace that long; "+
		"set REKEY_MAX_GRACE to %s if that is meant", strings.Join(parts, " and "), verb, c.MaxGrace, ceiling, ceiling, ceiling)
}

// weakIssuerSecrets names REKEY_ISSUER_SECRET and
// REKEY_ISSUER_SECRET_PREVIOUS when set for the webhook issuer but shorter
// than MinIssuerSecretLen: while PREVIOUS is set, a request carries its
// signatures too, and a short one is guessed from them as well. It says
// no more: the detail names the variable and the bound, never the value
// or its length.
func (c *Config) weakIssuerSecrets() []string {
	if c.Issuer != IssuerHTTP {
		return nil
	}
	var out []string
	for _, v := range []struct {
		name  string
		value secret.String
	}{{"REKEY_ISSUER_SECRET", c.IssuerSecret}, {"REKEY_ISSUER_SECRET_PREVIOUS", c.IssuerSecretPrevious}} {
		if n := len(v.value.Reveal()); n > 0 && n < MinIssuerSecretLen {
			out = append(out, v.name)
		}
	}
	return out
}

// sharedSecrets lists the pairs of secret variables set to one value, by
// name: REKEY_DASHBOARD_PASSWORD equal to REKEY_API_TOKEN lets anyone with
// the monitoring password deprovision instances through the API, and a
// Heroku secret reused as REKEY_ISSUER_SECRET is handed to the issuer.
func (c *Config) sharedSecrets() [][2]string {
	vars := []struct {
		name  string
		value string
	}{
		{"REKEY_API_TOKEN", c.APIToken.Reveal()}, {"REKEY_API_TOKEN_PREVIOUS", c.APITokenPrevious.Reveal()},
		{"REKEY_DASHBOARD_PASSWORD", c.DashboardPassword.Reveal()},
		{"REKEY_ISSUER_SECRET", c.IssuerSecret.Reveal()}, {"REKEY_ISSUER_SECRET_PREVIOUS", c.IssuerSecretPrevious.Reveal()},
		{"HEROKU_SSO_SALT", c.SSOSalt.Reveal()},
		{"HEROKU_OAUTH_CLIENT_SECRET", c.OAuthClientSecret.Reveal()}, {"HEROKU_ADDON_PASSWORD", c.AddonPassword.Reveal()},
	}
	var out [][2]string
	for i, a := range vars {
		for _, b := range vars[i+1:] {
			if a.value != "" && a.value == b.value {
				out = append(out, [2]string{a.name, b.name})
			}
		}
	}
	return out
}

// postgresWithoutTLS names the PostgreSQL issuer's servers whose admin URL
// reaches another machine without requiring TLS (libpq's default, prefer,
// falls back to clear text). Only the ids: the URLs hold passwords.
func (c *Config) postgresWithoutTLS() []string {
	if c.Issuer != IssuerPostgres {
		return nil
	}
	var ids []string
	for _, s := range c.PostgresServers {
		u, err := url.Parse(s.AdminURL.Reveal())
		if err != nil || u.Hostname() == "" || issuer.IsLoopback(u.Hostname()) || strings.HasPrefix(u.Hostname(), "/") {
			continue
		}
		switch u.Query().Get("sslmode") {
		case "require", "verify-ca", "verify-full":
		default:
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// customerUncapped says what REKEY_CUSTOMER_ROTATIONS_PER_DAY=0 does, or ""
// when it is not 0: no daily cap (the documented contract), where an
// operator may have set 0 to switch the dashboard's button off, which no
// setting does.
func (c *Config) customerUncapped() string {
	if c.CustomerRotationsPerDay != 0 {
		return ""
	}
	msg := "REKEY_CUSTOMER_ROTATIONS_PER_DAY is 0, which means no daily cap: a customer may start any number of " +
		"rotations a day from the dashboard, each restarting their apps"
	if c.CustomerOnePerGrace {
		msg += ", one at a time while an old credential waits for revocation (REKEY_CUSTOMER_ONE_PER_GRACE)"
	}
	return msg + "; no setting switches the button off: 1 is the fewest, one rotation a day"
}
