package tasks_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/rekeyhq/rekey/internal/redistest"
)

// redisURL is the Redis the examples enqueue into, as another app would
// read it from REDIS_URL. TestMain reserves a private database for it.
var redisURL string

func TestMain(m *testing.M) {
	r, release, err := redistest.Database()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tasks: no Redis for the examples:", err)
		os.Exit(1)
	}
	redisURL = r.URL
	code := m.Run()
	release()
	os.Exit(code)
}
