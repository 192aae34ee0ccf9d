package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/rekeyhq/rekey/internal/sandbox"
)

// Build compiles cmd/rekey into dir and returns the binary's path. It runs
// the go command of the toolchain on PATH, inside the module, so the binary
// is the code under test.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "rekey")
	var out bytes.Buffer
	cmd := exec.Command("go", "build", "-o", bin, "github.com/rekeyhq/rekey/cmd/rekey")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build cmd/rekey: %w\n%s", err, out.String())
	}
	return bin, nil
}

// Workers are `rekey worker` processes: each has its own rate limiter and
// asynq server and shares nothing with the others but Redis.
type Workers struct {
	procs []*process
}

// process is one worker process; err and state are set before exited closes.
type process struct {
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error
	state  *os.ProcessState
}

// Usage is what worker processes cost the machine.
type Usage struct {
	// CPU is user plus system time, summed over the processes.
	CPU time.Duration
	// MaxRSS is the largest peak resident set of any one process, in bytes.
	MaxRSS int64
}

// StartWorkers runs n `rekey worker` processes of bin with env, writing each
// one's log to logDir. The processes die with the calling process.
func StartWorkers(bin string, env map[string]string, n int, logDir string) (*Workers, error) {
	w := &Workers{}
	for i := range n {
		p, err := startWorker(bin, env, filepath.Join(logDir, fmt.Sprintf("worker-%d.log", i+1)))
		if err != nil {
			w.kill()
			return nil, err
		}
		w.procs = append(w.procs, p)
	}
	return w, nil
}

func startWorker(bin string, env map[string]string, logPath string) (*process, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "worker")
	cmd.Env = sandbox.EnvList(env)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("start rekey worker: %w", err)
	}
	p := &process{cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		p.state = cmd.ProcessState
		_ = log.Close()
		close(p.exited)
	}()
	return p, nil
}

// Exited returns an error naming the first process that has already exited,
// so a caller polling for progress notices a worker that crashed.
func (w *Workers) Exited() error {
	for i, p := range w.procs {
		select {
		case <-p.exited:
			return fmt.Errorf("worker %d exited early (%v): %s", i+1, p.err, p.tail())
		default:
		}
	}
	return nil
}

// Stop sends SIGTERM to every process, as Heroku does, waits up to timeout
// for them to exit, and returns their resource usage. A process still
// running after timeout is killed and reported.
func (w *Workers) Stop(timeout time.Duration) (Usage, error) {
	for _, p := range w.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	var (
		u    Usage
		errs []error
	)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for i, p := range w.procs {
		select {
		case <-ctx.Done():
			_ = p.cmd.Process.Kill()
			<-p.exited
			errs = append(errs, fmt.Errorf("worker %d did not stop within %s of SIGTERM", i+1, timeout))
		case <-p.exited:
		}
		if p.err != nil {
			errs = append(errs, fmt.Errorf("worker %d: %w: %s", i+1, p.err, p.tail()))
		}
		if ru, ok := p.state.SysUsage().(*syscall.Rusage); ok {
			u.CPU += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			u.MaxRSS = max(u.MaxRSS, ru.Maxrss*1024)
		}
	}
	return u, errors.Join(errs...)
}

// tail returns the end of the process's log.
func (p *process) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func (w *Workers) kill() {
	for _, p := range w.procs {
		_ = p.cmd.Process.Kill()
	}
}

// batchLine finds the batch id in what `rekey rotate` prints.
var batchLine = regexp.MustCompile(`batch (bat_[0-9a-f]+):`)

// RotateAll runs `rekey rotate --all --confirm` of bin with env on queue, as an
// operator would, and returns the id of the batch it printed and its
// output's first line.
func RotateAll(ctx context.Context, bin string, env map[string]string, reason, queue string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "rotate", "--all", "--confirm", "--reason", reason, "--queue", queue)
	cmd.Env = sandbox.EnvList(env)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("rekey rotate --all: %w: %s%s", err, stdout.String(), stderr.String())
	}
	m := batchLine.FindStringSubmatch(stdout.String())
	if m == nil {
		return "", "", fmt.Errorf("rekey rotate --all printed no batch id: %s", stdout.String())
	}
	line, _, _ := strings.Cut(stdout.String(), "\n")
	return m[1], line, nil
}
