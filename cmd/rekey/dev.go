package main

import (
	"net"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/rekeyhq/rekey/internal/devstack"
)

// newDevCmd is `rekey dev`: it parses the flags; internal/devstack does
// the rest (runDevStack).
func newDevCmd(env *environ) *cobra.Command {
	var o devstack.Options
	c := &cobra.Command{
		Use:         "dev",
		Annotations: serves,
		Short:       "Run rekey on an embedded Redis, a fake Heroku and a demo issuer",
		Long: `Runs everything in one process, on fakes: an embedded Redis (unless REDIS_URL is set), a faithful
fake of Heroku's APIs and a demo issuer. It provisions sample instances with random ids, rotates them
all as one batch, checks the safety invariants as the fakes see them, and prints a summary. Without
--once it also serves the web process and prints, once, the dashboard login link, /monitoring,
/metrics and the HTTP API with its token and a curl line. With REDIS_URL set it refuses a database
holding anything but an earlier rekey dev run's data, unless --allow-foreign-redis, and one where
asynq servers of other processes (real workers, another rekey dev) poll rekey's queues, or, with
--allow-foreign-redis, where rekey's queues hold tasks, unless --allow-live-workers: dev's workers
would take their tasks. Nothing here is for production.`,
		Example: `  rekey dev
  rekey dev --once --instances 50
  rekey dev --grace 20s --restart-delay 2s --web-addr 127.0.0.1:8080
  rekey dev --once --issuer postgres --instances 5`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if o.Instances < 1 || o.Instances > maxDevInstances {
				return usagef("--instances must be 1 to %d", maxDevInstances)
			}
			if err := checkDevDurations(o); err != nil {
				return err
			}
			if err := checkDevModeFlags(c, o); err != nil {
				return err
			}
			if o.Issuer != "demo" && o.Issuer != "postgres" {
				return usagef("--issuer must be demo or postgres")
			}
			return runDevStack(c.Context(), env, o)
		},
	}
	fl := c.Flags()
	fl.BoolVar(&o.Once, "once", false, "exit when every old credential is revoked (0 when all went well); serve no web process")
	fl.IntVar(&o.Instances, "instances", 20, "sample instances to provision and rotate")
	fl.DurationVar(&o.Grace, "grace", 30*time.Second, "grace period before old credentials are revoked: at least 1s and more than twice --restart-delay")
	fl.DurationVar(&o.RestartDelay, "restart-delay", 3*time.Second, "simulated dyno restart delay (twice as long in Private Spaces)")
	fl.DurationVar(&o.Timeout, "timeout", 0, "with --once, give up after this long (default: at least 2m, more for more --instances or a longer --grace; 2m19s for the defaults)")
	fl.StringVar(&o.WebAddr, "web-addr", "127.0.0.1:5000", "without --once, where the web process listens (port 0: any free port)")
	fl.StringVar(&o.Issuer, "issuer", "demo", "demo (the demo webhook issuer) or postgres (login roles of a local PostgreSQL, REKEY_DEV_POSTGRES_URL)")
	fl.BoolVar(&o.AllowForeignRedis, "allow-foreign-redis", false, "run on a REDIS_URL that holds data rekey dev did not write (never next to real workers)")
	fl.BoolVar(&o.AllowLiveWorkers, "allow-live-workers", false, "run on a REDIS_URL where other processes' workers poll rekey's queues (they and dev's workers would take each other's tasks)")
	return c
}

// checkDevModeFlags refuses a flag that the run's mode would ignore:
// --web-addr with --once, which serves no web process, and --timeout
// without it, which runs until Ctrl-C; a --timeout the run could never
// finish within; and a --web-addr that names no host and port.
func checkDevModeFlags(c *cobra.Command, o devstack.Options) error {
	switch {
	case o.Once && c.Flags().Changed("web-addr"):
		return usagef("--web-addr does nothing with --once, which serves no web process")
	case !o.Once && c.Flags().Changed("timeout"):
		return usagef("--timeout bounds a run with --once; without it rekey dev runs until Ctrl-C")
	case o.Timeout > 0 && o.Timeout <= o.Grace:
		// The run ends once every old credential is revoked, which is
		// after the grace: it would give up every time, having rotated.
		return usagef("--timeout %s is no longer than --grace %s: a run with --once ends once every old credential "+
			"is revoked, after the grace, so it could never finish; give --timeout more than the grace, or leave it "+
			"out for a timeout that fits the run", o.Timeout, o.Grace)
	case !o.Once:
		// Checked before anything starts: a web address the listener
		// refuses would end the run only after the instances are
		// provisioned and rotating.
		if _, port, err := net.SplitHostPort(o.WebAddr); err != nil {
			return usagef("--web-addr %q: %v (write host:port, as 127.0.0.1:5000, or :0 for any free port)", o.WebAddr, err)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return usagef("--web-addr %q: port %q is no port number (0 to 65535)", o.WebAddr, port)
		}
	}
	return nil
}

// maxDevInstances bounds --instances: rekey dev holds every sample
// instance's fake add-on, app and demo credentials in memory, and a typo's
// extra zeros would exhaust a laptop.
const maxDevInstances = 10000

// checkDevDurations refuses a grace the run cannot use, as one usage error
// about the flag: rekey dev passes --grace on as REKEY_GRACE,
// REKEY_MIN_GRACE and REKEY_PRIVATE_SPACE_GRACE, which must be at least
// 1s, and a dyno must restart (twice --restart-delay in a Private Space)
// before its old credential is revoked. --grace 0 is refused, not taken
// for the default.
func checkDevDurations(o devstack.Options) error {
	switch {
	case o.RestartDelay <= 0:
		return usagef("--restart-delay must be positive, got %s", o.RestartDelay)
	case o.Timeout < 0:
		return usagef("--timeout must not be negative, got %s", o.Timeout)
	case o.Grace < time.Second || o.Grace <= 2*o.RestartDelay:
		return usagef("--grace must be at least 1s and more than twice --restart-delay (over %s with --restart-delay %s), got %s",
			2*o.RestartDelay, o.RestartDelay, o.Grace)
	}
	return nil
}
