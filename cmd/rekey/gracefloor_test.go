package main

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/config"
)

// TestRotateRefusesAGraceBelowTheFloor: `rekey rotate --grace 1ms` is
// refused, naming the floor, and changes nothing.
func TestRotateRefusesAGraceBelowTheFloor(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 2)
	before := c.snapshot(t)
	err := c.run(t, "rotate", "--grace", "1ms", ids[0], ids[1])
	if err == nil || !strings.Contains(err.Error(), "floor of 10m0s (REKEY_MIN_GRACE") {
		t.Fatalf("rotate --grace 1ms: %v, want a refusal naming the floor", err)
	}
	if !strings.Contains(err.Error(), "'rekey revocations expedite INSTANCE_ID'") {
		t.Errorf("rotate --grace 1ms: %v, want the way to revoke sooner", err)
	}
	if after := c.snapshot(t); !maps.Equal(before, after) {
		t.Error("a refused rotation changed Redis")
	}
	if err := c.run(t, "rotate", "--grace", "10m", ids[0]); err != nil {
		t.Fatalf("rotate --grace 10m: %v", err)
	}
}

// TestRotateRefusesAGraceOfZero: `rekey rotate --grace 0` would leave
// each instance its own grace, not revoke at once, so it is refused as a
// usage error (exit 2) pointing to `rekey revocations expedite`, and
// changes nothing.
func TestRotateRefusesAGraceOfZero(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 1)
	before := c.snapshot(t)
	for _, zero := range []string{"0", "0s", "0h"} {
		err := c.run(t, "rotate", "--grace", zero, ids[0])
		if !isUsage(err) || !strings.Contains(err.Error(), "'rekey revocations expedite INSTANCE_ID'") {
			t.Errorf("rotate --grace %s: %v, want a usage error naming rekey revocations expedite", zero, err)
		}
	}
	if after := c.snapshot(t); !maps.Equal(before, after) {
		t.Error("a refused rotation changed Redis")
	}
}

// TestRotateSaysTheGrace: rotate's output says the grace the old
// credentials get: --grace, or each instance's own, else REKEY_GRACE.
func TestRotateSaysTheGrace(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 2)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{ids[0]}, "grace: each instance's own, else 2h (REKEY_GRACE; 4h in a Private Space"},
		{[]string{"--grace", "3h", ids[1]}, "grace: 3h (--grace), then the old credentials are revoked"},
	}
	for _, tt := range tests {
		if err := c.run(t, "rotate", tt.args...); err != nil {
			t.Fatalf("rotate %v: %v\n%s", tt.args, err, c.stderr)
		}
		if !strings.Contains(c.stdout.String(), tt.want) {
			t.Errorf("rotate %v: stdout lacks %q:\n%s", tt.args, tt.want, c.stdout)
		}
	}
}

// A --grace within this command's floor but below the running workers'
// (a worker with a higher REKEY_MIN_GRACE) is not honoured by them: they
// give each rotation the grace it would have without --grace, and rotate
// says so rather than the floor.
func TestRotateSaysTheRunningWorkersSetAShortGraceAside(t *testing.T) {
	cfg := &config.Config{Grace: 2 * time.Hour, PrivateSpaceGrace: 4 * time.Hour, MinGrace: time.Minute, MaxGrace: 168 * time.Hour}
	running := announcedGraces{grace: 2 * time.Hour, private: 4 * time.Hour, floor: 10 * time.Minute, known: true}
	got := graceText(rotateFlags{grace: 5 * time.Minute}, cfg, running)
	want := "grace: 5m asked (--grace), but the running workers' REKEY_MIN_GRACE is 10m: they set it aside for each " +
		"instance's own, else 2h (REKEY_GRACE; 4h in a Private Space, REKEY_PRIVATE_SPACE_GRACE), then the old credentials are revoked"
	if got != want {
		t.Errorf("graceText = %q, want %q", got, want)
	}
}

// TestRotateGraceOutOfRangeIsAUsageError: a --grace above REKEY_MAX_GRACE
// or below REKEY_MIN_GRACE is refused before anything is read or enqueued,
// as a negative --grace or --grace 0 is, so it is a usage error (exit 2)
// like them, with the plan, and changes nothing.
func TestRotateGraceOutOfRangeIsAUsageError(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 1)
	before := c.snapshot(t)
	for _, args := range [][]string{
		{"--grace", "2000h", ids[0]},
		{"--grace", "1ms", ids[0]},
		{"--grace", "2000h", "--plan", ids[0]},
		{"--grace", "2000h", "inst-unknown"},
	} {
		err := c.run(t, "rotate", args...)
		if !isUsage(err) || !strings.Contains(err.Error(), "REKEY_M") {
			t.Errorf("rotate %v: %v, want a usage error naming the floor or the ceiling", args, err)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("rotate %v: %q, want one hint line", args, err)
		}
	}
	if after := c.snapshot(t); !maps.Equal(before, after) {
		t.Error("a refused rotation changed Redis")
	}
}
