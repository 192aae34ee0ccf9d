// Package redistest gives tests a real Redis database of their own.
//
// Where Redis comes from, in order:
//  1. REKEY_TEST_REDIS_URL, when set: that server (its databases are handed
//     out one per test, so it needs as many as the tests run at once).
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
	nextDB     atomic.Int64
)

// source is the server that hands out databases.
type source struct {
	addr     string
	password string
	dbs      int
	kind     string
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
	db := int(nextDB.Add(1)-1) % server.dbs
	r := &Redis{Addr: server.addr, DB: db, URL: server.url(db)}
	r.Client = redis.NewClient(&redis.Options{Addr: server.addr, Password: server.password, DB: db})
	if err := r.Client.FlushDB(context.Background()).Err(); err != nil {
		_ = r.Client.Close()
		return nil, nil, fmt.Errorf("flush db %d on %s: %w", db, server.kind, err)
	}
	release := func() {
		_ = r.Client.FlushDB(context.Background()).Err()
		_ = r.Client.Close()
	}
	return r, release, nil
}

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
