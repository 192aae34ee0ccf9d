package herokufake

// Always answers every call to endpoint e with fault from now on, after
// any calls already scripted, until Clear(e): an account-level failure such
// as a suspended partner account (Respond(403) on every call) or a rotated
// OAuth client secret (Respond(401) on OAuthToken).
func (f *Fake) Always(e Endpoint, fault Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.always[e] = fault
}

// Clear ends Always(e): Heroku has recovered.
func (f *Fake) Clear(e Endpoint) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.always, e)
}
