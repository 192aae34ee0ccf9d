package web_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/redistest"
	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/internal/web"
)

// Another app (the partner's provisioning service) registers an add-on
// instance with rekey and asks for its credential to be rotated, with
// nothing but net/http and the API token.
func ExampleNew() {
	baseURL, token, stop := startExampleServer()
	defer stop()

	send := func(method, path, body string, out any) string {
		req, _ := http.NewRequest(method, baseURL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		_ = json.NewDecoder(resp.Body).Decode(out)
		return resp.Status
	}

	const addon = "01234567-89ab-4cde-8f01-23456789abcd"
	var instance struct {
		CurrentCredentialID string `json:"current_credential_id"`
		InFlightRotation    *struct {
			Reason string `json:"reason"`
		} `json:"in_flight_rotation"`
	}
	status := send("PUT", "/api/v1/instances/"+addon, `{"api_version":"v3","config_vars":["MYADDON_URL"],
		"current_credential_id":"cred-0",
		"oauth":{"access_token":"HRKU-example","refresh_token":"example-refresh","expires_at":"2030-01-01T00:00:00Z"}}`, &instance)
	fmt.Println("register:", status, "current credential", instance.CurrentCredentialID)

	var batch struct {
		BatchID  string `json:"batch_id"`
		Enqueued int    `json:"enqueued"`
		Joined   int    `json:"joined"`
	}
	status = send("POST", "/api/v1/rotations", `{"instance_ids":["`+addon+`"],"reason":"suspected leak"}`, &batch)
	fmt.Println("rotate:", status, "enqueued", batch.Enqueued, "joined", batch.Joined)

	send("GET", "/api/v1/instances/"+addon, "", &instance)
	fmt.Println("in flight:", instance.InFlightRotation.Reason)

	var progress struct {
		Total    int  `json:"total"`
		InFlight int  `json:"in_flight"`
		Done     bool `json:"done"`
	}
	send("GET", "/api/v1/batches/"+batch.BatchID, "", &progress)
	fmt.Println("batch:", progress.Total, "total,", progress.InFlight, "in flight, done", progress.Done)

	// Output:
	// register: 200 OK current credential cred-0
	// rotate: 202 Accepted enqueued 1 joined 0
	// in flight: suspected leak
	// batch: 1 total, 1 in flight, done false
}

// startExampleServer serves the web handler over a private Redis database
// and returns its URL, its API token and a function that stops it.
func startExampleServer() (baseURL, token string, stop func()) {
	tb := &exampleTB{}
	r := redistest.New(tb)
	sealer, err := seal.New(bytes.Repeat([]byte{1}, seal.KeySize))
	if err != nil {
		panic(err)
	}
	st := store.New(r.Client, sealer)
	queue := asynq.NewClientFromRedisClient(r.Client)
	token = "example-api-token"
	h, err := web.New(web.Params{Store: st, Producer: fleet.NewProducer(st, queue), Registry: registry.New(st, nil),
		Inspector: asynq.NewInspectorFromRedisClient(r.Client), Enqueuer: queue, APIToken: secret.New(token),
		DashboardPassword: secret.New("example-password"), SSOSalt: secret.New("example-salt"), Logger: zerolog.Nop()})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(h)
	return srv.URL, token, func() { srv.Close(); tb.cleanup() }
}

// exampleTB lets an Example, which has no *testing.T, borrow a database
// from redistest. Only the methods redistest calls are implemented; the
// embedded interface satisfies the rest.
type exampleTB struct {
	testing.TB
	cleanups []func()
}

func (*exampleTB) Helper() {}

func (*exampleTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

func (tb *exampleTB) Cleanup(f func()) { tb.cleanups = append(tb.cleanups, f) }

func (tb *exampleTB) cleanup() {
	for i := len(tb.cleanups) - 1; i >= 0; i-- {
		tb.cleanups[i]()
	}
}
