package devstack

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/store"
)

// AllowForeignRedisFlag is the flag that lets dev run on a Redis holding
// data it did not write; the refusal names it.
const AllowForeignRedisFlag = "--allow-foreign-redis"

// scanLimit bounds the keys the guard reads: a database with more is not
// a dev database, and saying so needs no full scan.
const scanLimit = 100_000

// asynqPrefix starts every key asynq writes.
const asynqPrefix = "asynq:"

// ForeignRedisError is dev's refusal of a Redis that holds data it did not
// write: real workers would take dev's rotations, and dev would disturb
// theirs (README, "Run it").
type ForeignRedisError struct {
	// Addr is the database, host:port/db.
	Addr string
	// Found says what the database holds, one phrase each.
	Found []string
}

func (e *ForeignRedisError) Error() string {
	return fmt.Sprintf("REDIS_URL (%s) holds data rekey dev did not write (%s), so rekey dev changed nothing and stopped; "+
		"point REDIS_URL at an empty Redis, unset it to use an embedded one, or pass %s to run there anyway",
		e.Addr, strings.Join(e.Found, "; "), AllowForeignRedisFlag)
}

// claimRedis makes sure the database is dev's before dev writes anything:
// empty, or holding only what earlier dev runs wrote, which it then clears
// so the run starts afresh. Anything else is a *ForeignRedisError unless
// o.AllowForeignRedis, in which case dev leaves the data alone. Either
// way, asynq servers of other processes polling rekey's queues, or another
// dev run on the database (store.ClaimDevRun), are a *LiveWorkersError
// unless o.AllowLiveWorkers: data dev may share, or an earlier dev run's
// that it would clear, is no reason to share workers. It returns what ends
// the run's lease on the database, which it renews until then.
func claimRedis(ctx context.Context, st *store.Store, o Options) (func(), error) {
	owner := runOwner()
	other, err := st.ClaimDevRun(ctx, owner, devRunLease)
	if err != nil {
		return nil, err
	}
	release := func() {
		// With Redis gone, go-redis would retry for many seconds after the
		// developer's Ctrl-C; the lease lapses on its own anyway.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		_ = st.ReleaseDevRun(ctx, owner)
	}
	if err := claimData(ctx, st, o, owner, other); err != nil {
		release()
		return nil, err
	}
	renew, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		keepLease(renew, st, owner, devRunLease/3, o.Stderr)
	}()
	return func() {
		stop()
		// A renewal under way when Redis stopped answering ends at
		// go-redis's read timeout, not at stop: past releaseTimeout the
		// lease is left to lapse. Released while a renewal may still
		// land, it would be taken again for a lease's length.
		select {
		case <-done:
			release()
		case <-time.After(releaseTimeout):
		}
	}, nil
}

// keepLease renews owner's lease every interval until ctx ends, saying on
// stderr, once each time it happens, that the lease could not be renewed
// (Redis slow or gone: once it lapses, another dev run may start on the
// database and clear it) or that another run took it meanwhile (a laptop
// asleep past the lease: both runs now take each other's instances for
// their own).
func keepLease(ctx context.Context, st *store.Store, owner string, interval time.Duration, stderr io.Writer) {
	t := time.NewTicker(interval)
	defer t.Stop()
	const renewed, failing, taken = 0, 1, 2
	state := renewed
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		other, err := st.RenewDevRun(ctx, owner, devRunLease)
		if ctx.Err() != nil {
			return
		}
		was := state
		switch {
		case err != nil:
			state = failing
			if was != failing {
				fmt.Fprintf(stderr, "rekey dev: could not renew this run's claim on REDIS_URL (%v): once it lapses, another rekey dev may start there and clear this run's data\n", err)
			}
		case other != "":
			state = taken
			if was != taken {
				fmt.Fprintf(stderr, "rekey dev: another rekey dev (%s) took REDIS_URL after this run's claim lapsed: both now run on the same data and take each other's instances for their own; stop one of them\n", other)
			}
		default:
			state = renewed
			if was != renewed {
				fmt.Fprintln(stderr, "rekey dev: this run's claim on REDIS_URL is renewed again")
			}
		}
	}
}

// devRunLease is how long a dev run's claim on the database outlives its
// last renewal: a run killed without ending holds it that long, as its
// asynq servers' heartbeats do.
const devRunLease = 10 * time.Second

// releaseTimeout bounds the release of a dev run's lease at its end.
const releaseTimeout = 2 * time.Second

// runOwner names this run in its claim on the database: its process, and
// a random tag that tells it from another run of the process.
func runOwner() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s pid %d (run %s)", host, os.Getpid(), randomHex(4))
}

// claimData is claimRedis's look at the data for owner's run, other being
// the dev run that holds the database's lease, if any.
func claimData(ctx context.Context, st *store.Store, o Options, owner, other string) error {
	rdb := st.Redis()
	found, n, err := foreignData(ctx, rdb, st)
	if err != nil {
		return err
	}
	if len(found) > 0 && !o.AllowForeignRedis {
		return &ForeignRedisError{Addr: addrOf(rdb), Found: found}
	}
	shared, err := checkLiveWorkers(rdb, len(found) > 0, other, o.AllowLiveWorkers, o.Stderr)
	if err != nil {
		return err
	}
	switch {
	case shared && n > 0:
		// Another process runs on this data (another rekey dev, allowed by
		// --allow-live-workers): clearing it would pull it from under them.
		fmt.Fprintf(o.Stderr, "rekey dev: REDIS_URL holds an earlier rekey dev run's data (%d keys) that live workers use; leaving it\n", n)
	case len(found) > 0:
		fmt.Fprintf(o.Stderr, "rekey dev: REDIS_URL holds data rekey dev did not write (%s); running there anyway (%s)\n",
			strings.Join(found, "; "), AllowForeignRedisFlag)
	case n > 0:
		fmt.Fprintf(o.Stderr, "rekey dev: REDIS_URL holds only an earlier rekey dev run's data (%d keys); clearing it\n", n)
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			return fmt.Errorf("clear the earlier rekey dev run's data: %w", err)
		}
		// FLUSHDB cleared this run's lease too: a run that started
		// meanwhile took it, found the database empty and runs.
		other, err := st.ClaimDevRun(ctx, owner, devRunLease)
		if err != nil {
			return err
		}
		if other != "" && other != owner {
			return &LiveWorkersError{Addr: addrOf(rdb), Dev: other}
		}
	}
	return st.MarkDev(ctx)
}

// foreignData describes what the database holds that dev did not write,
// and counts its keys. A database is dev's when it is empty, or carries
// dev's mark, every key is rekey's or asynq's, and every registered
// instance is one dev registered.
func foreignData(ctx context.Context, rdb redis.UniversalClient, st *store.Store) ([]string, int, error) {
	keys, err := scanKeys(ctx, rdb)
	if err != nil {
		return nil, 0, err
	}
	keys = slices.DeleteFunc(keys, func(k string) bool { return k == store.DevRunKey() })
	if len(keys) == 0 {
		return nil, 0, nil
	}
	mark, err := st.DevMark(ctx)
	if err != nil {
		return nil, 0, err
	}
	var found []string
	if len(keys) >= scanLimit {
		found = append(found, fmt.Sprintf("at least %d keys", scanLimit))
	}
	strangers, err := strangerInstances(ctx, st, mark)
	if err != nil {
		return nil, 0, err
	}
	found = append(found, strangers...)
	if queues := asynqQueues(ctx, rdb); len(queues) > 0 && !mark.Claimed {
		found = append(found, "asynq queues "+strings.Join(queues, ", "))
	}
	if other := otherKeys(keys); len(other) > 0 {
		found = append(found, fmt.Sprintf("%s that %s neither rekey's nor asynq's, such as %q", count(len(other), "key"), isAre(len(other)), other[0]))
	}
	if !mark.Claimed && len(found) == 0 {
		sort.Strings(keys)
		found = append(found, fmt.Sprintf("%s written by rekey outside rekey dev, such as %q", count(len(keys), "key"), keys[0]))
	}
	return found, len(keys), nil
}

// strangerInstances names the registered instances dev did not register.
func strangerInstances(ctx context.Context, st *store.Store, mark store.DevMark) ([]string, error) {
	var ids []string
	err := st.InstanceIDs(ctx, 1000, func(page []string) error {
		for _, id := range page {
			if !mark.Instances[id] {
				ids = append(ids, id)
			}
		}
		return nil
	})
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	return []string{fmt.Sprintf("%s registered by something else, such as %s", count(len(ids), "instance"), ids[0])}, nil
}

// asynqQueues lists the queues asynq knows in the database.
func asynqQueues(ctx context.Context, rdb redis.UniversalClient) []string {
	qs, _ := rdb.SMembers(ctx, asynqPrefix+"queues").Result()
	sort.Strings(qs)
	return qs
}

// otherKeys returns the keys neither rekey nor asynq own, sorted: the
// Heroku budget's key (ratelimit.KeyPrefix) is rekey's, and outlives a run
// cut short by a few seconds.
func otherKeys(keys []string) []string {
	var out []string
	for _, k := range keys {
		if !store.IsKey(k) && !strings.HasPrefix(k, ratelimit.KeyPrefix) && !strings.HasPrefix(k, asynqPrefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// scanKeys returns up to scanLimit keys of the database.
func scanKeys(ctx context.Context, rdb redis.UniversalClient) ([]string, error) {
	var keys []string
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) && len(keys) < scanLimit {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("read REDIS_URL's keys: %w", err)
	}
	return keys, nil
}

// addrOf names the database without its password.
func addrOf(rdb redis.UniversalClient) string {
	if c, ok := rdb.(*redis.Client); ok {
		return fmt.Sprintf("%s/%d", c.Options().Addr, c.Options().DB)
	}
	return "the configured server"
}

// count writes n and noun, plural when n is not 1.
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}
