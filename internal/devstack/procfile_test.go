package devstack

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadmeRunTheProcfileLocally runs README.md's "Run the Procfile
// locally" block as pasted, in a fresh copy of the repository, through
// scripts/procfile-local-test.sh: fakeheroku, the demo issuer, web, worker
// and clock as separate processes; an add-on registered and rotated
// through the HTTP API. It builds the binaries, so it is left out of
// `go test -short`.
func TestReadmeRunTheProcfileLocally(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the Procfile's processes; run without -short")
	}
	for _, tool := range []string{"redis-server", "curl", "bash", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README block needs %s on PATH: %v", tool, err)
		}
	}
	// A fixed work directory keeps the copy's build cached between runs.
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = t.TempDir()
	}
	cmd := exec.Command("../../scripts/procfile-local-test.sh")
	cmd.Env = append(os.Environ(), "PROCFILE_LOCAL_WORKDIR="+filepath.Join(cache, "rekey-procfile-local"))
	if d, ok := t.Deadline(); ok {
		// The script's own timeout stops the processes before the test's panics.
		cmd.Env = append(cmd.Env, fmt.Sprintf("PROCFILE_LOCAL_TIMEOUT=%d", max(int(time.Until(d).Seconds())-30, 1)))
	}
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("scripts/procfile-local-test.sh: %v", err)
	}
	if !strings.Contains(string(out), "procfile-local: OK") {
		t.Fatal("the script did not report the rotation")
	}
}
