package herokufake

import (
	"maps"
	"slices"
	"time"
)

// Release is one release of an app, made by a config change of an add-on
// attached to it.
type Release struct {
	Version int
	At      time.Time // when Heroku made the release
	ReadyAt time.Time // when the app's dynos run it
	AddonID string    // the add-on whose change made it
	Changed []string  // the config var names it set or removed
}

// app is one Heroku app with its releases. Its dynos all restart at the same
// moment, so one running release stands for all of them.
type app struct {
	name     string
	id       string
	private  bool
	addons   []string // IDs of the live add-ons attached to it
	releases []release
}

// release is a Release plus the add-on configs it runs, by add-on ID. The
// configs are shared and never changed in place.
type release struct {
	Release
	env map[string]map[string]string
}

// attach adds a's apps, if new, and attaches a to each, releasing the apps
// that already ran. The caller holds f.mu.
func (f *Fake) attach(a *addon) {
	for _, name := range a.apps() {
		ap, ok := f.apps[name]
		if !ok {
			ap = &app{name: name, id: newUUID()}
			f.apps[name] = ap
		}
		ap.private = ap.private || a.spec.PrivateSpace
		ap.addons = append(ap.addons, a.spec.ID)
		f.releaseApp(ap, a.spec.ID, slices.Sorted(maps.Keys(a.config)))
	}
}

// detach removes a from its apps in one release each. The caller holds f.mu.
func (f *Fake) detach(a *addon) {
	for _, name := range a.apps() {
		ap := f.apps[name]
		ap.addons = slices.DeleteFunc(ap.addons, func(id string) bool { return id == a.spec.ID })
		f.releaseApp(ap, a.spec.ID, slices.Sorted(maps.Keys(a.config)))
	}
}

// release records a's config change on each of its apps. The caller holds f.mu.
func (f *Fake) release(a *addon, changed []string) {
	for _, name := range a.apps() {
		f.releaseApp(f.apps[name], a.spec.ID, changed)
	}
}

// releaseApp appends a release of ap's current add-on configs. An app's first
// release runs at once, as if it had been deployed with it.
func (f *Fake) releaseApp(ap *app, addonID string, changed []string) {
	now := f.now()
	ready := now.Add(f.delay(ap))
	if len(ap.releases) == 0 {
		ready = now
	}
	env := map[string]map[string]string{}
	for _, id := range ap.addons {
		env[id] = f.addons[id].config
	}
	r := Release{Version: len(ap.releases) + 1, At: now, ReadyAt: ready, AddonID: addonID, Changed: changed}
	ap.releases = append(ap.releases, release{Release: r, env: env})
}

func (f *Fake) delay(ap *app) time.Duration {
	if ap.private {
		return f.set.privateDelay
	}
	return f.set.commonDelay
}

// running returns the release ap's dynos run at t: the newest one ready by t.
func (ap *app) running(t time.Time) *release {
	for i := len(ap.releases) - 1; i >= 0; i-- {
		if !ap.releases[i].ReadyAt.After(t) {
			return &ap.releases[i]
		}
	}
	return nil
}

// Releases returns the app's releases, oldest first, or nil for an unknown app.
func (f *Fake) Releases(appName string) []Release {
	f.mu.Lock()
	defer f.mu.Unlock()
	ap, ok := f.apps[appName]
	if !ok {
		return nil
	}
	out := make([]Release, len(ap.releases))
	for i, r := range ap.releases {
		out[i] = r.Release
		out[i].Changed = slices.Clone(r.Changed)
	}
	return out
}

// Holders counts who uses a config value now.
type Holders struct {
	Configs int // live add-ons whose config holds the value under the name
	Dynos   int // dynos whose running release holds it
}

// Holders reports how many add-on configs hold value under name and how many
// dynos run with it at the fake's current time. A credential may be revoked
// only when both are zero.
func (f *Fake) Holders(name, value string) Holders {
	f.mu.Lock()
	defer f.mu.Unlock()
	var h Holders
	for _, a := range f.addons {
		if v, ok := a.config[name]; ok && v == value && !a.deprovisioned {
			h.Configs++
		}
	}
	now := f.now()
	for _, ap := range f.apps {
		if r := ap.running(now); r != nil && holds(r.env, name, value) {
			h.Dynos += f.set.dynos
		}
	}
	return h
}

func holds(env map[string]map[string]string, name, value string) bool {
	for _, config := range env {
		if v, ok := config[name]; ok && v == value {
			return true
		}
	}
	return false
}

// SettledAt returns when every dyno of every app will run its app's newest
// release, by the fake's clock.
func (f *Fake) SettledAt() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	var t time.Time
	for _, ap := range f.apps {
		if n := len(ap.releases); n > 0 && ap.releases[n-1].ReadyAt.After(t) {
			t = ap.releases[n-1].ReadyAt
		}
	}
	return t
}

// Settled reports whether every dyno runs its app's newest release now.
func (f *Fake) Settled() bool {
	return !f.SettledAt().After(f.now())
}
