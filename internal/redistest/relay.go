package redistest

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Relay copies TCP connections to a Redis server until Stop, for tests
// that play Redis going away (Stop), stopping to answer (Stall), or a
// connection cut after a command reached Redis and before its answer came
// back (CutAnswerOf).
type Relay struct {
	ln    net.Listener
	stall atomic.Bool
	cut   atomic.Pointer[[]byte]
	mu    sync.Mutex
	conns []net.Conn
}

// NewRelay listens on loopback and relays each connection to target until
// t ends.
func NewRelay(t testing.TB, target string) *Relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, c, up)
			r.mu.Unlock()
			var mute atomic.Bool
			go func() { r.forward(up, c, &mute); _ = up.Close() }()
			go func() { answer(c, up, &mute); _ = c.Close() }()
		}
	}()
	t.Cleanup(r.Stop)
	return r
}

// Addr is the relay's host:port.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Stall holds every command sent from now on, as a Redis frozen (SIGSTOP,
// a host gone without a reset) does, until Stall(false).
func (r *Relay) Stall(on bool) { r.stall.Store(on) }

// CutAnswerOf arms a one-shot fault: the next write the client sends
// that holds marker (a key name, a script's argument) reaches Redis, which
// runs it, and the connection is then cut before the answer comes back, as
// a network dropping between the two does. The client sees its command
// fail with an EOF, and cannot tell whether it ran.
func (r *Relay) CutAnswerOf(marker string) {
	b := []byte(marker)
	r.cut.Store(&b)
}

// Stop refuses new connections and cuts the open ones.
func (r *Relay) Stop() {
	_ = r.ln.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		_ = c.Close()
	}
	r.conns = nil
}

// forward copies what the client sends to the server, held while stalled.
// A write holding the armed CutAnswerOf marker is sent, then both ends are
// cut once Redis had time to run it, its answer dropped (mute).
func (r *Relay) forward(dst, src net.Conn, mute *atomic.Bool) {
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		for r.stall.Load() {
			time.Sleep(10 * time.Millisecond)
		}
		if m := r.cut.Load(); n > 0 && m != nil && bytes.Contains(buf[:n], *m) && r.cut.CompareAndSwap(m, nil) {
			mute.Store(true)
			_, _ = dst.Write(buf[:n])
			time.Sleep(100 * time.Millisecond)
			_ = src.Close()
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// answer copies what the server answers to the client until mute is set.
func answer(dst, src net.Conn, mute *atomic.Bool) {
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if mute.Load() {
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
