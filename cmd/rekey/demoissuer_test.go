package main

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/secret"
)

func TestDemoIssuerServesTheSignedContract(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	stderr := &syncBuffer{}
	env := &environ{lookup: func(k string) (string, bool) {
		v, ok := map[string]string{"REKEY_ISSUER_SECRET": "local-issuer-secret"}[k]
		return v, ok
	}, stdout: &syncBuffer{}, stderr: stderr}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runDemoIssuer(ctx, env, addr) }()

	signed, err := issuer.NewHTTP("http://"+addr, secret.New("local-issuer-secret"))
	if err != nil {
		t.Fatal(err)
	}
	var cred issuer.Credential
	deadline := time.Now().Add(30 * time.Second)
	for cred, err = signed.Mint(ctx, "inst-1", "rot-1"); err != nil && time.Now().Before(deadline); cred, err = signed.Mint(ctx, "inst-1", "rot-1") {
		time.Sleep(100 * time.Millisecond) // the listener is not up yet
	}
	if err != nil || cred.ID == "" || len(cred.Config) != 1 {
		t.Fatalf("mint: %+v, %v", cred, err)
	}
	if err := signed.Revoke(ctx, "inst-1", cred.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	forged, _ := issuer.NewHTTP("http://"+addr, secret.New("another-secret"))
	if _, err := forged.Mint(ctx, "inst-1", "rot-2"); err == nil {
		t.Fatal("a request signed with another secret was served")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NOT FOR PRODUCTION", "demo_issuer_revoking"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, stderr)
		}
	}
}

func TestDemoIssuerNeedsTheSecret(t *testing.T) {
	env := &environ{lookup: func(string) (string, bool) { return "", false }, stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	err := runDemoIssuer(context.Background(), env, "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "REKEY_ISSUER_SECRET must be set") {
		t.Fatalf("err = %v", err)
	}
}

// An --addr without a host, or with 0.0.0.0 or ::, would listen on every
// interface, and is refused; one with port 0 listens on a port the system picks, which the
// log line names.
func TestDemoIssuerListensWhereItSays(t *testing.T) {
	env := &environ{lookup: func(k string) (string, bool) {
		v, ok := map[string]string{"REKEY_ISSUER_SECRET": "local-issuer-secret"}[k]
		return v, ok
	}, stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	for _, addr := range []string{"", ":5002", "5002", "0.0.0.0:5002", "[::]:5002"} {
		if err := runDemoIssuer(context.Background(), env, addr); !isUsage(err) {
			t.Errorf("--addr %q: %v, want a usage error", addr, err)
		}
	}
	stderr := &syncBuffer{}
	env.stderr = stderr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runDemoIssuer(ctx, env, "127.0.0.1:0") }()
	re := regexp.MustCompile(`"addr":"127\.0\.0\.1:([0-9]+)"`)
	deadline := time.Now().Add(30 * time.Second)
	for re.FindStringSubmatch(stderr.String()) == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	m := re.FindStringSubmatch(stderr.String())
	if m == nil || m[1] == "0" {
		cancel()
		t.Fatalf("no bound port in the log:\n%s", stderr)
	}
	conn, err := net.Dial("tcp", "127.0.0.1:"+m[1])
	if err != nil {
		t.Errorf("the port the log names takes no connection: %v", err)
	} else {
		_ = conn.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
