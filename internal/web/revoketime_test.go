package web_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The dashboard says when the old credential stops working both as a time,
// with its zone, and as how long from now: a customer who is not on UTC
// had to work out from "3 Mar 2010 09:30:32 UTC" alone how long the apps
// still had to restart. Each count carries the time it counts down to
// (data-until), which the page's script counts again while the tab stays
// open.
func TestDashboardSaysHowLongTheOldCredentialStaysValid(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.register("inst-1", "cred-0")
	f.rotate("inst-1", "rot-1", "cred-1", 2*time.Hour)
	f.clock.Advance(30*time.Minute + 10*time.Second)
	session := f.login("inst-1")
	page := f.get("/dashboard", session).body
	old, err := f.st.Credential(context.Background(), "inst-1", "cred-0")
	if err != nil {
		t.Fatal(err)
	}
	until := `<span data-until="` + old.RevokeAt.UTC().Format(time.RFC3339) + `">`
	if n := strings.Count(page, until); n != 2 {
		t.Errorf("dashboard counts down to the revoke time %d times (%s), want 2: the status and the list", n, until)
	}
	page = regexp.MustCompile(`<span data-until="[^"]*">([^<]*)</span>`).ReplaceAllString(page, "$1")
	for _, want := range []string{
		"The old credential stays valid until ",
		"UTC (in 1 hour 29 minutes) while your apps restart.",
		`UTC</time> (in 1 hour 29 minutes).`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	var status struct{ Status string }
	f.get("/dashboard/status", session).json(t, &status)
	if !strings.Contains(status.Status, "UTC (in 1 hour 29 minutes)") {
		t.Errorf("status poll says %q; want the revoke time and how long from now", status.Status)
	}
}
