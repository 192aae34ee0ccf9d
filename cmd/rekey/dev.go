package main

import (
	"context"
	"flag"
	"time"

	"github.com/rekeyhq/rekey/internal/devstack"
)

// runDev parses `rekey dev`'s flags; internal/devstack does the rest.
func runDev(ctx context.Context, env *environ, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	var o devstack.Options
	fs.BoolVar(&o.Once, "once", false, "exit when every old credential is revoked (0 when all went well); serve no web process")
	fs.IntVar(&o.Instances, "instances", 20, "sample instances to provision and rotate")
	fs.DurationVar(&o.Grace, "grace", 30*time.Second, "grace period before old credentials are revoked")
	fs.DurationVar(&o.RestartDelay, "restart-delay", 3*time.Second, "simulated dyno restart delay (twice as long in Private Spaces)")
	fs.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "with --once, give up after this long")
	fs.StringVar(&o.WebAddr, "web-addr", "127.0.0.1:5000", "without --once, where the web process listens (port 0: any free port)")
	fs.BoolVar(&o.AllowForeignRedis, "allow-foreign-redis", false, "run on a REDIS_URL that holds data rekey dev did not write (never do this next to real workers)")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || o.Instances < 1 {
		return errUsage
	}
	return runDevStack(ctx, env, o)
}
