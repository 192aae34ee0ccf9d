package bench

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Monitor tells the commands clients send Redis from those the Lua scripts
// they call run, which INFO commandstats counts alike. It follows MONITOR on
// a connection of its own and counts, by client address, the commands each
// client sent and the commands its scripts ran.
type Monitor struct {
	conn net.Conn
	db   string
	done chan struct{}

	mu   sync.Mutex
	sent map[string]int64 // by client address
	ran  map[string]int64 // by the address of the client whose script ran them
	err  error
}

// Tally is what a Monitor counted up to one moment.
type Tally struct {
	Sent, Ran map[string]int64
}

// StartMonitor opens a connection to the server redisURL names and follows
// MONITOR for the commands run on redisURL's database until Close.
func StartMonitor(redisURL string) (*Monitor, error) {
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	conn, err := net.DialTimeout(opt.Network, opt.Addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	rd := bufio.NewReaderSize(conn, 1<<16)
	var cmds [][]string
	if opt.Password != "" {
		cmds = append(cmds, authArgs(opt.Username, opt.Password))
	}
	cmds = append(cmds, []string{"MONITOR"})
	for _, args := range cmds {
		if err := writeCommand(conn, args); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("monitor: %w", err)
		}
		line, err := rd.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "+OK") {
			_ = conn.Close()
			return nil, fmt.Errorf("monitor: %s answered %q, %v", args[0], strings.TrimSpace(line), err)
		}
	}
	m := &Monitor{conn: conn, db: strconv.Itoa(opt.DB), done: make(chan struct{}),
		sent: map[string]int64{}, ran: map[string]int64{}}
	go m.follow(rd)
	return m, nil
}

func authArgs(user, password string) []string {
	if user != "" {
		return []string{"AUTH", user, password}
	}
	return []string{"AUTH", password}
}

func writeCommand(conn net.Conn, args []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	_, err := conn.Write([]byte(b.String()))
	return err
}

// follow reads MONITOR's lines, such as
//
//	+1796144765.458435 [0 127.0.0.1:33940] "evalsha" "09762f70..." ...
//	+1796144765.458452 [0 lua] "EXISTS" "rekey:instance:..."
//
// A script's commands come right after the call that ran it: Redis runs
// one command at a time and feeds MONITOR in that order.
func (m *Monitor) follow(rd *bufio.Reader) {
	defer close(m.done)
	var caller string
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			m.mu.Lock()
			if !errors.Is(err, net.ErrClosed) {
				m.err = err
			}
			m.mu.Unlock()
			return
		}
		open, rest, ok := strings.Cut(line, " [")
		if !ok || !strings.HasPrefix(open, "+") {
			continue
		}
		where, _, ok := strings.Cut(rest, "] ")
		db, addr, ok2 := strings.Cut(where, " ")
		if !ok || !ok2 || db != m.db {
			continue
		}
		m.mu.Lock()
		if addr == "lua" {
			m.ran[caller]++
		} else {
			caller = addr
			m.sent[addr]++
		}
		m.mu.Unlock()
	}
}

// Tally returns what was counted so far.
func (m *Monitor) Tally() (Tally, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Tally{Sent: maps.Clone(m.sent), Ran: maps.Clone(m.ran)}, m.err
}

// Close stops following.
func (m *Monitor) Close() {
	_ = m.conn.Close()
	<-m.done
}

// Since is what was counted between from and t, leaving out the clients
// in skip: the sent commands and the commands their scripts ran.
func (t Tally) Since(from Tally, skip map[string]bool) (sent, ran int64) {
	for addr, n := range t.Sent {
		if !skip[addr] {
			sent += n - from.Sent[addr]
		}
	}
	for addr, n := range t.Ran {
		if !skip[addr] {
			ran += n - from.Ran[addr]
		}
	}
	return sent, ran
}
