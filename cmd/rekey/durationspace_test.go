package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/config"
)

// TestDurationFlagsTakeSpaceAroundAsSettingsDo: a duration flag with white
// space around its value (--grace "2h ", pasted or quoted so) is taken as
// REKEY_GRACE="2h " is, where it was refused with Go's "unknown unit \"h \"";
// a space inside one (--grace "2 h", REKEY_GRACE="2 h") is refused, by
// flag and setting alike, saying that the space is what is wrong.
func TestDurationFlagsTakeSpaceAroundAsSettingsDo(t *testing.T) {
	c := newCLI(t)
	ids := c.register(t, 1)
	for _, v := range []string{"2h ", " 2h", "2h\t"} {
		if err := c.run(t, "rotate", "--plan", "--json", "--grace", v, ids[0]); err != nil {
			t.Fatalf("rotate --plan --grace %q: %v", v, err)
		}
		var plan map[string]any
		if err := json.Unmarshal(c.stdout.Bytes(), &plan); err != nil {
			t.Fatalf("plan does not parse (%v): %s", err, c.stdout)
		}
		if g, _ := plan["grace_asked_seconds"].(float64); g != 7200 {
			t.Errorf("rotate --plan --grace %q: grace asked %v, want 7200", v, plan["grace_asked_seconds"])
		}
	}
	if err := c.run(t, "batches", "list", "--limit", "5 "); err != nil {
		t.Errorf("batches list --limit \"5 \": %v", err)
	}

	const want = `no space inside a duration: "2 h" is 2h`
	err := c.run(t, "rotate", "--plan", "--grace", "2 h", ids[0])
	if !isUsage(err) || !strings.Contains(err.Error(), want) {
		t.Errorf("rotate --grace \"2 h\": %v, want a usage error saying %q", err, want)
	}
	vars := c.vars()
	vars["REKEY_GRACE"] = "2 h"
	_, err = config.Load(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("REKEY_GRACE=\"2 h\": %v, want it refused saying %q", err, want)
	}
}
