package pgissuer

// LockKey is the advisory lock key of a role's mints and revokes, for tests
// that hold it.
func (iss *Issuer) LockKey(role string) int64 { return iss.derive.lockKey(role) }
