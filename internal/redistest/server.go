package redistest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/testdirs"
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
	addr, _, err := runServer(port, privateDatabases, nil, nil)
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
	return startOne(t, port)
}

// startOne runs a private redis-server on 127.0.0.1:port with one database
// and args, until t ends.
func startOne(t testing.TB, port int, args ...string) *Redis {
	t.Helper()
	addr, cmd, err := runServer(port, 1, args, nil)
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

// StartReplicated runs a private redis-server and a replica of it, each
// with one database, until t ends, and returns both once the replica is in
// sync. A test detaches the replica with REPLICAOF NO ONE, and attaches it
// again with AttachReplica.
func StartReplicated(t testing.TB) (primary, replica *Redis) {
	t.Helper()
	// A replica syncs at once, not after the 5 s Redis 7 waits by default
	// for more replicas to share a diskless sync.
	primary = startOne(t, FreePort(t), "--repl-diskless-sync-delay", "0")
	replica = startOne(t, FreePort(t))
	AttachReplica(t, primary, replica)
	return primary, replica
}

// AttachReplica makes replica a replica of primary and waits until its
// link is up and primary counts it.
func AttachReplica(t testing.TB, primary, replica *Redis) {
	t.Helper()
	ctx := context.Background()
	host, port, _ := net.SplitHostPort(primary.Addr)
	if err := replica.Client.Do(ctx, "replicaof", host, port).Err(); err != nil {
		t.Fatalf("redistest: replicaof: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, _ := replica.Client.Info(ctx, "replication").Result()
		p, _ := primary.Client.Info(ctx, "replication").Result()
		if strings.Contains(r, "master_link_status:up") && !strings.Contains(p, "connected_slaves:0") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: replica of %s not in sync within 10s", primary.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StartTLSServer runs a private redis-server that takes TLS connections
// only (a self-signed certificate, no client certificate asked), with one
// database, until t ends, and returns its address.
func StartTLSServer(t testing.TB) string {
	t.Helper()
	port := FreePort(t)
	dir := t.TempDir()
	cert, key, err := selfSigned(dir)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	tlsOnly := []string{"--port", "0", "--tls-port", strconv.Itoa(port), "--tls-cert-file", cert,
		"--tls-key-file", key, "--tls-ca-cert-file", cert, "--tls-auth-clients", "no"}
	selfSignedOK := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // the test's own self-signed server.
	addr, cmd, err := runServer(port, 1, tlsOnly, selfSignedOK)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return addr
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(dir string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redistest"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// runServer starts redis-server on a loopback port with args added, and
// waits until it answers, over TLS when tlsCfg is set (args making it
// serve TLS only). The server is told to die with the test binary
// (Pdeathsig).
func runServer(port, databases int, args []string, tlsCfg *tls.Config) (string, *exec.Cmd, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, fmt.Errorf("redis-server not on PATH")
	}
	dir, err := testdirs.Make("redistest-")
	if err != nil {
		return "", nil, err
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir,
		"--databases", strconv.Itoa(databases))
	cmd.Args = append(cmd.Args, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start redis-server: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := waitReady(addr, tlsCfg, 10*time.Second); err != nil {
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

func waitReady(addr string, tlsCfg *tls.Config, within time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: addr, TLSConfig: tlsCfg})
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
