package metrics

import (
	"maps"
	"net/http"
	"strconv"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/logplex"
	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/tasks"
)

// The fleet-wide counters are the fields of one Redis hash
// (store.AddCounters), named by family and labels joined with ":", which
// collectCounters splits back. The Recorder adds to the fields these
// functions name, and knownCounters lists them.

func rotationsField(queue, outcome string) string { return "rotations:" + queue + ":" + outcome }
func revocationsField(outcome string) string      { return "revocations:" + outcome }
func budgetWaitField(c ratelimit.Class) string    { return "budget_wait_ms:" + c.String() }
func logLinesField(outcome string) string         { return "logplex:" + outcome }
func issuerCallsField(op, outcome string) string  { return "issuer_calls:" + op + ":" + outcome }
func herokuCallsField(endpoint string, status int) string {
	return "heroku_calls:" + endpoint + ":" + herokuStatusLabel(strconv.Itoa(status))
}

// otherStatus is the status label of every answer whose status HTTP does
// not name.
const otherStatus = "other"

// herokuStatusLabel is the status label of an answer with status, as its
// counter's field spells it: 0 (no answer) and every status net/http names
// (200, 418, 429, 503...) as they are, any other "other". Whatever answers
// for Heroku chooses the status (a proxy before it, a firewall), and the
// Go client takes any three digits: one series each would let it add up to
// 900 series to every endpoint, and as many fields to the counters' hash.
func herokuStatusLabel(status string) string {
	n, err := strconv.Atoi(status)
	if status == "0" || err == nil && status == strconv.Itoa(n) && http.StatusText(n) != "" {
		return status
	}
	return otherStatus
}

// alertStatuses are the statuses of Heroku's answers that rekey_heroku_calls_total
// serves from the start, at 0: 429 (the account's budget spent), 500 and 503
// (Heroku's own errors, as its documentation names them) and 0 (no answer: a
// timeout, a connection refused), the ones an alert on their increase watches.
var alertStatuses = []int{0, 429, 500, 503}

// knownCounters returns the field of every label combination of the
// counters whose labels come from fixed sets. The Collector exports each
// from the start, at 0 until its first event: Prometheus takes a new
// series' first sample for its start, so an alert on
// increase(rekey_rotations_total{outcome="failed"}[15m]) would miss the
// first failure of a series that appears with it. rekey_heroku_calls_total
// has the statuses an alert watches for each endpoint (alertStatuses); any
// other appears with its first call, its status whatever Heroku answers.
func knownCounters() []string {
	var fields []string
	for _, e := range heroku.Endpoints() {
		for _, status := range alertStatuses {
			fields = append(fields, herokuCallsField(e, status))
		}
	}
	for _, q := range rotateQueues() {
		for _, o := range rotationOutcomes {
			fields = append(fields, rotationsField(q, o))
		}
	}
	for _, op := range issuer.Ops() {
		for _, o := range issuerOutcomes {
			fields = append(fields, issuerCallsField(op, o))
		}
	}
	for _, o := range revocationOutcomes {
		fields = append(fields, revocationsField(o))
	}
	for _, c := range ratelimit.Classes() {
		fields = append(fields, budgetWaitField(c))
	}
	for _, o := range logplex.Outcomes() {
		fields = append(fields, logLinesField(o))
	}
	return fields
}

// rotationOutcomes and revocationOutcomes are the handlers' outcomes
// (handlers.Outcomes, handlers.RevocationOutcomes), written here since no
// internal package depends on handlers; a test holds them equal.
var (
	rotationOutcomes = []string{"rotated", "already_done", "joined", "moved", "skipped", "refused", "failed",
		"retry", "rate_limited"}
	revocationOutcomes = []string{revoked, "failed"}
)

// issuerOutcomes are how a call to the issuer ends (Recorder.IssuerCall).
var issuerOutcomes = []string{issuerOK, issuerRefused, issuerFailed}

const (
	// issuerOK: the issuer answered as the contract says, "unsupported"
	// (a 404 to verify or usage) included.
	issuerOK = "ok"
	// issuerRefused: an answer the rotation or revocation takes as final
	// (issuer.IsPermanent: a 4xx; a mint answer naming a credential without
	// a config rekey can use, issuer.UnusableCredentialError).
	issuerRefused = "refused"
	// issuerFailed: no usable answer, retried (a 5xx, a timeout, no
	// connection, an answer that cannot be read; a revocation's 401):
	// the issuer's trouble.
	issuerFailed = "failed"
)

// revoked is the revocation outcome whose lag the Recorder measures.
const revoked = "revoked"

// rotateQueues are the queues rotate tasks run on: all of rekey's but the
// revoke queue, which holds revoke tasks only.
func rotateQueues() []string {
	var queues []string
	for q := range tasks.Queues() {
		if q != tasks.QueueRevoke {
			queues = append(queues, q)
		}
	}
	return queues
}

// withKnownCounters returns counters with each of knownCounters that has
// no field yet at 0.
func withKnownCounters(counters map[string]int64) map[string]int64 {
	all := map[string]int64{}
	for _, f := range knownCounters() {
		all[f] = 0
	}
	maps.Copy(all, counters)
	return all
}
