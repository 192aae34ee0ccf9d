package store

import "github.com/redis/go-redis/v9"

// ScriptNames maps the SHA1 of each of the store's Lua scripts, as Redis
// knows it (EVALSHA, SCRIPT EXISTS), to the script's name: MONITOR and
// SLOWLOG show a hash and no name. The benchmarks use it to tell where a
// rotation's Redis commands go.
func ScriptNames() map[string]string {
	out := make(map[string]string, len(namedScripts))
	for name, s := range namedScripts {
		out[s.Hash()] = name
	}
	return out
}

// namedScripts are the store's scripts by name (TestEveryScriptIsNamed).
var namedScripts = map[string]*redis.Script{
	"addCounters":        addCountersScript,
	"addEvent":           addEventScript,
	"announceKeyring":    announceKeyringScript,
	"claimGrant":         claimGrantScript,
	"claim":              claimScript,
	"claimDevRun":        claimDevRunScript,
	"clockStopped":       clockStoppedScript,
	"dead":               deadScript,
	"deprovision":        deprovisionScript,
	"expedite":           expediteScript,
	"expireRetired":      expireRetiredScript,
	"fail":               failScript,
	"forgetStrayDue":     forgetStrayDueScript,
	"indexV1":            indexV1Script,
	"instancePage":       instancePageScript,
	"learnFingerprint":   learnFingerprintScript,
	"checkDatabase":      checkDatabaseScript,
	"indexDatabase":      indexDatabaseScript,
	"markPush":           markPushScript,
	"markRevoked":        markRevokedScript,
	"migrateHistory":     migrateHistoryScript,
	"moveDue":            moveDueScript,
	"moveToken":          moveTokenScript,
	"noteScheduled":      noteScheduledScript,
	"noteWait":           noteWaitScript,
	"observeBreaker":     observeBreakerScript,
	"oldestUnheld":       oldestUnheldScript,
	"publishPolicy":      publishPolicyScript,
	"promote":            promoteScript,
	"pruneLiveGone":      pruneLiveGoneScript,
	"putInstance":        putInstanceScript,
	"quarantine":         quarantineScript,
	"readKeyrings":       readKeyringsScript,
	"releaseDevRun":      releaseDevRunScript,
	"renewDevRun":        renewDevRunScript,
	"register":           registerScript,
	"reindex":            reindexScript,
	"releaseGrant":       releaseGrantScript,
	"releaseHold":        releaseHoldScript,
	"requestHoldRelease": requestHoldReleaseScript,
	"resumeBreaker":      resumeBreakerScript,
	"retryDead":          retryDeadScript,
	"saveHold":           saveHoldScript,
	"savePending":        savePendingScript,
	"saveToken":          saveTokenScript,
	"setSchedule":        setScheduleScript,
	"settlePush":         settlePushScript,
	"spendSSO":           spendSSOScript,
	"swapField":          swapFieldScript,
	"unlock":             unlockScript,
	"unquarantine":       unquarantineScript,
}
