package pgtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/rekeyhq/rekey/internal/testdirs"
)

// adminRole is the superuser of a private server.
const adminRole = "rekey_admin"

// maxConnections is the private server's max_connections: the end-to-end
// tests run a hundred simulated apps, each with a long-lived connection and
// a stream of short ones, beside rekey's own.
const maxConnections = 800

// binDir returns the newest /usr/lib/postgresql/*/bin holding initdb and
// postgres, or the directory of an initdb on PATH.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if isFile(filepath.Join(d, "initdb")) && isFile(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("initdb not found in /usr/lib/postgresql/*/bin or on PATH")
}

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// prepare finds the server's binaries and makes a directory for a private
// server, owned by the user the server runs as (cred).
func prepare(prefix string) (bin, dir string, cred *syscall.Credential, err error) {
	if bin, err = binDir(); err != nil {
		return "", "", nil, err
	}
	if dir, err = testdirs.Make(prefix); err != nil {
		return "", "", nil, err
	}
	if cred, err = runAs(dir); err != nil {
		_ = os.RemoveAll(dir)
		return "", "", nil, err
	}
	return bin, dir, cred, nil
}

// startPrivate runs initdb and postgres on a free loopback port. Password
// authentication (scram-sha-256) is on for TCP, as on a real server, so a
// wrong password fails a login in the tests too.
func startPrivate() (*source, error) {
	bin, dir, cred, err := prepare("pgtest-")
	if err != nil {
		return nil, err
	}
	password := randomHex(16)
	if err := initdb(bin, dir, password, cred); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return serve(bin, dir, password, cred)
}

// serve runs postgres on dir's data directory, on a free loopback port, and
// waits until it takes connections as the admin role; stop ends it and
// removes dir.
func serve(bin, dir, password string, cred *syscall.Credential) (*source, error) {
	port, err := freePort()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	cmd, out, err := postgres(bin, dir, port, cred)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	u := &url.URL{Scheme: "postgres", User: url.UserPassword(adminRole, password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Path: "/postgres", RawQuery: "sslmode=disable"}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		_ = cmd.Wait()
		_ = os.RemoveAll(dir)
	}
	if err := ping(u.String(), 30*time.Second); err != nil {
		stop()
		return nil, fmt.Errorf("private postgres on port %d: %w (output: %s)", port, err, out.String())
	}
	return &source{url: u, kind: "private postgres", stop: stop}, nil
}

// runAs picks who runs the server: PostgreSQL refuses to run as root, so
// a root test binary hands dir to the postgres (or nobody) user.
func runAs(dir string) (*syscall.Credential, error) {
	if os.Getuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("running as root and no postgres or nobody user to run the server as")
}

func initdb(bin, dir, password string, cred *syscall.Credential) error {
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		return err
	}
	if cred != nil {
		_ = os.Chown(pwfile, int(cred.Uid), int(cred.Gid))
	}
	defer os.Remove(pwfile)
	cmd := exec.Command(filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", adminRole,
		"--pwfile", pwfile, "--auth-host=scram-sha-256", "--auth-local=trust", "--no-sync",
		"--encoding=UTF8", "--locale=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, out)
	}
	return nil
}

func postgres(bin, dir string, port int, cred *syscall.Credential) (*exec.Cmd, *bytes.Buffer, error) {
	var out bytes.Buffer
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", filepath.Join(dir, "data"),
		"-p", strconv.Itoa(port), "-k", dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections="+strconv.Itoa(maxConnections), "-c", "shared_buffers=32MB",
		"-c", "log_min_messages=warning", "-c", "logging_collector=off")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start postgres: %w", err)
	}
	return cmd, &out, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
