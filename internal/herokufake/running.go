package herokufake

import "maps"

// RunningConfig returns the add-on's config as the app's dynos run it now
// (the newest release ready by the fake's clock), or nil when the app does
// not run one: what a simulated app process would read from its
// environment.
func (f *Fake) RunningConfig(appName, addonID string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ap, ok := f.apps[appName]
	if !ok {
		return nil
	}
	r := ap.running(f.now())
	if r == nil {
		return nil
	}
	return maps.Clone(r.env[addonID])
}
