package main

import (
	"context"
	"fmt"
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
