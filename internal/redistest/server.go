package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// privateDatabases is how many databases the private server offers, so that
// every test of a package can have its own.
const privateDatabases = 4096

// startServer runs redis-server on a free loopback port. The server is told
// to die with the test binary (Pdeathsig), so no test run leaves one behind.
func startServer() (*source, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr, _, err := runServer(port, privateDatabases)
	if err != nil {
		return nil, err
	}
	return &source{addr: addr, dbs: privateDatabases, kind: "redis-server"}, nil
}

// FreePort returns a loopback port nothing listens on, for a test that
// starts a process before the Redis it will use (StartServerAt).
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return port
}

// StartServerAt runs a private redis-server on 127.0.0.1:port, with one
// database, until t ends, and returns it ready. A test of a process that
// starts before Redis needs a real server: t fails without redis-server.
func StartServerAt(t testing.TB, port int) *Redis {
	t.Helper()
	addr, cmd, err := runServer(port, 1)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	r := &Redis{Addr: addr, URL: "redis://" + addr + "/0", Client: redis.NewClient(&redis.Options{Addr: addr})}
	t.Cleanup(func() {
		_ = r.Client.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return r
}

// runServer starts redis-server on a loopback port and waits until it
// answers. The server is told to die with the test binary (Pdeathsig).
func runServer(port, databases int) (string, *exec.Cmd, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, fmt.Errorf("redis-server not on PATH")
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return "", nil, err
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir,
		"--databases", strconv.Itoa(databases))
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start redis-server: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := waitReady(addr, 10*time.Second); err != nil {
		_ = cmd.Process.Kill()
		return "", nil, fmt.Errorf("redis-server on %s: %w (output: %s)", addr, err, out.String())
	}
	return addr, cmd, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitReady(addr string, within time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := c.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", err)
		case <-tick.C:
		}
	}
}
