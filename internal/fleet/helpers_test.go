package fleet_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/store"
)

// fixture is one test's Redis, store and queue client.
type fixture struct {
	r     *redistest.Redis
	st    *store.Store
	queue *asynq.Client
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	r := redistest.New(tb)
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		tb.Fatal(err)
	}
	q := asynq.NewClientFromRedisClient(r.Client)
	return &fixture{r: r, st: store.New(r.Client, sealer), queue: q}
}

// instanceID is the id of the i-th registered test instance.
func instanceID(i int) string { return fmt.Sprintf("inst-%05d", i) }

// register registers n V3 instances from 32 goroutines.
func (f *fixture) register(tb testing.TB, n int) []string {
	tb.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = instanceID(i)
	}
	errs := make(chan error, 1)
	next := make(chan string)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for id := range next {
				err := f.st.PutInstance(context.Background(), store.Registration{ID: id,
					APIVersion: store.APIv3, ConfigVars: []string{"MYADDON_URL"}, CurrentCredentialID: "cred-0"})
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for _, id := range ids {
		next <- id
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		tb.Fatal(err)
	default:
	}
	return ids
}
