package main

import (
	"context"
	"errors"
	"net"

	"github.com/spf13/cobra"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// newDemoIssuerCmd is `rekey demo-issuer`.
func newDemoIssuerCmd(env *environ) *cobra.Command {
	var addr string
	c := &cobra.Command{
		Use:   "demo-issuer",
		Short: "NOT FOR PRODUCTION: serve an in-memory demo credential issuer for running the Procfile locally",
		Long: `Serves the issuer webhook contract (README, "The issuer webhook") from an in-memory demo issuer
that accepts only requests signed with REKEY_ISSUER_SECRET, as the worker signs them. It is for
running the Procfile's processes locally (README, "Run the Procfile locally"); NOT FOR PRODUCTION:
its credentials grant nothing and are forgotten at exit.`,
		Example: `  REKEY_ISSUER_SECRET=local-issuer-secret rekey demo-issuer --addr 127.0.0.1:5002`,
		Args:    noArgs,
		RunE:    func(c *cobra.Command, _ []string) error { return runDemoIssuer(c.Context(), env, addr) },
	}
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:5002", "address to listen on; REKEY_ISSUER_URL is http://ADDR")
	return c
}

// runDemoIssuer serves the demo issuer on addr until ctx ends. It is not
// an issuer for production: its credentials are random strings that grant
// nothing, and they are forgotten at exit.
func runDemoIssuer(ctx context.Context, env *environ, addr string) error {
	if host, _, err := net.SplitHostPort(addr); err != nil || host == "" || net.ParseIP(host).IsUnspecified() {
		// An empty host, 0.0.0.0 or :: listens on every interface: a demo
		// issuer whose credentials grant nothing is still no service for
		// the network.
		return usagef("--addr %q is not HOST:PORT with one host, such as 127.0.0.1:5002", addr)
	}
	cfg, err := loadConfig(env)
	if err != nil {
		return err
	}
	if cfg.IssuerSecret.IsZero() {
		return errors.New("REKEY_ISSUER_SECRET must be set: the demo issuer accepts only requests signed with it, as the worker signs them")
	}
	log := newLogger(env, cfg, "demo-issuer", false)
	listening := func(bound net.Addr) {
		log.Warn().Str("addr", bound.String()).Str("detail", "a demo issuer for local runs, NOT FOR PRODUCTION: "+
			"its credentials grant nothing and are forgotten at exit").Msg("demo_issuer_listening")
	}
	// Revocations are logged (ids only) so a local run shows the end of each rotation.
	demo := issuer.NewDemo(issuer.WithBeforeRevoke(func(instanceID string, c issuer.Credential) error {
		log.Info().Str("instance_id", instanceID).Str("credential_id", c.ID).Msg("demo_issuer_revoking")
		return nil
	}))
	return serveAddr(ctx, log, "demo issuer", addr, issuer.NewDemoServer(demo, cfg.IssuerSecret), listening, "demo_issuer_stopping")
}
