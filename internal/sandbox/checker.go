package sandbox

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// Checker looks at every credential the moment before the demo issuer
// revokes it, and records a violation when
//   - an add-on's config on Heroku still holds it (I1),
//   - a simulated dyno still runs with it (the grace was too short), or
//   - it is a previous credential whose revoke time has not come (I2).
//
// It is safe for concurrent use.
type Checker struct {
	fake *herokufake.Fake

	mu         sync.Mutex
	store      *store.Store
	violations []string
	revoked    int
}

func newChecker(f *herokufake.Fake) *Checker { return &Checker{fake: f} }

// UseStore lets the checker read revoke times (I2).
func (c *Checker) UseStore(st *store.Store) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.store = st
}

// Violations returns every violation seen so far.
func (c *Checker) Violations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.violations...)
}

// Checked returns how many revocations were checked.
func (c *Checker) Checked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.revoked
}

func (c *Checker) beforeRevoke(instanceID string, cred issuer.Credential) error {
	var found []string
	for name, v := range cred.Config {
		h := c.fake.Holders(name, v.Reveal())
		if h.Configs > 0 {
			found = append(found, fmt.Sprintf("I1: credential %s of %s revoked while %d add-on config(s) hold it", cred.ID, instanceID, h.Configs))
		}
		if h.Dynos > 0 {
			found = append(found, fmt.Sprintf("dyno: credential %s of %s revoked while %d dyno(s) run with it", cred.ID, instanceID, h.Dynos))
		}
	}
	c.mu.Lock()
	st := c.store
	c.mu.Unlock()
	if st != nil {
		stored, err := st.Credential(context.Background(), instanceID, cred.ID)
		if err == nil && stored.State == store.CredentialPrevious && time.Now().Before(stored.RevokeAt) {
			found = append(found, fmt.Sprintf("I2: credential %s of %s revoked %s before its revoke_at", cred.ID, instanceID, time.Until(stored.RevokeAt).Round(time.Millisecond)))
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.revoked++
	c.violations = append(c.violations, found...)
	return nil
}

func secretOf(s string) secret.String { return secret.New(s) }
