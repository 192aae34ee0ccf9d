package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestTextOutputToAFullDiskFails runs the commands that print text with
// stdout on /dev/full, where every write fails as on a full disk: each must
// fail (exit 1, the error on stderr), as --json and the lists do, rather
// than exit 0 having printed nothing, which a script redirecting to a file
// would take for the output. A command that changed something first (a
// pause) fails too: its line is what a script reads to learn it did.
func TestTextOutputToAFullDiskFails(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	c := newCLI(t)
	ids := c.register(t, 3)
	if err := c.run(t, "rotate", ids[0]); err != nil {
		t.Fatal(err)
	}
	bat := batchID(t, c.stdout.String())
	file := filepath.Join(t.TempDir(), "instances.jsonl")
	line := `{"id":"inst-v1","api_version":"v1","heroku_id":"app1@heroku.com","config_vars":["MYADDON_URL"]}` + "\n"
	if err := os.WriteFile(file, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"rotate", ids[1]},
		{"rotate", "--all", "--plan"},
		{"batches", "show", bat},
		{"instances", "show", ids[0]},
		{"instances", "import", file},
		{"breaker", "status"},
		{"keys", "status"},
		{"batches", "cancel", bat},
		{"scheduler", "pause"},
		{"scheduler", "pause"}, // already paused
		{"scheduler", "resume"},
		{"scheduler", "set", ids[2], "--opt-out"},
		{"scheduler", "unquarantine", ids[2]},
		{"scheduler", "unquarantine", "--all"},
	} {
		env := c.env()
		env.stdout = full
		err := runCommand(context.Background(), env, args[0], args[1:]...)
		if !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("rekey %v with stdout on a full disk: err = %v, want the failed write", args, err)
		}
	}
}

// TestHelpToAFullDiskFails: help written to a stdout that refuses it
// (`rekey --help > /dev/full`) fails (exit 1, the error on stderr), as
// --version and every other command do, rather than exit 0 having
// printed nothing.
func TestHelpToAFullDiskFails(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	c := newCLI(t)
	for _, args := range [][]string{
		{"--help"},
		{"help"},
		{"help", "rotate"},
		{"rotate", "--help"},
		{"rotate", "help"},
		{"scheduler", "status", "-h"},
	} {
		env := c.env()
		env.stdout = full
		err := run(context.Background(), env, args)
		if !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("rekey %v with stdout on a full disk: err = %v, want the failed write", args, err)
		}
	}
	// Help on a stdout that takes it still succeeds.
	if err := c.run(t, "help", "rotate"); err != nil || !strings.Contains(c.stdout.String(), "rekey rotate") {
		t.Errorf("rekey help rotate: %v, stdout %q", err, c.stdout)
	}
}
