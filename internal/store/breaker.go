package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The circuit breaker's state (internal/breaker decides what to do with
// it). Every worker process records each Heroku answer to a push in one
// sliding window shared through Redis, so that a run of 401 or 403 answers
// across many instances, the sign of an account-level problem, or of 2xx
// answers that are not Heroku's (a HEROKU_API_URL naming another host), is
// seen as one fact however many workers saw parts of it:
//
//	rekey:breaker:answers  ZSET  instance id -> 4 x ms of its latest answer
//	                             + 0 (no denial), 1 (401), 2 (403) or 3
//	                             (an answer not Heroku's: a 2xx without the
//	                             config, a redirect, a 4xx without Heroku's
//	                             error id)
//	rekey:breaker          HASH  opened_at, what opened it, openings,
//	                             resumed_at, resumed_by
//
// One member per instance: an instance counts once, by its latest answer,
// and an instance that was denied and then answered 200 is no longer
// denied. The answer's kind rides in the score's last two bits, so that
// recording a plain answer, the common case, costs one ZADD, and only a
// denial reads the window back. Members older than the window are trimmed
// at every observation, and the set expires a window after the last one,
// so an idle fleet keeps nothing. (Earlier versions kept two sets,
// rekey:breaker:answered and rekey:breaker:denied; nothing reads them and
// they expire a window after their last write.)

// breakerKey is a HASH of the breaker's state: opened_at (ms; absent while
// closed), window_ms, denied, answered, denied_401, denied_403,
// denied_unexpected and first_denied_at (ms) as they stood when it opened,
// openings (how many times it ever opened), resumed_at (ms) and
// resumed_by.
func breakerKey() string { return keyPrefix + "breaker" }

// breakerAnswersKey is a ZSET of the instances Heroku answered within the
// window, scored by answerScore of their latest answer.
func breakerAnswersKey() string { return keyPrefix + "breaker:answers" }

// answerKinds are the kinds of answer kept in the low bits of a
// breakerAnswersKey score: 4 x ms + kind. Scores stay below 2^53 (ms
// times 4 is about 2^43 today), so they are exact in Redis and in Lua.
var answerKinds = map[int]int{0: 0, DeniedUnauthorized: 1, DeniedForbidden: 2, DeniedUnexpected: 3}

// Statuses that count as a denial: Heroku refused the credentials (401,
// after the client's own token refresh) or the access (403), or a 2xx came
// whose body is not Heroku's answer (heroku.ErrUnexpectedAnswer): what
// answered may not be Heroku at all, for every instance alike.
const (
	DeniedUnauthorized = 401
	DeniedForbidden    = 403
	DeniedUnexpected   = 200
)

// BreakerPolicy says when the breaker opens: when at least Threshold
// distinct instances were denied within Window, and they are at least
// Fraction of the distinct instances Heroku answered within it.
type BreakerPolicy struct {
	Threshold int
	Fraction  float64
	Window    time.Duration
}

func (p BreakerPolicy) validate() error {
	if p.Threshold < 1 || p.Fraction <= 0 || p.Fraction > 1 || p.Window < time.Millisecond {
		return fmt.Errorf("breaker policy %+v: threshold must be positive, fraction in (0, 1], window at least 1ms", p)
	}
	return nil
}

// BreakerVerdict is what recording one answer decided.
type BreakerVerdict int

// Verdicts of ObserveBreaker.
const (
	// BreakerClosed: the breaker is closed and stays closed.
	BreakerClosed BreakerVerdict = iota
	// BreakerOpened: this answer opened the breaker. Of any number of
	// concurrent observations, exactly one gets it for one opening.
	BreakerOpened
	// BreakerOpen: the breaker was open already.
	BreakerOpen
)

var verdicts = map[string]BreakerVerdict{"closed": BreakerClosed, "opened": BreakerOpened, "open": BreakerOpen}

// observeBreakerKeys are the KEYS of observeBreakerScript.
type observeBreakerKeys struct {
	answers string // KEYS[1] breakerAnswersKey
	state   string // KEYS[2] breakerKey
}

func (k observeBreakerKeys) list() []string { return []string{k.answers, k.state} }

// observeBreakerScript records one instance's answer, trims the window and,
// while the breaker is closed and the answer is a denial, opens it when the
// policy says so: in one script, so that of two workers whose answers tip
// the balance only one opens it. A plain answer only makes the share of
// denials smaller, so it never opens the breaker and never reads the
// window back.
//
// ARGV: instance id, answer kind (answerKinds: 0, 1 for a 401, 2 for a
// 403, 3 for an unexpected 2xx), now ms, window ms, threshold, fraction.
// Returns the verdict: "closed", "opened" or "open".
var observeBreakerScript = redis.NewScript(`
local id, kind, now, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local threshold, fraction = tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', (now - window) * 4))
redis.call('ZADD', KEYS[1], string.format('%.0f', now * 4 + kind), id)
redis.call('PEXPIRE', KEYS[1], window)
if redis.call('HEXISTS', KEYS[2], 'opened_at') == 1 then return 'open' end
if kind == 0 then return 'closed' end
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local by, first = {0, 0, 0}, nil
for i = 2, #members, 2 do
  local score = tonumber(members[i])
  local k = score % 4
  if k ~= 0 then
    by[k] = by[k] + 1
    if not first then first = (score - k) / 4 end
  end
end
local denied, answered = by[1] + by[2] + by[3], #members / 2
if denied < threshold or denied < fraction * answered then return 'closed' end
redis.call('HSET', KEYS[2], 'opened_at', ARGV[3], 'window_ms', ARGV[4], 'denied', denied, 'answered', answered,
  'denied_401', by[1], 'denied_403', by[2], 'denied_unexpected', by[3], 'first_denied_at', string.format('%.0f', first))
redis.call('HINCRBY', KEYS[2], 'openings', 1)
return 'opened'
`)

// ObserveBreaker records that Heroku answered a push for instanceID, with
// deniedStatus DeniedUnauthorized, DeniedForbidden or DeniedUnexpected when
// it refused or did not answer as Heroku does, or 0 when it answered
// anything else, and says whether the breaker is, or just became, open
// under p. Safe for any number of concurrent callers in any
// number of processes.
func (s *Store) ObserveBreaker(ctx context.Context, instanceID string, deniedStatus int, p BreakerPolicy) (BreakerVerdict, error) {
	if err := p.validate(); err != nil {
		return BreakerClosed, err
	}
	kind, ok := answerKinds[deniedStatus]
	if !ok {
		return BreakerClosed, fmt.Errorf("observe breaker: status %d is no denial", deniedStatus)
	}
	keys := observeBreakerKeys{answers: breakerAnswersKey(), state: breakerKey()}
	args := []any{instanceID, kind, ms(s.now()), p.Window.Milliseconds(), p.Threshold,
		strconv.FormatFloat(p.Fraction, 'f', -1, 64)}
	verdict, err := observeBreakerScript.Run(ctx, s.rdb, keys.list(), args...).Text()
	if err != nil {
		return BreakerClosed, fmt.Errorf("observe breaker: %w", err)
	}
	return verdicts[verdict], nil
}

// BreakerState is the breaker as stored. While it is open, the counts say
// what opened it.
type BreakerState struct {
	// OpenedAt is when it opened; zero while closed.
	OpenedAt time.Time
	// Window is the policy's window when it opened.
	Window time.Duration
	// Denied and Answered are the distinct instances denied, and answered
	// at all, within the window when it opened; Unauthorized, Forbidden
	// and Unexpected split Denied by status (401, 403, and a 2xx that was
	// not Heroku's answer).
	Denied, Answered, Unauthorized, Forbidden, Unexpected int
	// FirstDeniedAt is the earliest of those denials.
	FirstDeniedAt time.Time
	// Openings counts every opening ever.
	Openings int64
	// ResumedAt and ResumedBy say when and by whom it was last resumed.
	ResumedAt time.Time
	ResumedBy string
}

// Open reports whether the breaker is open.
func (b BreakerState) Open() bool { return !b.OpenedAt.IsZero() }

// BreakerState reads the breaker's state.
func (s *Store) BreakerState(ctx context.Context) (BreakerState, error) {
	m, err := s.rdb.HGetAll(ctx, breakerKey()).Result()
	if err != nil {
		return BreakerState{}, fmt.Errorf("read breaker: %w", err)
	}
	num := func(f string) int { n, _ := strconv.Atoi(m[f]); return n }
	b := BreakerState{OpenedAt: fromMS(m["opened_at"]), Window: time.Duration(num("window_ms")) * time.Millisecond,
		Denied: num("denied"), Answered: num("answered"),
		Unauthorized: num("denied_401"), Forbidden: num("denied_403"), Unexpected: num("denied_unexpected"),
		FirstDeniedAt: fromMS(m["first_denied_at"]), ResumedAt: fromMS(m["resumed_at"]), ResumedBy: m["resumed_by"]}
	b.Openings, _ = strconv.ParseInt(m["openings"], 10, 64)
	return b, nil
}

// resumeBreakerKeys are the KEYS of resumeBreakerScript.
type resumeBreakerKeys struct {
	answers string // KEYS[1] breakerAnswersKey
	state   string // KEYS[2] breakerKey
}

func (k resumeBreakerKeys) list() []string { return []string{k.answers, k.state} }

// resumeBreakerScript closes the breaker and empties the window, so the
// denials that opened it do not open it again at the next answer.
//
// ARGV: now ms, who resumes.
// Returns 1 when the breaker was open, 0 when it was closed already (the
// window is emptied all the same).
var resumeBreakerScript = redis.NewScript(`
redis.call('DEL', KEYS[1])
if redis.call('HEXISTS', KEYS[2], 'opened_at') == 0 then return 0 end
redis.call('HDEL', KEYS[2], 'opened_at', 'window_ms', 'denied', 'answered', 'denied_401', 'denied_403', 'denied_unexpected',
  'first_denied_at')
redis.call('HSET', KEYS[2], 'resumed_at', ARGV[1], 'resumed_by', ARGV[2])
return 1
`)

// ResumeBreaker closes the breaker and forgets the window's answers; by
// names who resumed it. It reports whether the breaker was open.
func (s *Store) ResumeBreaker(ctx context.Context, by string) (bool, error) {
	keys := resumeBreakerKeys{answers: breakerAnswersKey(), state: breakerKey()}
	n, err := resumeBreakerScript.Run(ctx, s.rdb, keys.list(), ms(s.now()), by).Int()
	if err != nil {
		return false, fmt.Errorf("resume breaker: %w", err)
	}
	return n == 1, nil
}

// BreakerWindow counts the distinct instances denied, and answered at all,
// within window before now: what the breaker weighs at the next answer.
func (s *Store) BreakerWindow(ctx context.Context, window time.Duration) (denied, answered int64, err error) {
	since := strconv.FormatInt(ms(s.now().Add(-window))*4, 10)
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, breakerAnswersKey(), &redis.ZRangeBy{Min: since, Max: "+inf"}).Result()
	if err != nil {
		return 0, 0, fmt.Errorf("breaker window: %w", err)
	}
	for _, z := range zs {
		if int64(z.Score)%4 != 0 {
			denied++
		}
	}
	return denied, int64(len(zs)), nil
}
