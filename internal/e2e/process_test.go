package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/sandbox"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// rekeyBinary builds cmd/rekey once per test run and returns its path. The
// directory is removed when the package's tests end.
func rekeyBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "rekey-e2e-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "rekey")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "github.com/rekeyhq/rekey/cmd/rekey")...).CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build ./cmd/rekey: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// process is a running rekey subprocess. It is killed, with its process
// group, when the test ends, and also when the test binary dies.
type process struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error // from Wait, once done is closed
}

// startRekey runs the rekey binary with args and exactly the environment env.
func startRekey(t *testing.T, env map[string]string, args ...string) *process {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &process{t: t, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, rekeyBinary(t), args...)
	p.cmd.Env = sandbox.EnvList(env)
	p.cmd.Stdout, p.cmd.Stderr = p.stderr, p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.cmd.Cancel = func() error { return syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) }
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start rekey %s: %v", strings.Join(args, " "), err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		cancel()
		<-p.done
		if strings.Contains(p.stderr.String(), "DATA RACE") {
			t.Errorf("rekey %s: the race detector reported a race:\n%s", strings.Join(args, " "), p.stderr.String())
		} else if t.Failed() {
			t.Logf("rekey %s output:\n%s", strings.Join(args, " "), p.stderr.String())
		}
	})
	return p
}

// kill sends SIGKILL to the process group and waits for the process to die.
func (p *process) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// exit waits up to within for the process to end and returns its exit code.
func (p *process) exit(within time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		p.kill()
		p.t.Fatalf("rekey still running after %s; output:\n%s", within, p.stderr.String())
	}
	var exit *exec.ExitError
	if errors.As(p.err, &exit) {
		return exit.ExitCode()
	}
	if p.err != nil {
		p.t.Fatalf("rekey: %v", p.err)
	}
	return 0
}
