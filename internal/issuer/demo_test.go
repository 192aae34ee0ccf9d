package issuer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
)

func TestDemoConcurrentMintOfOneRotationCreatesOne(t *testing.T) {
	t.Parallel()
	d := issuer.NewDemo()
	ids := make([]string, 16)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			c, err := d.Mint(context.Background(), "inst-1", "rot-1")
			if err != nil {
				t.Error(err)
			}
			ids[i] = c.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("one rotation gave ids %v", ids)
		}
	}
	if st := d.Stats(); st.Minted != 1 || st.MintCalls != 16 || st.MintedPerRotation["rot-1"] != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestDemoConfigVars(t *testing.T) {
	t.Parallel()
	d := issuer.NewDemo(issuer.WithConfigVars(func(string) []string { return []string{"MYADDON_URL", "MYADDON_READONLY_URL"} }))
	c, err := d.Mint(context.Background(), "inst-1", "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Config["MYADDON_URL"].Reveal(), c.Config["MYADDON_READONLY_URL"].Reveal()
	if len(c.Config) != 2 || a == b {
		t.Fatalf("config has %d vars, distinct %v", len(c.Config), a != b)
	}
	for _, v := range []string{a, b} {
		if id, ok := d.Lookup(v); !ok || id != c.ID {
			t.Errorf("Lookup = %q, %v; want %s", id, ok, c.ID)
		}
	}
}

func TestDemoBeforeRevokeSeesALiveCredential(t *testing.T) {
	t.Parallel()
	inUse := errors.New("credential still in the app's config")
	var published string // the value the "app" holds
	var d *issuer.Demo
	d = issuer.NewDemo(issuer.WithBeforeRevoke(func(instanceID string, c issuer.Credential) error {
		if !d.Valid(c.ID) {
			t.Errorf("hook saw %s already revoked", c.ID)
		}
		if c.Config[issuer.DefaultConfigVar].Reveal() == published {
			return inUse
		}
		return nil
	}))
	ctx := context.Background()
	c, _ := d.Mint(ctx, "inst-1", "rot-1")
	published = c.Config[issuer.DefaultConfigVar].Reveal()

	if err := d.Revoke(ctx, "inst-1", c.ID); !errors.Is(err, inUse) || !d.Valid(c.ID) {
		t.Fatalf("Revoke of the published credential = %v, valid %v", err, d.Valid(c.ID))
	}
	published = "something newer"
	if err := d.Revoke(ctx, "inst-1", c.ID); err != nil || d.Valid(c.ID) {
		t.Fatalf("Revoke = %v, valid %v", err, d.Valid(c.ID))
	}
}

func TestDemoRefusals(t *testing.T) {
	t.Parallel()
	d := issuer.NewDemo(issuer.WithRevokeFault(func(_, id string) error {
		if id == "cred_stuck" {
			return &issuer.Error{Op: "revoke", Status: 503}
		}
		return nil
	}))
	ctx := context.Background()
	c, _ := d.Mint(ctx, "inst-1", "rot-1")
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"revoke another instance's credential", d.Revoke(ctx, "inst-2", c.ID), "permanent"},
		{"verify another instance's credential", d.Verify(ctx, "inst-2", c.ID), "permanent"},
		{"revoke an unknown credential", d.Revoke(ctx, "inst-1", "cred_unknown"), "ok"},
		{"revoke fault", d.Revoke(ctx, "inst-1", "cred_stuck"), "transient"},
		{"empty rotation", mintErr(d.Mint(ctx, "inst-1", "")), "permanent"},
	}
	for _, tt := range tests {
		if got := outcome(tt.err); got != tt.want {
			t.Errorf("%s = %v (%s), want %s", tt.name, tt.err, got, tt.want)
		}
	}
	if !d.Valid(c.ID) {
		t.Error("a refused revoke revoked the credential")
	}
}

func mintErr(_ issuer.Credential, err error) error { return err }

// The server refuses any request whose signature does not match its body,
// method, path and time, before touching the Demo; WithV1Signatures checks
// the body and time only, as an issuer written before v2 does.
func TestDemoServerChecksSignatures(t *testing.T) {
	t.Parallel()
	body := []byte(`{"instance_id":"inst-1","rotation_id":"rot-1"}`)
	signed := func(b []byte) string { return issuer.SignRequest(key, now, http.MethodPost, "/credentials", b) }
	tests := []struct {
		name      string
		v1Only    bool
		body      []byte
		signature string
		want      int
	}{
		{"valid", false, body, signed(body), http.StatusCreated},
		{"tampered body", false, bytes.Replace(body, []byte("inst-1"), []byte("inst-2"), 1), signed(body), http.StatusUnauthorized},
		{"old timestamp", false, body, issuer.SignRequest(key, now.Add(-6*time.Minute), http.MethodPost, "/credentials", body), http.StatusUnauthorized},
		{"unsigned", false, body, "", http.StatusUnauthorized},
		{"no instance", false, []byte(`{}`), signed([]byte(`{}`)), http.StatusBadRequest},
		{"v1 only refused by a v2 server", false, body, issuer.Sign(key, now, body), http.StatusUnauthorized},
		{"signed for another path", false, body, issuer.SignRequest(key, now, http.MethodPost, "/credentials/x/verify", body), http.StatusUnauthorized},
		{"signed for another method", false, body, issuer.SignRequest(key, now, http.MethodDelete, "/credentials", body), http.StatusUnauthorized},
		{"v1 server, v1 and v2", true, body, signed(body), http.StatusCreated},
		{"v1 server, v1 only", true, body, issuer.Sign(key, now, body), http.StatusCreated},
		{"v1 server, tampered body", true, bytes.Replace(body, []byte("inst-1"), []byte("inst-2"), 1), signed(body), http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := issuer.NewDemo(issuer.WithDemoClock(func() time.Time { return now }))
			var opts []issuer.DemoServerOption
			if tt.v1Only {
				opts = append(opts, issuer.WithV1Signatures())
			}
			r := httptest.NewRequest(http.MethodPost, "/credentials", bytes.NewReader(tt.body))
			r.Header.Set(issuer.SignatureHeader, tt.signature)
			w := httptest.NewRecorder()
			issuer.NewDemoServer(d, key, opts...).ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Errorf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
			if wantCalls := map[bool]int{true: 1}[tt.want == http.StatusCreated]; d.Stats().MintCalls != wantCalls {
				t.Errorf("Demo saw %d mint calls, want %d", d.Stats().MintCalls, wantCalls)
			}
		})
	}
}

// A verify request captured on the wire, replayed as a DELETE, revokes
// nothing: a v2 server refuses its signature for the other method and
// path, and even a v1-only server refuses it for another credential, whose
// id is not the one in the signed body.
func TestDemoServerRefusesReplayedVerify(t *testing.T) {
	t.Parallel()
	for _, v1Only := range []bool{false, true} {
		t.Run(fmt.Sprintf("v1 only %v", v1Only), func(t *testing.T) {
			t.Parallel()
			d := issuer.NewDemo(issuer.WithDemoClock(func() time.Time { return now }))
			var opts []issuer.DemoServerOption
			if v1Only {
				opts = append(opts, issuer.WithV1Signatures())
			}
			srv := issuer.NewDemoServer(d, key, opts...)
			a, _ := d.Mint(context.Background(), "inst-1", "rot-a")
			b, _ := d.Mint(context.Background(), "inst-1", "rot-b")
			body := []byte(`{"instance_id":"inst-1","credential_id":"` + a.ID + `"}`)
			header := issuer.SignRequest(key, now, http.MethodPost, "/credentials/"+a.ID+"/verify", body)

			targets := []string{b.ID}
			if !v1Only { // v1 cannot tell a DELETE of a from a verify of a: the weakness v2 closes
				targets = append(targets, a.ID)
			}
			for _, id := range targets {
				r := httptest.NewRequest(http.MethodDelete, "/credentials/"+id, bytes.NewReader(body))
				r.Header.Set(issuer.SignatureHeader, header)
				w := httptest.NewRecorder()
				srv.ServeHTTP(w, r)
				if w.Code < 400 || !d.Valid(id) {
					t.Errorf("replay on DELETE %s: status %d, still valid %v", id, w.Code, d.Valid(id))
				}
			}
		})
	}
}

// No error or printed credential holds the signing key or a config value,
// even when the issuer's error body echoes a value.
func TestNothingPrintsSecrets(t *testing.T) {
	t.Parallel()
	d, h := demoIssuer(t)
	ctx := context.Background()
	c, err := h.Mint(ctx, "inst-1", "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	value := c.Config[issuer.DefaultConfigVar].Reveal()
	echo := &scripted{status: 500, body: "failed to connect with " + value}
	_, mintErr := scriptedIssuer(t, echo).Mint(ctx, "inst-1", "rot-1")
	unreachable, _ := issuer.NewHTTP("http://127.0.0.1:1", key)
	_, dialErr := unreachable.Mint(ctx, "inst-1", "rot-1")
	_ = d.Revoke(ctx, "inst-1", c.ID)

	outputs := []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)}
	for _, err := range []error{mintErr, dialErr, h.Verify(ctx, "inst-1", c.ID), h.Revoke(ctx, "inst-2", c.ID)} {
		if err == nil {
			t.Fatal("want an error")
		}
		outputs = append(outputs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
	}
	for _, out := range outputs {
		for _, sec := range []string{value, signingKey} {
			if strings.Contains(out, sec) {
				t.Errorf("output leaks a secret: %s", out)
			}
		}
	}
}
