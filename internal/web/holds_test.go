package web_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

// TestHeldRevocationShown: a held revocation shows on the dashboard with
// the customer's sentence and in the API's instance state, and the hold
// events read as fixed sentences in the timeline.
func TestHeldRevocationShown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	f.clock.Advance(time.Hour)
	f.rotate("inst-1", "rot-1", "cred-1", 2*time.Hour)
	f.clock.Advance(2 * time.Hour)
	now := f.clock.Now()
	h := store.Hold{InstanceID: "inst-1", CredentialID: "cred-0", RevokeAt: now, HeldAt: now,
		CapAt: now.Add(24 * time.Hour), LastUsedAt: now.Add(-4 * time.Minute), LastUsedBy: "203.0.113.4",
		CheckedAt: now, NextCheckAt: now.Add(5 * time.Minute), Checks: 1}
	if err := f.st.SaveHold(context.Background(), h, store.EventRevocationHeld, h.UsedText(now)); err != nil {
		t.Fatal(err)
	}
	sentence := "Your old MYADDON_URL credential was used 4 minutes ago by 203.0.113.4; it will be revoked once it stops being used, at the latest "
	page := f.get("/dashboard", f.login("inst-1")).body
	for _, want := range []string{`<h2 id="h-holds">Old credentials still in use</h2>`, sentence,
		"Old credential still in use, so its revocation waits: it was used 4 minutes ago by 203.0.113.4 (cred-0)"} {
		if !strings.Contains(page, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	var state struct {
		Holds []struct {
			CredentialID string `json:"credential_id"`
			LastUsedBy   string `json:"last_used_by"`
			Sentence     string `json:"sentence"`
		} `json:"holds"`
	}
	f.api("GET", "/api/v1/instances/inst-1", "").json(t, &state)
	if len(state.Holds) != 1 || state.Holds[0].CredentialID != "cred-0" || !strings.HasPrefix(state.Holds[0].Sentence, sentence) {
		t.Errorf("API holds = %+v", state.Holds)
	}

	// An operator's release reads in the customer's words, not the CLI's.
	if err := f.st.AddEvent(context.Background(), store.Event{Type: store.EventHoldReleased, InstanceID: "inst-1",
		CredentialID: "cred-0", Detail: "released by an operator (rekey holds release)"}); err != nil {
		t.Fatal(err)
	}
	page = f.get("/dashboard", f.login("inst-1")).body
	if !strings.Contains(page, "Old credential no longer held: released by the add-on&#39;s operators (cred-0)") ||
		strings.Contains(page, "rekey holds release") {
		t.Errorf("the timeline does not tell the release in the customer's words:\n%s", page)
	}
}

// TestDeadRevocationShown: a revocation the issuer refused for good waits
// in the dead-letter set for an operator, maybe for days. Like a held one,
// the dashboard does not show it as under way ("Revoking the old
// credential.") nor poll for it; it says an operator is needed, and the
// one-rotation-per-grace limit promises no time nor retry. The API marks
// the credential dead.
func TestDeadRevocationShown(t *testing.T) {
	t.Parallel()
	f := newFixture(t, withCustomerLimits(0, true))
	ctx := context.Background()
	f.register("inst-1", "cred-0")
	f.rotate("inst-1", "rot-1", "cred-1", 2*time.Hour)
	f.clock.Advance(3 * time.Hour)
	dead, err := f.st.SetRevocationDead(ctx, store.Revocation{InstanceID: "inst-1", CredentialID: "cred-0",
		RevokeAt: f.clock.Now().Add(-time.Hour)}, store.DeadRefused)
	if err != nil || !dead {
		t.Fatalf("set dead: %v %v", dead, err)
	}
	session := f.login("inst-1")
	var st struct {
		Status string `json:"status"`
		Busy   bool   `json:"busy"`
	}
	f.get("/dashboard/status", session).json(t, &st)
	if st.Busy || strings.Contains(st.Status, "Revoking") || !strings.Contains(st.Status, "needs an operator") {
		t.Errorf("status = %+v; want not busy, saying the revocation needs an operator", st)
	}
	page := f.get("/dashboard", session).body
	if strings.Contains(page, `data-busy="true"`) || strings.Contains(page, `http-equiv="refresh"`) {
		t.Error("the page of a dead-lettered revocation polls for it")
	}
	for _, unwanted := range []string{"is being retried", "still in use"} {
		if strings.Contains(page, unwanted) {
			t.Errorf("the page says %q of a dead-lettered revocation", unwanted)
		}
	}
	var state struct {
		Previous []struct {
			CredentialID string `json:"credential_id"`
			Dead         bool   `json:"dead"`
		} `json:"previous_credentials"`
	}
	f.api("GET", "/api/v1/instances/inst-1", "").json(t, &state)
	if len(state.Previous) != 1 || state.Previous[0].CredentialID != "cred-0" || !state.Previous[0].Dead {
		t.Errorf("API previous_credentials = %+v; want cred-0 marked dead", state.Previous)
	}
}
