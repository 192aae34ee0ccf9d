package ratelimit

// Pending counts the budgets l still dispatches and the callers queued on
// them, so tests can prove that nothing is left behind.
func Pending(l *Limiter) (buckets, waiters int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.buckets {
		buckets++
		for c := range b.queues {
			waiters += b.queues[c].Len()
		}
	}
	return buckets, waiters
}

// HoldKey is the Redis key of the pause of the budget addonID draws on.
func HoldKey(s Scope, addonID string) string {
	k, _ := keysFor(s, addonID)
	return k.hold
}
