// Command fakeheroku serves rekey's fake Heroku (internal/herokufake) on its
// own, so rekey can run against it from another process. Its base URL serves
// as both HEROKU_API_URL and HEROKU_ID_URL; add-ons and OAuth codes are made
// through the JSON endpoints under /_fake/.
package main

import (
	"context"
	"errors"
	"flag"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/herokufake"
)

func main() {
	log := zerolog.New(os.Stderr).With().Timestamp().Str("service", "fakeheroku").Logger()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], log); err != nil {
		log.Error().Err(err).Msg("fakeheroku_failed")
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, log zerolog.Logger) error {
	fs := flag.NewFlagSet("fakeheroku", flag.ContinueOnError)
	port := fs.String("port", envOr("PORT", "5001"), "TCP port to listen on (env PORT)")
	capacity := fs.Int("capacity", 4500, "rate-limit bucket capacity")
	refill := fs.Int("refill", 75, "rate-limit tokens refilled per minute")
	common := fs.Duration("restart-delay", 2*time.Second, "dyno restart delay in the Common Runtime")
	private := fs.Duration("private-restart-delay", 6*time.Second, "dyno restart delay in Private Spaces")
	manifestID := fs.String("manifest-id", herokufake.DefaultManifestID, "V1 manifest id")
	manifestPass := fs.String("manifest-password", herokufake.DefaultManifestPassword, "V1 manifest password")
	clientSecret := fs.String("client-secret", herokufake.DefaultClientSecret, "OAuth client secret")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fake := herokufake.New(
		herokufake.WithBucket(*capacity, *refill, time.Minute),
		herokufake.WithRestartDelay(*common, *private),
		herokufake.WithV1Credentials(*manifestID, *manifestPass),
		herokufake.WithOAuthClientSecret(*clientSecret),
	)
	srv := &http.Server{Addr: net.JoinHostPort("", *port), Handler: fake, ReadHeaderTimeout: 10 * time.Second}
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
