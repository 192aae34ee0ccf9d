// Package testdirs makes the temporary directories that the tests' private
// servers run in (redistest's redis-server, pgtest's postgres) and removes
// the ones earlier test binaries left behind. A server shared by a whole
// test binary lives until the binary exits, and a binary killed by go
// test's timeout removes nothing: without a sweep each `make test` would
// leave tens of megabytes of PostgreSQL data in the temporary directory.
package testdirs

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ownerFile holds the pid of the process a directory was made for.
const ownerFile = "owner.pid"

// Make creates a directory named prefix followed by random digits in the
// temporary directory, owned by this process, after removing those of the
// same prefix whose owner no longer runs.
func Make(prefix string) (string, error) {
	Sweep(prefix)
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// Sweep removes the directories named prefix* in the temporary directory
// whose owner process no longer runs. One without an owner file (being
// made, or made by something else) is left alone, and so is one whose
// owner runs: its server may still be in use.
func Sweep(prefix string) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || running(pid) {
			continue
		}
		_ = os.RemoveAll(dir)
	}
}

// running reports whether a process with this pid exists (one of another
// user's answers EPERM).
func running(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
