// Package redistest gives tests a real Redis database of their own.
//
// Where Redis comes from, in order:
//  1. REKEY_TEST_REDIS_URL, when set: that server. Its databases are handed
//     out one per test, claimed in its last database so that test binaries
//     running at once never share one; a test waits for a free one.
//  2. A private redis-server started on a free loopback port, when the binary
//     is on PATH. It lives as long as the test binary.
//  3. miniredis, in process, with a loud notice on stderr. When
//     REKEY_TEST_REDIS_REQUIRED is set (CI sets it), this fallback is a test
//     failure instead: CI must prove the code against a real server.
//
// Every test gets a database no other test uses, flushed before and after.
package redistest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Redis is one test's database.
type Redis struct {
	// Addr is host:port of the server.
	Addr string
	// DB is the database number reserved for the test.
	DB int
	// URL is a redis:// URL selecting DB, as REDIS_URL would carry it.
	URL string
	// Client is connected to DB and closed when the test ends.
	Client *redis.Client
}

var (
	serverOnce sync.Once
	server     *source
	serverErr  error
)

// source is the server that hands out databases.
type source struct {
	addr     string
	password string
	dbs      int
	kind     string
	next     atomic.Int64 // the next database to hand out, or to try to claim
}

// New reserves a fresh database for t and returns it. It fails t when no
// Redis can be had, or when only miniredis can and REKEY_TEST_REDIS_REQUIRED
// is set.
func New(t testing.TB) *Redis {
	t.Helper()
	r, release, err := Database()
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(release)
	return r
}

// Database reserves a fresh database where no testing.TB is at hand, such
// as in TestMain or an Example, and returns it with a function that flushes
// and closes it. It fails in the same cases as New.
func Database() (*Redis, func(), error) {
	serverOnce.Do(func() { server, serverErr = start() })
	if serverErr != nil {
		return nil, nil, serverErr
	}
	db, unclaim, err := server.reserve()
	if err != nil {
		return nil, nil, err
	}
	r := &Redis{Addr: server.addr, DB: db, URL: server.url(db)}
	r.Client = redis.NewClient(&redis.Options{Addr: server.addr, Password: server.password, DB: db})
	if err := r.Client.FlushDB(context.Background()).Err(); err != nil {
		_ = r.Client.Close()
		unclaim()
		return nil, nil, fmt.Errorf("flush db %d on %s: %w", db, server.kind, err)
	}
	release := func() {
		_ = r.Client.FlushDB(context.Background()).Err()
		_ = r.Client.Close()
		unclaim()
	}
	return r, release, nil
}

// How a database of a shared server (REKEY_TEST_REDIS_URL) is claimed:
// the claim lasts claimFor and is renewed every claimRenew while its test
// runs, so that a test binary killed mid-run frees its databases within
// claimFor; a test that finds every database claimed waits up to
// claimWait for one.
const (
	claimFor   = 2 * time.Minute
	claimRenew = 30 * time.Second
	claimWait  = 5 * time.Minute
)

// reserve returns a database no other test uses now, and a function that
// frees it. A private server's are this binary's alone: they are handed
// out in turn. A server named by REKEY_TEST_REDIS_URL is shared by every
// test binary that `go test ./...` runs at once, each counting its
// databases from 0, so there the last database holds a claim for each
// one handed out (SET NX, with an expiry) and is handed to no test.
func (s *source) reserve() (int, func(), error) {
	if s.kind != "url" {
		return int(s.next.Add(1)-1) % s.dbs, func() {}, nil
	}
	if s.dbs < 2 {
		return 0, nil, fmt.Errorf("REKEY_TEST_REDIS_URL's server has %d database: tests need at least 2", s.dbs)
	}
	claims := redis.NewClient(&redis.Options{Addr: s.addr, Password: s.password, DB: s.dbs - 1})
	token := strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.Itoa(os.Getpid()) + "-" +
		strconv.FormatInt(s.next.Load(), 10)
	ctx := context.Background()
	for deadline := time.Now().Add(claimWait); ; {
		for range s.dbs - 1 {
			db := int(s.next.Add(1)-1) % (s.dbs - 1)
			key := "redistest:claim:" + strconv.Itoa(db)
			ok, err := claims.SetNX(ctx, key, token, claimFor).Result()
			if err != nil {
				_ = claims.Close()
				return 0, nil, fmt.Errorf("claim db %d on REKEY_TEST_REDIS_URL's server: %w", db, err)
			}
			if ok {
				return db, s.keepClaim(claims, key, token), nil
			}
		}
		if time.Now().After(deadline) {
			_ = claims.Close()
			return 0, nil, fmt.Errorf("every database of REKEY_TEST_REDIS_URL's server (%d, the last one holding "+
				"the claims) stayed in use by other tests for %s: give it more (databases in redis.conf) or run "+
				"fewer tests at once", s.dbs, claimWait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// keepClaim renews the claim key, which holds token, until the returned
// function is called; that function deletes the claim if it is still
// token's.
func (s *source) keepClaim(claims *redis.Client, key, token string) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(claimRenew)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				_ = renewScript.Run(context.Background(), claims, []string{key}, token, claimFor.Milliseconds()).Err()
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		_ = unclaimScript.Run(context.Background(), claims, []string{key}, token).Err()
		_ = claims.Close()
	}
}

// renewScript gives the claim KEYS[1] ARGV[2] ms more when it still holds
// ARGV[1].
var renewScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
return 0
`)

// unclaimScript deletes the claim KEYS[1] when it still holds ARGV[1].
var unclaimScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0
`)

// Kind says which server the tests run against: "url", "redis-server" or
// "miniredis".
func Kind() string {
	serverOnce.Do(func() { server, serverErr = start() })
	if server == nil {
		return ""
	}
	return server.kind
}

func (s *source) url(db int) string {
	u := url.URL{Scheme: "redis", Host: s.addr, Path: "/" + strconv.Itoa(db)}
	if s.password != "" {
		u.User = url.UserPassword("", s.password)
	}
	return u.String()
}

func start() (*source, error) {
	if raw := os.Getenv("REKEY_TEST_REDIS_URL"); raw != "" {
		return fromURL(raw)
	}
	if s, err := startServer(); err == nil {
		return s, nil
	} else if os.Getenv("REKEY_TEST_REDIS_REQUIRED") != "" {
		return nil, fmt.Errorf("REKEY_TEST_REDIS_REQUIRED is set and no real Redis could be had: %w", err)
	} else {
		fmt.Fprintf(os.Stderr, "\n*** redistest: NO REAL REDIS (%v); falling back to miniredis. "+
			"Install redis-server or set REKEY_TEST_REDIS_URL. ***\n\n", err)
	}
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		return nil, fmt.Errorf("start miniredis: %w", err)
	}
	return &source{addr: m.Addr(), dbs: 16, kind: "miniredis"}, nil
}

func fromURL(raw string) (*source, error) {
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("REKEY_TEST_REDIS_URL: %w", err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	dbs := 16
	if res, err := c.ConfigGet(context.Background(), "databases").Result(); err == nil {
		if n, err := strconv.Atoi(res["databases"]); err == nil && n > 0 {
			dbs = n
		}
	} else if err := c.Ping(context.Background()).Err(); err != nil {
		return nil, fmt.Errorf("REKEY_TEST_REDIS_URL: ping: %w", err)
	}
	return &source{addr: opt.Addr, password: opt.Password, dbs: dbs, kind: "url"}, nil
}

// Dump returns every key of r's database and its value as text, so a test
// can prove a secret is not stored in clear. Hashes, sets, sorted sets,
// lists and streams are rendered member by member. Keys come sorted, so two
// dumps of the same data are equal whatever order SCAN walks them in.
func Dump(t testing.TB, r *Redis) string {
	t.Helper()
	ctx := context.Background()
	var keys []string
	iter := r.Client.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("redistest: dump: %v", err)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, key := range keys {
		fmt.Fprintf(&b, "%s ", key)
		typ, _ := r.Client.Type(ctx, key).Result()
		switch typ {
		case "string":
			v, _ := r.Client.Get(ctx, key).Result()
			b.WriteString(v)
		case "hash":
			v, _ := r.Client.HGetAll(ctx, key).Result()
			fmt.Fprint(&b, v)
		case "set":
			v, _ := r.Client.SMembers(ctx, key).Result()
			fmt.Fprint(&b, v)
		case "zset":
			v, _ := r.Client.ZRange(ctx, key, 0, -1).Result()
			fmt.Fprint(&b, v)
		case "list":
			v, _ := r.Client.LRange(ctx, key, 0, -1).Result()
			fmt.Fprint(&b, v)
		case "stream":
			v, _ := r.Client.XRange(ctx, key, "-", "+").Result()
			fmt.Fprint(&b, v)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
