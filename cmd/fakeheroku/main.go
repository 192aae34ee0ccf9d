// Command fakeheroku serves rekey's fake Heroku (internal/herokufake) on its
// own, so rekey can run against it from another process. Its base URL serves
// as both HEROKU_API_URL and HEROKU_ID_URL; add-ons and OAuth codes are made
// through the JSON endpoints under /_fake/.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/rekeyhq/rekey/internal/herokufake"
)

func main() {
	log := zerolog.New(os.Stderr).With().Timestamp().Str("service", "fakeheroku").Logger()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cmd, err := newRootCmd(log).ExecuteContextC(ctx)
	var u *usageError
	switch {
	case errors.As(err, &u):
		fmt.Fprintf(os.Stderr, "%s: %s (see '%s --help')\n", cmd.CommandPath(), u.msg, cmd.CommandPath())
		stop()
		os.Exit(2)
	case err != nil:
		log.Error().Err(err).Msg("fakeheroku_failed")
		stop()
		os.Exit(1)
	}
}

// usageError is a mistake in how fakeheroku was called (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// fakeFlags are fakeheroku's flags.
type fakeFlags struct {
	port                         string
	capacity, refill             int
	common, private              time.Duration
	manifestID, manifestPassword string
	clientSecret                 string
}

func newRootCmd(log zerolog.Logger) *cobra.Command {
	var f fakeFlags
	c := &cobra.Command{
		Use:   "fakeheroku",
		Short: "Serve rekey's fake Heroku, for tests and local runs (never production)",
		Long: `Serves rekey's fake Heroku (internal/herokufake) on its own, so rekey can run against it from
another process. Its base URL serves as both HEROKU_API_URL and HEROKU_ID_URL. Add-ons and OAuth
grant codes are made through its JSON endpoints under /_fake/ (see internal/herokufake).`,
		Example: `  fakeheroku --port 5001
  HEROKU_API_URL=http://localhost:5001 HEROKU_ID_URL=http://localhost:5001 rekey worker`,
		Version: version(),
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return &usageError{fmt.Sprintf("takes no arguments, got %q", args[0])}
			}
			return nil
		},
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(c *cobra.Command, _ []string) error {
			return run(c.Context(), f, log)
		},
	}
	c.SetVersionTemplate("fakeheroku {{.Version}}\n")
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err.Error()} })
	fl := c.Flags()
	fl.StringVar(&f.port, "port", envOr("PORT", "5001"), "TCP port to listen on (env PORT)")
	fl.IntVar(&f.capacity, "capacity", 4500, "rate-limit bucket capacity")
	fl.IntVar(&f.refill, "refill", 75, "rate-limit tokens refilled per minute")
	fl.DurationVar(&f.common, "restart-delay", 2*time.Second, "dyno restart delay in the Common Runtime")
	fl.DurationVar(&f.private, "private-restart-delay", 6*time.Second, "dyno restart delay in Private Spaces")
	fl.StringVar(&f.manifestID, "manifest-id", herokufake.DefaultManifestID, "V1 manifest id")
	fl.StringVar(&f.manifestPassword, "manifest-password", herokufake.DefaultManifestPassword, "V1 manifest password")
	fl.StringVar(&f.clientSecret, "client-secret", herokufake.DefaultClientSecret, "OAuth client secret")
	return c
}

func run(ctx context.Context, f fakeFlags, log zerolog.Logger) error {
	fake := herokufake.New(
		herokufake.WithBucket(f.capacity, f.refill, time.Minute),
		herokufake.WithRestartDelay(f.common, f.private),
		herokufake.WithV1Credentials(f.manifestID, f.manifestPassword),
		herokufake.WithOAuthClientSecret(f.clientSecret),
	)
	srv := &http.Server{Addr: net.JoinHostPort("", f.port), Handler: fake, ReadHeaderTimeout: 10 * time.Second}
	return serve(ctx, srv, log)
}

// serve runs srv until ctx ends, then lets calls in flight finish.
func serve(ctx context.Context, srv *http.Server, log zerolog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info().Str("addr", srv.Addr).Msg("fakeheroku_listening")
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	log.Info().Msg("fakeheroku_stopping")
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

// version is the module version and VCS commit from the build info.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			v += ", commit " + s.Value[:min(12, len(s.Value))]
		}
	}
	return v
}
