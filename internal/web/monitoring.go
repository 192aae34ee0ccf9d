package web

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/tasks"
)

// monitoringRoot is where asynqmon is mounted.
const monitoringRoot = "/monitoring"

// sharedRedis hands asynqmon the store's Redis client instead of letting
// it dial its own pool: asynqmon v0.7.2 takes only an asynq.RedisConnOpt
// and calls MakeRedisClient for its Redis info page and again for its
// Inspector. The handler is never closed, so the shared pool stays open
// for the life of the process.
type sharedRedis struct{ c redis.UniversalClient }

// MakeRedisClient implements asynq.RedisConnOpt.
func (o sharedRedis) MakeRedisClient() any { return o.c }

// newMonitoring returns a read-only asynqmon over rdb whose pages show
// task payloads as ids only.
func newMonitoring(rdb redis.UniversalClient) http.Handler {
	return asynqmon.New(asynqmon.Options{
		RootPath:         monitoringRoot,
		RedisConnOpt:     sharedRedis{rdb},
		ReadOnly:         true,
		PayloadFormatter: asynqmon.PayloadFormatterFunc(formatPayload),
		ResultFormatter:  asynqmon.ResultFormatterFunc(formatResult),
	})
}

// unparseable is shown for any payload the tasks package cannot read.
const unparseable = "[unparseable payload]"

// formatPayload shows the ids a task payload carries, read through the
// tasks package's parsers; free text such as the reason is left out.
func formatPayload(taskType string, payload []byte) string {
	t := asynq.NewTask(taskType, payload)
	switch taskType {
	case tasks.TypeRotate:
		p, err := tasks.ParseRotate(t)
		if err != nil {
			return unparseable
		}
		return fields("instance_id", p.InstanceID, "rotation_id", p.RotationID, "batch_id", p.BatchID)
	case tasks.TypeRevoke:
		p, err := tasks.ParseRevoke(t)
		if err != nil {
			return unparseable
		}
		return fields("instance_id", p.InstanceID, "credential_id", p.CredentialID)
	}
	return unparseable
}

// formatResult hides task results: rekey's tasks write none, and anything
// else is not for display.
func formatResult(_ string, result []byte) string {
	if len(result) == 0 {
		return ""
	}
	return "[result hidden]"
}

// fields writes name=value pairs, leaving out empty values.
func fields(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			parts = append(parts, fmt.Sprintf("%s=%s", kv[i], kv[i+1]))
		}
	}
	return strings.Join(parts, " ")
}

// serveMonitoring serves asynqmon, read only: anything but GET and HEAD is
// refused here as well as inside asynqmon.
func (s *server) serveMonitoring(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD") // RFC 9110 §15.5.6: a 405 names the methods that work
		http.Error(w, "Monitoring is read only.", http.StatusMethodNotAllowed)
		return
	}
	s.monitoring.ServeHTTP(w, r)
}
