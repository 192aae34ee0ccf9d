package web

import (
	"fmt"
	"strconv"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

// timelineLen is how many events the dashboard shows.
const timelineLen = 30

// entry is one line of the dashboard's timeline.
type entry struct {
	At   string `json:"at"`   // RFC 3339, for <time datetime>
	When string `json:"when"` // for people
	Text string `json:"text"`
}

// timeline turns an instance's events, which the store gives newest first,
// into plain sentences, oldest first, so the page reads as a story.
func timeline(events []store.Event) []entry {
	out := make([]entry, len(events))
	for i, e := range events {
		out[len(events)-1-i] = entry{At: e.At.UTC().Format(time.RFC3339), When: clock(e.At), Text: describe(e)}
	}
	return out
}

// describe says what an event means to the customer, in fixed words:
// details (error text, the operator's reason) stay with the operators
// (customer.go).
func describe(e store.Event) string {
	switch e.Type {
	case store.EventRegistered:
		return "Add-on registered for credential rotation"
	case store.EventRequested:
		if e.Detail == store.ReasonScheduled {
			return "Scheduled rotation started"
		}
		return "Rotation requested by " + requester(e.Detail)
	case store.EventJoined:
		return "Joined a rotation already in progress"
	case store.EventMinted:
		return "New credential minted" + credential(e)
	case store.EventPushed:
		return "Pushed to Heroku: apps release and restart"
	case store.EventPromoted:
		return "New credential is now current" + credential(e)
	case store.EventRevokeScheduled:
		return "Old credential will be revoked at " + clock(msTime(e.Detail)) + credential(e)
	case store.EventRevokeExpedited:
		return "Old credential set to be revoked now, at the request of " + expediter(e.Detail) + credential(e)
	case store.EventRevoked:
		return revokedText(e)
	case store.EventFailed:
		return "Rotation failed. " + failureSentence(codeOf(e.Detail), e.Detail)
	case store.EventDiscarded:
		return "Discarded the new credential, which was never published" + credential(e)
	case store.EventRetrying:
		return "A step hit a temporary problem and will be retried"
	case store.EventRevokeFailed:
		return "Revoking the old credential failed and needs an operator" + credential(e)
	case store.EventCancelled:
		return "Rotation cancelled before it started"
	case store.EventDeprovisioned:
		return "Add-on deprovisioned: no further rotations"
	case store.EventScheduleChanged:
		return "Rotation schedule changed"
	case store.EventQuarantined:
		return "Scheduled rotation paused after repeated failures"
	case store.EventUnquarantined:
		return "Scheduled rotation resumed"
	case store.EventRefused:
		return "A rotation request was refused: too many old credentials still wait to be revoked"
	}
	return holdEventText(e)
}

// expediter says who revoked a credential early, in fixed words.
func expediter(who string) string {
	if who == store.ExpeditedByCustomer {
		return "you"
	}
	return "an operator"
}

func revokedText(e store.Event) string {
	if e.Detail == store.CredentialDiscarded {
		return "Unpublished credential revoked" + credential(e)
	}
	return "Old credential revoked" + credential(e)
}

func credential(e store.Event) string {
	if e.CredentialID == "" {
		return ""
	}
	return " (" + e.CredentialID + ")"
}

// msTime reads a time stored as Unix milliseconds.
func msTime(s string) time.Time {
	n, _ := strconv.ParseInt(s, 10, 64)
	return time.UnixMilli(n)
}

// clock formats a time for people, in UTC, to the second, so that steps a
// short grace apart read as far apart as they are.
func clock(t time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	return t.UTC().Format("2 Jan 2006 15:04:05 UTC")
}

// fromNow says how long from now t is, to the minute, cut down rather than
// rounded up, so an old credential is never promised more time than it
// has: "in 1 hour 29 minutes". Beside the time clock writes, it spares a
// customer not on UTC the arithmetic.
func fromNow(now, t time.Time) string {
	switch d := t.Sub(now); {
	case t.IsZero():
		return "at an unknown time"
	case d <= 0:
		return "due now"
	case d < time.Minute:
		return "in less than a minute"
	case d < 48*time.Hour:
		return "in " + plainDuration(d.Truncate(time.Minute))
	default:
		return "in " + plural(int(d/(24*time.Hour)), "day")
	}
}

// age says how long ago t was, roughly.
func age(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "less than a minute"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour")
	}
	return plural(int(d/(24*time.Hour)), "day")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
