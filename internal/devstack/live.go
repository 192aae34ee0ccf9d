package devstack

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/tasks"
)

// AllowLiveWorkersFlag is the flag that lets dev run on a Redis where
// other processes' asynq servers poll rekey's queues; the refusal names it.
const AllowLiveWorkersFlag = "--allow-live-workers"

// LiveWorkersError is dev's refusal of a Redis on which asynq servers of
// other processes poll rekey's queues: real `rekey worker` processes, or
// another `rekey dev`. dev's workers would take their tasks and rotate
// real instances against dev's fake Heroku and demo issuer, and theirs
// would take dev's. cmd/rekey reports it as a usage error (exit 2).
//
// A database holding data dev did not write (run there with
// --allow-foreign-redis) is refused the same way when rekey's queues hold
// tasks, whether or not a worker polls them now: a fleet scaled to zero or
// restarting has no live server, and dev's workers would take its
// rotations and its scheduled revocations, which dev's demo issuer answers
// as if revoked.
type LiveWorkersError struct {
	// Addr is the database, host:port/db.
	Addr string
	// Servers are the live servers found, each with its host and pid.
	Servers []*asynq.ServerInfo
	// Tasks counts the tasks waiting in rekey's queues of a database that
	// holds data dev did not write.
	Tasks int
	// Dev names the process of another dev run on the database, which
	// may not have started its workers yet (store.ClaimDevRun).
	Dev string
}

func (e *LiveWorkersError) Error() string {
	return fmt.Sprintf("REDIS_URL (%s) has %s, so rekey dev changed nothing and stopped: its workers would take "+
		"those tasks and rotate or revoke real instances against a fake Heroku and issuer; stop those workers, "+
		"point REDIS_URL at another Redis, or pass %s to run beside them anyway",
		e.Addr, e.found(), AllowLiveWorkersFlag)
}

// found says what the refusal found: the live servers, the tasks.
func (e *LiveWorkersError) found() string {
	var found []string
	if len(e.Servers) > 0 {
		found = append(found, count(len(e.Servers), "live asynq server")+" polling rekey's queues, in "+processes(e.Servers))
	}
	if e.Dev != "" {
		found = append(found, "another rekey dev running on it, in "+e.Dev)
	}
	if e.Tasks > 0 {
		found = append(found, count(e.Tasks, "task")+" waiting in rekey's queues beside data rekey dev did not write")
	}
	return strings.Join(found, ", and ")
}

// checkLiveWorkers refuses a database where asynq servers poll any of
// rekey's queues, unless allow, in which case it says so on log. It runs
// before dev starts its own servers, so every live one is another
// process's. asynq lists only servers whose heartbeat is recent: a server
// beats every 5 s, clears its entry when it shuts down, and one killed
// lapses 10 s after its last beat.
//
// With foreign (the database holds data dev did not write), the tasks
// waiting in rekey's queues count too (LiveWorkersError). It reports
// whether it found anything, so that claimRedis clears nothing then.
func checkLiveWorkers(rdb redis.UniversalClient, foreign bool, dev string, allow bool, log io.Writer) (bool, error) {
	insp := asynq.NewInspectorFromRedisClient(rdb)
	all, err := insp.Servers()
	if err != nil {
		return false, fmt.Errorf("list the asynq servers on REDIS_URL: %w", err)
	}
	e := &LiveWorkersError{Addr: addrOf(rdb), Dev: dev}
	for _, s := range all {
		if PollsRekeyQueues(s) {
			e.Servers = append(e.Servers, s)
		}
	}
	if foreign {
		if e.Tasks, err = waitingTasks(insp); err != nil {
			return false, err
		}
	}
	switch {
	case len(e.Servers) == 0 && e.Tasks == 0 && e.Dev == "":
		return false, nil
	case allow:
		fmt.Fprintf(log, "rekey dev: REDIS_URL has %s; running beside them anyway (%s)\n", e.found(), AllowLiveWorkersFlag)
		return true, nil
	}
	return true, e
}

// waitingTasks counts the tasks in rekey's queues that a worker would
// take: pending, active, scheduled or retrying.
func waitingTasks(insp *asynq.Inspector) (int, error) {
	queues, err := insp.Queues()
	if err != nil {
		return 0, fmt.Errorf("list the asynq queues on REDIS_URL: %w", err)
	}
	n := 0
	for _, q := range queues {
		if _, ok := tasks.Queues()[q]; !ok {
			continue
		}
		info, err := insp.GetQueueInfo(q)
		if err != nil {
			return 0, fmt.Errorf("read asynq queue %s on REDIS_URL: %w", q, err)
		}
		n += info.Pending + info.Active + info.Scheduled + info.Retry
	}
	return n, nil
}

// PollsRekeyQueues reports whether s takes tasks from a queue of rekey's:
// a server on other queues neither takes dev's tasks nor gives dev its.
func PollsRekeyQueues(s *asynq.ServerInfo) bool {
	for q := range s.Queues {
		if _, ok := tasks.Queues()[q]; ok {
			return true
		}
	}
	return false
}

// processes names the processes servers run in, "host pid 4242" each,
// sorted: a `rekey worker` runs one server per lane (internal/worker).
func processes(servers []*asynq.ServerInfo) string {
	seen := map[string]bool{}
	var names []string
	for _, s := range servers {
		name := fmt.Sprintf("%s pid %d", s.Host, s.PID)
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return count(len(names), "process") + " (" + strings.Join(names, ", ") + ")"
}
