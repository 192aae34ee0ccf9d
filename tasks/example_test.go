package tasks_test

import (
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/rekeyhq/rekey/tasks"
)

// Another Go app (a billing service, an incident bot) asks rekey to rotate an
// instance's credential with its own asynq client: it builds the task with
// the tasks package, which attaches rekey's defaults, and enqueues it into
// the Redis rekey's workers serve.
func Example() {
	opt, err := asynq.ParseRedisURI(redisURL) // the app's REDIS_URL
	if err != nil {
		log.Fatal(err)
	}
	client := asynq.NewClient(opt)
	defer client.Close()

	task, err := tasks.NewRotateTask(tasks.RotatePayload{
		InstanceID: "01234567-89ab-4def-8123-456789abcdef",
		Reason:     "customer request",
		// Optional; zero leaves the instance's own grace. Write the unit:
		// Grace: 86400 would be 86.4µs, which NewRotateTask refuses.
		Grace: tasks.Duration(24 * time.Hour),
	}, asynq.Queue(tasks.QueueInteractive))
	if err != nil {
		log.Fatal(err)
	}
	info, err := client.Enqueue(task)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("type:", info.Type)
	fmt.Println("queue:", info.Queue)
	fmt.Println("task id starts with rotate:", strings.HasPrefix(info.ID, "rotate:"))
	// Output:
	// type: rekey:rotate
	// queue: interactive
	// task id starts with rotate: true
}
