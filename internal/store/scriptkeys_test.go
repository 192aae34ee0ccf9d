package store

import (
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// keyLister is a script's KEYS struct.
type keyLister interface{ list() []string }

// TestScriptKeysInOrder checks each KEYS struct against its script: list
// returns every field, in declaration order (so the struct's KEYS[n]
// comments hold), and the script reads exactly as many keys as the struct
// has fields. Every script of the package must be listed.
func TestScriptKeysInOrder(t *testing.T) {
	sources := luaSources(t, ".")
	cases := []struct {
		script string
		keys   keyLister
		more   []string // Lua the script includes that reads its KEYS too
	}{
		{"claimScript", newClaimKeys("inst", "rot"), []string{"luaLimits"}},
		{"putInstanceLua", newPutInstanceKeys("inst", "cred"), []string{"putInstanceScript", "luaV1Apps"}},
		{"registerScript", newRegisterKeys("inst", "cred"), []string{"putInstanceLua", "luaV1Apps"}},
		{"claimGrantScript", newClaimGrantKeys("inst"), nil},
		{"releaseGrantScript", releaseGrantKeys{claim: grantClaimKey("inst")}, nil},
		{"savePendingScript", newSavePendingKeys("inst", "rot", "cred"), nil},
		{"learnFingerprintScript", newLearnFingerprintKeys("inst", "cred"), nil},
		{"promoteScript", newPromoteKeys("inst", "rot", "cred"), nil},
		{"failScript", newFailKeys("inst", "rot", "cred"), nil},
		{"markRevokedScript", newMarkRevokedKeys("inst", "cred"), nil},
		{"expediteScript", newExpediteKeys("inst", "cred"), nil},
		{"markPushScript", markPushKeys{rotation: rotationKey("rot"), instance: instanceKey("inst")}, nil},
		{"checkDatabaseScript", checkDatabaseKeys{databases: databasesKey(), instancePrefix: instanceKey("")}, nil},
		{"indexDatabaseScript", indexDatabaseKeys{instance: instanceKey("inst"), database: databaseKey("inst"), databases: databasesKey()}, nil},
		{"settlePushScript", rotationOnlyKeys{rotation: rotationKey("rot")}, nil},
		{"noteWaitScript", rotationOnlyKeys{rotation: rotationKey("rot")}, nil},
		{"deprovisionScript", newDeprovisionKeys("inst"), nil},
		{"quarantineScript", newQuarantineKeys("inst"), nil},
		{"deadScript", newDeadKeys("inst", "cred"), nil},
		{"retryDeadScript", newDeadKeys("inst", "cred").back(), nil},
		{"expireRetiredScript", newExpireRetiredKeys("inst"), nil},
		{"moveDueScript", moveDueKeys{due: dueKey(), instanceEvents: historyKey("inst"), events: eventsKey()}, nil},
		{"noteScheduledScript", noteScheduledKeys{scheduled: scheduledKey(), instanceEvents: historyKey("inst"), events: eventsKey()}, nil},
		{"setScheduleScript", setScheduleKeys{instance: instanceKey("inst"), due: dueKey(), schedule: scheduleKey(),
			instanceEvents: historyKey("inst"), events: eventsKey()}, nil},
		{"unquarantineScript", unquarantineKeys{instance: instanceKey("inst"), due: dueKey(), schedule: scheduleKey(),
			quarantined: quarantinedKey(), instanceEvents: historyKey("inst"), events: eventsKey()}, nil},
		{"reindexScript", reindexKeys{instance: instanceKey("inst"), due: dueKey(), schedule: scheduleKey()}, nil},
		{"indexV1Script", indexV1Keys{instance: instanceKey("inst"), v1Apps: v1AppsKey()}, []string{"luaV1Apps"}},
		{"addEventScript", addEventKeys{history: historyKey("inst"), events: eventsKey()}, nil},
		{"migrateHistoryScript", migrateHistoryKeys{legacy: legacyEventsKey("inst"), history: historyKey("inst")}, nil},
		{"saveTokenScript", newSaveTokenKeys("inst"), nil},
		{"moveTokenScript", newSaveTokenKeys("inst"), nil},
		{"unlockScript", unlockKeys{lock: sweepLockKey()}, nil},
		{"publishPolicyScript", publishPolicyKeys{schedule: scheduleKey(), clocks: clocksKey()}, nil},
		{"forgetStrayDueScript", forgetStrayDueKeys{credential: credentialKey("inst", "cred"), revokeDue: revokeDueKey()}, nil},
		{"clockStoppedScript", clockStoppedKeys{clocks: clocksKey(), schedule: scheduleKey()}, nil},
		{"addCountersScript", addCountersKeys{counters: countersKey()}, nil},
		{"swapFieldScript", swapKeys{hash: instanceKey("inst")}, nil},
		{"observeBreakerScript", observeBreakerKeys{answers: breakerAnswersKey(), state: breakerKey()}, nil},
		{"spendSSOScript", spendSSOKeys{token: ssoUsedKey("a"), cover: ssoUsedKey("b")}, nil},
		{"resumeBreakerScript", resumeBreakerKeys{answers: breakerAnswersKey(), state: breakerKey()}, nil},
		{"announceKeyringScript", keyringKeys{keyrings: keyringsKey()}, nil},
		{"readKeyringsScript", keyringKeys{keyrings: keyringsKey()}, nil},
		{"releaseHoldScript", releaseHoldKeys{hold: holdKey("inst", "cred"), holds: holdsKey(),
			credential: credentialKey("inst", "cred"), revokeDue: revokeDueKey()}, nil},
		{"requestHoldReleaseScript", requestHoldReleaseKeys{hold: holdKey("inst", "cred")}, nil},
		{"saveHoldScript", saveHoldKeys{hold: holdKey("inst", "cred"), holds: holdsKey(),
			credential: credentialKey("inst", "cred")}, nil},
		{"pruneLiveGoneScript", pruneLiveGoneKeys{liveGone: liveGoneKey(), instance: instanceKey("inst"), set: livePrefix() + "00"}, nil},
		{"oldestUnheldScript", oldestUnheldKeys{revokeDue: revokeDueKey(), holds: holdsKey()}, nil},
		{"instancePageScript", instancePageKeys{instances: instancesKey()}, nil},
		{"claimDevRunScript", devRunKeys{run: devRunKey()}, nil},
		{"renewDevRunScript", devRunKeys{run: devRunKey()}, nil},
		{"releaseDevRunScript", devRunKeys{run: devRunKey()}, nil},
	}
	listed := map[string]bool{"putInstanceScript": true} // its Lua is putInstanceLua
	for _, c := range cases {
		listed[c.script] = true
	}
	for name := range sources {
		if strings.HasSuffix(name, "Script") && !listed[name] {
			t.Errorf("%s has no KEYS struct checked here", name)
		}
	}
	for _, c := range cases {
		t.Run(c.script, func(t *testing.T) {
			src := ""
			for _, name := range append([]string{c.script}, c.more...) {
				s, ok := sources[name]
				if !ok {
					t.Fatalf("no Lua source named %s", name)
				}
				src += s
			}
			v := reflect.ValueOf(c.keys)
			list := c.keys.list()
			if len(list) != v.NumField() {
				t.Fatalf("list() returns %d keys, the struct has %d fields", len(list), v.NumField())
			}
			seen := map[string]bool{}
			for i, k := range list {
				if f := v.Field(i); k != f.String() {
					t.Errorf("KEYS[%d] is %q, want field %s (%q)", i+1, k, v.Type().Field(i).Name, f.String())
				}
				if k == "" || seen[k] {
					t.Errorf("KEYS[%d] %q is empty or repeated", i+1, k)
				}
				seen[k] = true
			}
			if n := maxKeyIndex(src); n != v.NumField() {
				t.Errorf("the script reads up to KEYS[%d], the struct has %d fields", n, v.NumField())
			}
		})
	}
}

var keyIndex = regexp.MustCompile(`KEYS\[(\d+)\]`)

func maxKeyIndex(src string) int {
	n := 0
	for _, m := range keyIndex.FindAllStringSubmatch(src, -1) {
		i, _ := strconv.Atoi(m[1])
		n = max(n, i)
	}
	return n
}
