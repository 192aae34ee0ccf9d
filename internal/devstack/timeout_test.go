package devstack

import (
	"testing"
	"time"
)

// TestOnceTimeoutGrowsWithTheRun: the default --once timeout is 2 minutes
// for a small run and grows with the instances (their Heroku calls at the
// budget's pace) and the grace, so that `rekey dev --once --instances 120`,
// which takes over two minutes at 4000 calls an hour, does not fail after
// rotating them all.
func TestOnceTimeoutGrowsWithTheRun(t *testing.T) {
	o := Options{Instances: 3, Grace: 3 * time.Second, RestartDelay: time.Second}
	if got := onceTimeout(o, 4000); got != 2*time.Minute {
		t.Errorf("3 instances: %s, want the 2m minimum", got)
	}
	o = Options{Instances: 120, Grace: 30 * time.Second, RestartDelay: 3 * time.Second}
	// 120 config updates after a burst of 9, 0.9 s each, then the grace and
	// the held instance's 15 s: what the run takes at least.
	least := 111*900*time.Millisecond + 45*time.Second
	if got := onceTimeout(o, 4000); got < least+time.Minute {
		t.Errorf("120 instances: %s, want at least a minute over the %s the run takes", got, least)
	}
	long := o
	long.Grace = 10 * time.Minute
	if got, short := onceTimeout(long, 4000), onceTimeout(o, 4000); got-short < long.Grace-o.Grace {
		t.Errorf("a grace of 10m gives %s, 30s %s: the timeout does not grow with the grace", got, short)
	}
}

// TestOnceTimeoutOfTheDefaultRun: README.md and `rekey dev --help` quote
// the default run's timeout (20 instances, a 30s grace, 3s restarts).
func TestOnceTimeoutOfTheDefaultRun(t *testing.T) {
	o := Options{Instances: 20, Grace: 30 * time.Second, RestartDelay: 3 * time.Second}
	if got := onceTimeout(o, 4000); got != 2*time.Minute+19*time.Second {
		t.Errorf("the default run's timeout is %s; README.md and dev's --timeout help say 2m19s", got)
	}
}
