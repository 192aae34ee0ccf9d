package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/pacing"
	"github.com/rekeyhq/rekey/internal/sandbox"
	"github.com/rekeyhq/rekey/internal/worker"
	"github.com/rekeyhq/rekey/tasks"
)

// A partner's issuer that answers slowly during a fleet wave at Heroku's
// real pace (REKEY_HEROKU_RATE=4000), under a real `rekey worker`: every
// wave mint is kept unanswered, under the webhook client's 30 s timeout,
// until the customer's own mint arrives, so the wave holds every bulk slot
// for the issuer's whole answer. A customer's `rekey rotate ID` must still
// reach the issuer then, on a slot of the interactive lane no wave fills
// (docs/design.md, "Worker lanes"), not wait for a bulk slot; and the
// feeder, the bulk queue backed up behind the busy slots, must stop
// releasing near MaxPending and keep the rest of the wave held, rather
// than take tokens for tasks that only wait.
func TestSlowIssuerLeavesInteractiveWorkItsSlots(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldParams{})
	samples := w.provision(40, sandbox.Mix{})
	customer := samples[0].ID
	a := newAdversary(t, w)
	var mu sync.Mutex
	waveMints := 0 // wave mints the issuer keeps waiting
	beside := -1   // how many of them waited when the customer's mint came
	customerMint := make(chan struct{})
	var once sync.Once
	a.set(func(rw http.ResponseWriter, r *http.Request, body []byte) bool {
		if r.Method != http.MethodPost || r.URL.Path != "/credentials" {
			time.Sleep(time.Second) // verify, usage, revoke: slow too
			return false
		}
		var req struct {
			InstanceID string `json:"instance_id"`
		}
		_ = json.Unmarshal(body, &req)
		if req.InstanceID == customer {
			once.Do(func() {
				mu.Lock()
				beside = waveMints
				mu.Unlock()
				close(customerMint)
			})
			return false
		}
		mu.Lock()
		waveMints++
		mu.Unlock()
		select {
		case <-customerMint:
		case <-time.After(25 * time.Second):
		}
		mu.Lock()
		waveMints--
		mu.Unlock()
		return false // the demo issuer answers, late
	})
	env := w.processEnv()
	env["REKEY_ISSUER_URL"] = a.url
	env["REKEY_HEROKU_RATE"] = "4000"
	env["REKEY_CONCURRENCY"] = "4"
	startRekey(t, env, "worker")
	bulkSlots := worker.Lanes()[1].Slots(4)

	var wave []string
	for _, s := range samples[1:] {
		wave = append(wave, s.ID)
	}
	runRekey(t, env, append([]string{"rotate", "--queue", tasks.QueueBulk, "--confirm", "--reason", "wave"}, wave...)...)
	waitFor(t, 20*time.Second, "every bulk slot to wait on the issuer's mint", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return waveMints == bulkSlots, fmt.Sprintf("%d wave mints waiting, %d bulk slots", waveMints, bulkSlots)
	})
	// The feeder goes on at the budget's pace until the bulk queue backs up
	// behind the busy slots, then stops.
	waitFor(t, 40*time.Second, "the feeder to back the bulk queue up", func() (bool, string) {
		info, err := w.insp.GetQueueInfo(tasks.QueueBulk)
		return err == nil && info.Pending >= 16, fmt.Sprintf("%+v %v", info, err)
	})
	time.Sleep(3 * time.Second)
	info, err := w.insp.GetQueueInfo(tasks.QueueBulk)
	if err != nil {
		t.Fatal(err)
	}
	held, err := pacing.Held(context.Background(), w.redis.Client)
	if err != nil {
		t.Fatal(err)
	}
	// Up to half of MaxPending more may go between two looks at the queue.
	if info.Pending > 16+8 || held == 0 {
		t.Errorf("%d bulk tasks pending, %d held: want the feeder stopped near MaxPending (16), the rest held",
			info.Pending, held)
	}

	asked := time.Now()
	runRekey(t, env, "rotate", customer, "--reason", "customer")
	select {
	case <-customerMint:
	case <-time.After(20 * time.Second):
		t.Fatal("the customer's mint did not reach the issuer while the wave's mints held every bulk slot")
	}
	reached := time.Since(asked)
	waitFor(t, 30*time.Second, "the customer's rotation to reach Heroku", func() (bool, string) {
		return w.sb.Fake.ConfigWrites(customer) > 0, ""
	})
	mu.Lock()
	defer mu.Unlock()
	if beside != bulkSlots {
		t.Errorf("the customer's mint came beside %d waiting wave mints, want %d: it waited for a bulk slot", beside, bulkSlots)
	}
	t.Logf("wave on %d bulk slots: %d bulk tasks pending, %d held; the customer's mint reached the issuer %v after "+
		"the request, beside %d wave mints, and Heroku %v after it", bulkSlots, info.Pending, held,
		reached.Round(time.Millisecond), beside, time.Since(asked).Round(time.Millisecond))
}
