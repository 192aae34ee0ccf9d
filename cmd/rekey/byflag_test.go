package main

import (
	"context"
	"strings"
	"testing"
)

// --by names who paused the scheduler for 'rekey scheduler status': an
// empty or blank one (a script's unset $USER) stands for "operator", as an
// empty --reason stands for its default, rather than a status that reads
// "by  "; one with a line break or control character is refused (exit 2)
// as --reason is, and nothing is paused.
func TestSchedulerPauseBy(t *testing.T) {
	c := newCLI(t)
	for _, by := range []string{"", "   "} {
		if err := c.run(t, "scheduler", "pause", "--by", by); err != nil {
			t.Fatalf("pause --by %q: %v", by, err)
		}
		_, who, err := c.st.SchedulePaused(context.Background())
		if err != nil || who != "operator" {
			t.Errorf("pause --by %q: paused by %q (%v), want operator", by, who, err)
		}
		if err := c.run(t, "scheduler", "resume"); err != nil {
			t.Fatal(err)
		}
	}
	for _, by := range []string{"alice\nbob", "alice\x1b[2J", strings.Repeat("a", 129)} {
		if err := c.run(t, "scheduler", "pause", "--by", by); !isUsage(err) || !strings.Contains(err.Error(), "--by") {
			t.Errorf("pause --by %q: %v, want a usage error naming --by", by, err)
		}
		if at, _, _ := c.st.SchedulePaused(context.Background()); !at.IsZero() {
			t.Errorf("pause --by %q paused the scheduler", by)
			_ = c.run(t, "scheduler", "resume")
		}
	}
}

// Pausing the scheduler stops the schedule only: a wave an operator or
// the API requested goes on. With rotations in flight, pause says so on
// stderr and names 'rekey batches cancel', the command that stops a wave,
// so that an operator mid-incident does not take the pause for a stop.
func TestSchedulerPauseMidWaveSaysTheWaveGoesOn(t *testing.T) {
	c := newCLI(t)
	if err := c.run(t, "scheduler", "pause"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(c.stderr.String(), "batches cancel") {
		t.Errorf("pause with nothing in flight names batches cancel:\n%s", c.stderr.String())
	}
	if err := c.run(t, "scheduler", "resume"); err != nil {
		t.Fatal(err)
	}
	c.register(t, 3)
	if err := c.run(t, "rotate", "--all", "--confirm", "--reason", "incident"); err != nil {
		t.Fatal(err)
	}
	if err := c.run(t, "scheduler", "pause"); err != nil {
		t.Fatal(err)
	}
	if errText := c.stderr.String(); !strings.Contains(errText, "3 rotations are in flight") ||
		!strings.Contains(errText, "rekey batches cancel") || !strings.Contains(errText, "rekey batches list --running") {
		t.Errorf("pause with a wave in flight, stderr:\n%s\nwant it to say 3 rotations are in flight and go on, naming batches cancel and batches list --running", errText)
	}
}
