package handlers_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// foldingIssuer is a webhook issuer whose credential ids ignore case (a
// case-insensitive column, UUIDs written in upper case on one path and in
// lower case on another). A credential may hold several secrets; its
// DELETE removes them all. Once reuse names a credential of an instance,
// the instance's next mint adds a secret to that credential and answers
// its id written by caseOf, with an empty config when empty is set.
type foldingIssuer struct {
	mu      sync.Mutex
	secrets map[string][]string // by lower-case id
	reuse   map[string]string
	caseOf  func(string) string
	empty   bool
}

func (c *foldingIssuer) mint(instanceID, rotationID string) (id, url string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b [12]byte
	_, _ = rand.Read(b[:])
	pw := hex.EncodeToString(b[:])
	id = "cred-" + rotationID
	if old, ok := c.reuse[instanceID]; ok {
		id = c.caseOf(old)
	}
	c.secrets[strings.ToLower(id)] = append(c.secrets[strings.ToLower(id)], pw)
	return id, "postgres://u:" + pw + "@db.example.com/d"
}

// works reports whether a URL's secret still opens anything at the issuer.
func (c *foldingIssuer) works(url string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, pws := range c.secrets {
		for _, pw := range pws {
			if strings.Contains(url, ":"+pw+"@") {
				return true
			}
		}
	}
	return false
}

func (c *foldingIssuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		InstanceID string `json:"instance_id"`
		RotationID string `json:"rotation_id"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	w.Header().Set("Content-Type", "application/json")
	path := strings.TrimPrefix(r.URL.Path, "/credentials")
	switch {
	case r.Method == http.MethodPost && path == "":
		c.mu.Lock()
		_, reusing := c.reuse[body.InstanceID]
		empty := reusing && c.empty
		c.mu.Unlock()
		id, url := c.mint(body.InstanceID, body.RotationID)
		config := map[string]string{issuer.DefaultConfigVar: url}
		if empty {
			config = map[string]string{}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"credential_id": id, "config": config})
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/verify"):
		c.mu.Lock()
		_, ok := c.secrets[strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(path, "/"), "/verify"))]
		c.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"unknown_credential"}`))
			return
		}
		_, _ = w.Write([]byte(`{}`))
	case r.Method == http.MethodDelete:
		c.mu.Lock()
		delete(c.secrets, strings.ToLower(strings.TrimPrefix(path, "/")))
		c.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":"not_supported"}`))
	}
}

// An issuer whose ids ignore case answers a mint with the id of the
// instance's current credential in another case ("CRED-ROT-1" for
// "cred-rot-1"), a new secret added to it. Recorded as a credential of its
// own, it was pushed and promoted, and the revocation of "cred-rot-1"
// after the grace revoked the credential the apps ran on; with an empty
// config, it was discarded and its revocation did that at once (I1). It is
// refused as a reused id, as the same id written alike is: nothing is
// recorded or revoked under it, and the apps keep a working credential.
func TestAnIdInAnotherCaseIsAReusedId(t *testing.T) {
	for _, tc := range []struct {
		name   string
		caseOf func(string) string
		empty  bool
	}{
		{"another case", strings.ToUpper, false},
		{"another case, unusable answer", strings.ToUpper, true},
		{"the same case", func(s string) string { return s }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			g := newRig(t)
			iss := &foldingIssuer{secrets: map[string][]string{}, reuse: map[string]string{}, caseOf: tc.caseOf, empty: tc.empty}
			srv := httptest.NewServer(iss)
			t.Cleanup(srv.Close)
			h, err := issuer.NewHTTP(srv.URL, secret.New("issuer-signing-secret-0123456789"))
			if err != nil {
				t.Fatal(err)
			}
			g.deps.Issuer = h
			const id = "inst-ci"
			provID, provURL := iss.mint(id, "provision")
			if err := g.fake.AddAddon(herokufake.AddonSpec{ID: id, App: "app-" + id, ConfigVars: []string{issuer.DefaultConfigVar},
				InitialConfig: map[string]string{issuer.DefaultConfigVar: provURL}}); err != nil {
				t.Fatal(err)
			}
			if err := g.reg.Put(ctx, registry.Input{ID: id, APIVersion: store.APIv3, ConfigVars: []string{issuer.DefaultConfigVar},
				CurrentCredentialID: provID, CurrentConfig: map[string]secret.String{issuer.DefaultConfigVar: secret.New(provURL)},
				OAuthGrant: &registry.Grant{Code: secret.New(g.fake.GrantCode(id))}}); err != nil {
				t.Fatal(err)
			}
			if err := g.run(rotateTask(t, id, "rot-1")); err != nil {
				t.Fatal(err)
			}
			iss.mu.Lock()
			iss.reuse[id] = "cred-rot-1"
			iss.mu.Unlock()
			err = g.run(rotateTask(t, id, "rot-2"))
			r, _ := g.st.Rotation(ctx, "rot-2")
			if !isPermanent(err) || r.State != store.RotationFailed || !strings.Contains(r.Error, "reused") {
				t.Errorf("rot-2: %v, %s (%s); want it failed at mint as a reused id", err, r.State, r.Error)
			}
			if _, err := g.st.Credential(ctx, id, tc.caseOf("cred-rot-1")); tc.caseOf("cred-rot-1") != "cred-rot-1" && err == nil {
				t.Errorf("a credential is recorded under %s", tc.caseOf("cred-rot-1"))
			}
			// Every revocation there is runs, as it would once due: the
			// grace is over, and a credential discarded at once has its
			// revoke task from the reconcile sweep.
			g.later.Store(int64(grace + time.Minute))
			for _, cred := range []string{provID, "cred-rot-1", tc.caseOf("cred-rot-1")} {
				task := g.enq.get(tasks.RevokeTaskID(id, cred))
				if c, err := g.st.Credential(ctx, id, cred); task == nil && err == nil && c.State == store.CredentialDiscarded {
					task, _ = tasks.NewRevokeTask(tasks.RevokePayload{InstanceID: id, CredentialID: cred}, time.Now())
				}
				if task != nil {
					_ = g.run(task)
				}
			}
			if in, _ := g.st.Instance(ctx, id); in.CurrentCredential != "cred-rot-1" || !iss.works(g.fake.Config(id)[issuer.DefaultConfigVar]) {
				t.Errorf("current %s; the config Heroku holds works at the issuer: %v; want cred-rot-1, working",
					in.CurrentCredential, iss.works(g.fake.Config(id)[issuer.DefaultConfigVar]))
			}
		})
	}
}
