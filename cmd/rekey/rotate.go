package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/tasks"
)

func runRotate(ctx context.Context, env *environ, args []string) error {
	fs := flag.NewFlagSet("rotate", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	reason := fs.String("reason", "operator request", "why, for the audit trail")
	grace := fs.Duration("grace", 0, "grace period before old credentials are revoked (0: each instance's)")
	queue := fs.String("queue", "", "queue: interactive, default or bulk (default: interactive for one instance, else default)")
	skipGrace := fs.Bool("skip-if-previous", false, "skip instances whose previous credential still waits for revocation")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	ids := fs.Args()
	if len(ids) == 0 {
		return fmt.Errorf("name at least one instance id: %w", errUsage)
	}
	if *queue != "" && *queue != tasks.QueueInteractive && *queue != tasks.QueueDefault && *queue != tasks.QueueBulk {
		return fmt.Errorf("--queue %q: use interactive, default or bulk", *queue)
	}
	cfg, err := loadConfig(env)
	if err != nil {
		return err
	}
	if err := cfg.RequireProducer(); err != nil {
		return err
	}
	a, err := openApp(ctx, cfg, newLogger(env, cfg, "rotate", true))
	if err != nil {
		return err
	}
	defer a.Close()
	start := time.Now()
	res, err := fleet.NewProducer(a.store, a.queue).Rotate(ctx, fleet.Request{InstanceIDs: ids,
		Reason: *reason, Grace: *grace, Queue: *queue, SkipIfPrevious: *skipGrace})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "batch %s: %d enqueued, %d joined a rotation in flight, %d skipped (%s)\n",
		res.BatchID, res.Enqueued, res.Joined, res.Skipped, time.Since(start).Round(time.Millisecond))
	return nil
}
