package sandbox

import (
	"context"
	"fmt"
	"sync"

	"github.com/rekeyhq/rekey/internal/herokufake"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/store"
)

// Sample is one provisioned sample instance.
type Sample struct {
	ID           string
	APIVersion   string
	PrivateSpace bool
	// App is the name of the app the add-on belongs to on the fake Heroku.
	App string
	// Provisioned is the id of the credential minted at provisioning.
	Provisioned string
}

// Mix says which sample instances use V1 and which run in a Private Space:
// instance i is V1 when V1Every > 0 and i%V1Every == V1Every-1, likewise
// for private spaces.
type Mix struct {
	V1Every      int
	PrivateEvery int
	// WithoutCurrentConfig registers the instances without current_config,
	// as versions of rekey before it did: each instance's first rotation
	// then reads its config from Heroku before minting (one call of the
	// budget). False sends it, as a partner does.
	WithoutCurrentConfig bool
}

// DefaultMix is mostly V3, one in seven V1, one in six in a Private Space.
var DefaultMix = Mix{V1Every: 7, PrivateEvery: 6}

// Provision creates n sample instances, numbered from first: each is
// provisioned on the fake Heroku with a credential minted by the demo
// issuer, then registered with rekey through reg (V3 grant codes are
// exchanged over HTTP, as the API does).
func (s *Sandbox) Provision(ctx context.Context, reg *registry.Registry, first, n int, mix Mix) ([]Sample, error) {
	out := make([]Sample, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i], errs[i] = s.provision(ctx, reg, first+i, mix)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		// Stopped: what failed, failed for that, and says nothing more.
		return out, fmt.Errorf("provisioning sample instances stopped: %w", err)
	}
	return out, errJoin(errs)
}

func (s *Sandbox) provision(ctx context.Context, reg *registry.Registry, i int, mix Mix) (Sample, error) {
	sm := Sample{ID: s.sampleID(i), APIVersion: store.APIv3,
		PrivateSpace: mix.PrivateEvery > 0 && i%mix.PrivateEvery == mix.PrivateEvery-1}
	if mix.V1Every > 0 && i%mix.V1Every == mix.V1Every-1 {
		sm.APIVersion = store.APIv1
	}
	cred, err := s.Demo.Mint(ctx, sm.ID, "provision")
	if err != nil {
		return sm, fmt.Errorf("mint provisioning credential of %s: %w", sm.ID, err)
	}
	sm.Provisioned = cred.ID
	sm.App = fmt.Sprintf("app-%d", i)
	spec := herokufake.AddonSpec{ID: sm.ID, Name: fmt.Sprintf("myaddon-%d", i), App: sm.App, PrivateSpace: sm.PrivateSpace,
		ConfigVars: []string{issuer.DefaultConfigVar}, InitialConfig: map[string]string{}}
	for name, v := range cred.Config {
		spec.InitialConfig[name] = v.Reveal()
	}
	if i%3 == 0 {
		spec.AttachedApps = []string{fmt.Sprintf("app-%d-staging", i)}
	}
	// The provisioning's config goes with its credential, as a partner
	// sends it: rekey learns its fingerprint from it, not from Heroku.
	in := registry.Input{ID: sm.ID, APIVersion: sm.APIVersion, ConfigVars: spec.ConfigVars,
		PrivateSpace: sm.PrivateSpace, CurrentCredentialID: cred.ID, CurrentConfig: cred.Config}
	if mix.WithoutCurrentConfig {
		in.CurrentConfig = nil
	}
	if sm.APIVersion == store.APIv1 {
		spec.HerokuID = fmt.Sprintf("app%d@heroku.com", i)
		in.HerokuID = spec.HerokuID
	}
	if err := s.Fake.AddAddon(spec); err != nil {
		return sm, err
	}
	// Heroku sends the app's log_input_url with every provisioning request.
	in.LogInputURL = secretOf(s.Fake.LogInputURL(s.HerokuURL, sm.ID))
	if sm.APIVersion == store.APIv3 {
		in.OAuthGrant = &registry.Grant{Code: secretOf(s.Fake.GrantCode(sm.ID))}
	}
	return sm, reg.Put(ctx, in)
}

// sampleID is sample i's add-on id (Params.SampleID).
func (s *Sandbox) sampleID(i int) string {
	if s.nameSample != nil {
		return s.nameSample(i)
	}
	return fmt.Sprintf("a0de0000-0000-4000-8000-%012d", i)
}
