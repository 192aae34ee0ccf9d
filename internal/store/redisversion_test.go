package store_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// newerCommands match the commands and options that Redis added after
// 6.0, health.MinRedisVersion, in Lua (redis.call) and in go-redis calls.
// A Redis that accepts rekey at start must run every command rekey sends:
// ZRANGEBYSCORE, not ZRANGE ... BYSCORE.
var newerCommands = map[string]*regexp.Regexp{
	"ZRANGE BYSCORE/BYLEX/REV (6.2)": regexp.MustCompile(`'(BYSCORE|BYLEX|REV)'|ZRangeArgs|ZRangeStore`),
	"GETDEL, GETEX (6.2)":            regexp.MustCompile(`'GET(DEL|EX)'|\.GetDel\(|\.GetEx\(`),
	"LMOVE, BLMOVE (6.2)":            regexp.MustCompile(`'B?LMOVE'|\.B?LMove\(`),
	"ZRANGESTORE (6.2)":              regexp.MustCompile(`'ZRANGESTORE'`),
	"SET ... GET, EXAT, PXAT (6.2)":  regexp.MustCompile(`'SET'[^\n]*'(GET|EXAT|PXAT)'|SetArgs\{[^}]*Get:`),
	"ZADD GT/LT (6.2)":               regexp.MustCompile(`'ZADD'[^\n]*'(GT|LT)'|\.ZAdd(GT|LT|Args)\(`),
	"EXPIRE NX/XX/GT/LT (7.0)":       regexp.MustCompile(`'P?EXPIRE'[^\n]*'(NX|XX|GT|LT)'|\.Expire(NX|XX|GT|LT)\(`),
	"LPOP/RPOP count (6.2)":          regexp.MustCompile(`\.[LR]PopCount\(`),
	"ZMSCORE, SMISMEMBER (6.2)":      regexp.MustCompile(`'(ZMSCORE|SMISMEMBER)'|\.(ZMScore|SMIsMember)\(`),
	"functions (7.0)":                regexp.MustCompile(`'(FCALL|FUNCTION)'|\.FCall\(|\.Function[A-Z]\w*\(`),
}

// TestNoCommandNewerThanTheMinimumRedis reads every Go file of the module
// but tests for a command or option that Redis added after rekey's
// minimum version.
func TestNoCommandNewerThanTheMinimumRedis(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for what, re := range newerCommands {
			for _, loc := range re.FindAllIndex(src, -1) {
				line := 1 + strings.Count(string(src[:loc[0]]), "\n")
				t.Errorf("%s:%d uses %s: %q", path, line, what, src[loc[0]:loc[1]])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
