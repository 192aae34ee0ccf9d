package tasks

import (
	"fmt"
	"time"
)

// MinGrace is the grace floor rekey's workers apply unless the deployment
// sets another (REKEY_MIN_GRACE's default). NewRotateTask refuses a
// positive Grace below it: no deployment means an old credential to be
// revoked within minutes of the push, and such a grace is almost always a
// unit mistake (Grace: 86400 is 86.4µs, not a day). A worker that still
// gets one (an older producer, a payload written by hand) does not honour
// it: it keeps the instance's own grace, which is never shorter.
const MinGrace = 10 * time.Minute

// GraceError is a rotate payload's positive Grace below the floor the
// constructor checks it against. Nothing is enqueued.
type GraceError struct {
	// Grace is what the payload asked for; Floor the shortest grace
	// accepted.
	Grace, Floor time.Duration
}

func (e *GraceError) Error() string {
	msg := fmt.Sprintf("grace %s is below the %s floor", e.Grace, e.Floor)
	if e.Grace < time.Second {
		// No deployment's floor is under a second (REKEY_MIN_GRACE), so
		// this is a number written without its unit: say what it is, and
		// what it would be read as seconds when that makes sense.
		msg += fmt.Sprintf(": a tasks.Duration counts nanoseconds, as a time.Duration does, so Grace: %d is %s; "+
			"write the unit, as in ", int64(e.Grace), e.Grace)
		if secs := e.Grace * time.Second; secs >= e.Floor {
			msg += fmt.Sprintf("tasks.Duration(%d * time.Second) for %s", int64(e.Grace), secs)
		} else {
			msg += "tasks.Duration(2 * time.Hour)"
		}
	} else {
		msg += fmt.Sprintf(": workers whose REKEY_MIN_GRACE is %s would not honour it and keep the instance's own grace instead; ask for at least %s", e.Floor, e.Floor)
		if e.Floor == MinGrace {
			msg += ", or build the task with tasks.NewRotateTaskWithFloor and the deployment's REKEY_MIN_GRACE when it is lower"
		}
	}
	return msg + ", or leave Grace zero for the instance's own grace"
}

// checkGrace refuses a positive grace below floor; a floor of zero or
// less refuses none. Zero, and a negative grace, mean the instance's own
// grace and pass.
func checkGrace(g Duration, floor time.Duration) error {
	if d := time.Duration(g); d > 0 && floor > 0 && d < floor {
		return &GraceError{Grace: d, Floor: floor}
	}
	return nil
}
