package testdirs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rekeyhq/rekey/internal/testdirs"
)

// A directory whose owner exited is removed by the next Make of its prefix;
// this process's own, and one without an owner file, are kept.
func TestMakeRemovesOnlyTheDirectoriesOfExitedOwners(t *testing.T) {
	prefix := "testdirs-" + strconv.Itoa(os.Getpid()) + "-"
	t.Cleanup(func() {
		dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
		for _, d := range dirs {
			_ = os.RemoveAll(d)
		}
	})
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	stale, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, "owner.pid"), []byte(strconv.Itoa(exited.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	foreign, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	mine, err := testdirs.Make(prefix)
	if err != nil {
		t.Fatal(err)
	}
	again, err := testdirs.Make(prefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		dir  string
		kept bool
	}{{stale, false}, {foreign, true}, {mine, true}, {again, true}} {
		_, err := os.Stat(tt.dir)
		if kept := err == nil; kept != tt.kept {
			t.Errorf("%s kept: %v, want %v", tt.dir, kept, tt.kept)
		}
	}
}
