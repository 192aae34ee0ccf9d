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
type LiveWorkersError struct {
	// Addr is the database, host:port/db.
	Addr string
	// Servers are the live servers found, each with its host and pid.
	Servers []*asynq.ServerInfo
}

func (e *LiveWorkersError) Error() string {
	return fmt.Sprintf("REDIS_URL (%s) has %s polling rekey's queues, in %s, so rekey dev changed nothing and "+
		"stopped: its workers would take their tasks and rotate real instances against a fake Heroku and issuer; "+
		"stop those workers, point REDIS_URL at another Redis, or pass %s to run beside them anyway",
		e.Addr, count(len(e.Servers), "live asynq server"), processes(e.Servers), AllowLiveWorkersFlag)
}

// checkLiveWorkers refuses a database where asynq servers poll any of
// rekey's queues, unless allow, in which case it says so on log. It runs
// before dev starts its own servers, so every live one is another
// process's. asynq lists only servers whose heartbeat is recent: a server
// beats every 5 s, clears its entry when it shuts down, and one killed
// lapses 10 s after its last beat.
func checkLiveWorkers(rdb redis.UniversalClient, allow bool, log io.Writer) error {
	all, err := asynq.NewInspectorFromRedisClient(rdb).Servers()
	if err != nil {
		return fmt.Errorf("list the asynq servers on REDIS_URL: %w", err)
	}
	var live []*asynq.ServerInfo
	for _, s := range all {
		if pollsRekeyQueues(s) {
			live = append(live, s)
		}
	}
	switch {
	case len(live) == 0:
		return nil
	case allow:
		fmt.Fprintf(log, "rekey dev: %s polling rekey's queues on REDIS_URL, in %s; running beside them anyway (%s)\n",
			count(len(live), "live asynq server"), processes(live), AllowLiveWorkersFlag)
		return nil
	}
	return &LiveWorkersError{Addr: addrOf(rdb), Servers: live}
}

// pollsRekeyQueues reports whether s takes tasks from a queue of rekey's:
// a server on other queues neither takes dev's tasks nor gives dev its.
func pollsRekeyQueues(s *asynq.ServerInfo) bool {
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
