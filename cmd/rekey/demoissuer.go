package main

import (
	"context"
	"errors"
	"flag"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// demoIssuerSummary is `rekey demo-issuer`'s line in the command list.
const demoIssuerSummary = "NOT FOR PRODUCTION: serve an in-memory demo credential issuer for running the Procfile locally"

// runDemoIssuer serves the issuer webhook contract (README, "Issuer
// webhook") from an in-memory demo issuer, checking the signatures the
// worker makes with REKEY_ISSUER_SECRET, so the Procfile's processes can
// run locally (README, "Run the Procfile locally"). It is not an issuer
// for production: its credentials are random strings that grant nothing,
// and they are forgotten at exit.
func runDemoIssuer(ctx context.Context, env *environ, args []string) error {
	fs := flag.NewFlagSet("demo-issuer", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	addr := fs.String("addr", "127.0.0.1:5002", "address to listen on; REKEY_ISSUER_URL is http://ADDR")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return errUsage
	}
	cfg, err := loadConfig(env)
	if err != nil {
		return err
	}
	if cfg.IssuerSecret.IsZero() {
		return errors.New("REKEY_ISSUER_SECRET must be set: the demo issuer accepts only requests signed with it, as the worker signs them")
	}
	log := newLogger(env, cfg, "demo-issuer", false)
	log.Warn().Str("addr", *addr).Str("detail", "a demo issuer for local runs, NOT FOR PRODUCTION: "+
		"its credentials grant nothing and are forgotten at exit").Msg("demo_issuer_listening")
	// Revocations are logged (ids only) so a local run shows the end of each rotation.
	demo := issuer.NewDemo(issuer.WithBeforeRevoke(func(instanceID string, c issuer.Credential) error {
		log.Info().Str("instance_id", instanceID).Str("credential_id", c.ID).Msg("demo_issuer_revoking")
		return nil
	}))
	return serveAddr(ctx, log, *addr, issuer.NewDemoServer(demo, cfg.IssuerSecret), "demo_issuer_stopping")
}
