package scheduler

// WithoutLock makes s sweep without the sweep lock, so a test can show
// that the idempotent enqueue alone prevents double rotations.
func WithoutLock(s *Scheduler) { s.lock = false }
