package pgissuer

// LockKey is the advisory lock key of a role's mints and revokes, for tests
// that hold it.
func (iss *Issuer) LockKey(role string) int64 { return iss.derive.lockKey(role) }

// UsageRemembered is how many roles' last sessions Usage remembers.
func (iss *Issuer) UsageRemembered() int {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return len(iss.lastSeen)
}

// RoleName is the role a mint of the rotation creates.
func (iss *Issuer) RoleName(instanceID, rotationID string) string {
	return iss.derive.roleName(instanceID, rotationID)
}
