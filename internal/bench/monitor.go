package bench

import (
	"bufio"
	"crypto/sha1"
	"encoding/hex"
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
// client sent and the commands its scripts ran, and what they were: a
// script's call and the commands it ran count for the script.
type Monitor struct {
	conn net.Conn
	db   string
	done chan struct{}

	mu   sync.Mutex
	sent map[string]int64 // by client address
	ran  map[string]int64 // by the address of the client whose script ran them
	by   map[Source]int64
	keys map[string]string // script hash -> the first key it was called with, ids as "*"
	err  error
}

// Source is who sent a command and what it counts for: a plain command's
// name ("hget"), or "script " and the hash of the script it is, or ran in.
type Source struct {
	Addr, What string
}

// Tally is what a Monitor counted up to one moment.
type Tally struct {
	Sent, Ran map[string]int64
	By        map[Source]int64
	// Keys maps a script's hash to the first key of a call of it, its ids
	// written "*": what the script works on, for scripts with no name.
	Keys map[string]string
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
		sent: map[string]int64{}, ran: map[string]int64{}, by: map[Source]int64{}, keys: map[string]string{}}
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
	var caller, what string
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
		where, args, ok := strings.Cut(rest, "] ")
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
			what = m.source(quoted(args, 4))
		}
		m.by[Source{Addr: caller, What: what}]++
		m.mu.Unlock()
	}
}

// source is what a command sent with args (its first ones) counts for,
// noting the first key of a script's first call.
func (m *Monitor) source(args []string) string {
	if len(args) == 0 {
		return ""
	}
	name := strings.ToLower(args[0])
	if name != "evalsha" && name != "eval" || len(args) < 2 {
		return name
	}
	hash := args[1]
	if name == "eval" {
		// A script's first call when Redis did not hold it yet
		// (go-redis's Script.Run after NOSCRIPT): it counts for the script.
		sum := sha1.Sum([]byte(unquote(args[1])))
		hash = hex.EncodeToString(sum[:])
	}
	if _, ok := m.keys[hash]; !ok && len(args) == 4 && args[2] != "0" {
		m.keys[hash] = KeyPattern(args[3])
	}
	return "script " + hash
}

// quoted returns the first n of MONITOR's quoted arguments in line, their
// escapes left as they are: names, hashes and keys need none.
func quoted(line string, n int) []string {
	var out []string
	for len(out) < n {
		start := strings.IndexByte(line, '"')
		if start < 0 {
			break
		}
		i := start + 1
		for i < len(line) && line[i] != '"' {
			if line[i] == '\\' {
				i++
			}
			i++
		}
		if i >= len(line) {
			break
		}
		out = append(out, line[start+1:i])
		line = line[i+1:]
	}
	return out
}

// unquote undoes the escapes MONITOR writes inside a quoted argument:
// \n, \r, \t, \a, \b, \" and \\, and \x followed by two hex digits.
func unquote(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'x':
			if v, err := strconv.ParseUint(s[i+1:min(i+3, len(s))], 16, 8); err == nil && i+3 <= len(s) {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
			b.WriteByte('x')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// KeyPattern is key with each part that names one thing (an id, a date:
// digits among at least 8 characters) written "*".
func KeyPattern(key string) string {
	parts := strings.Split(key, ":")
	for i, p := range parts {
		if len(p) >= 8 && strings.ContainsAny(p, "0123456789") {
			parts[i] = "*"
		}
	}
	return strings.Join(parts, ":")
}

// Tally returns what was counted so far.
func (m *Monitor) Tally() (Tally, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Tally{Sent: maps.Clone(m.sent), Ran: maps.Clone(m.ran), By: maps.Clone(m.by), Keys: maps.Clone(m.keys)}, m.err
}

// BySource is what was counted between from and t, leaving out the clients
// in skip, by what it counts for (Source.What): each script with the
// commands it ran, each plain command by its name.
func (t Tally) BySource(from Tally, skip map[string]bool) map[string]int64 {
	out := map[string]int64{}
	for src, n := range t.By {
		if !skip[src.Addr] {
			if d := n - from.By[src]; d != 0 {
				out[src.What] += d
			}
		}
	}
	return out
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
