package fleet

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// Plan is what a rotation request would do, worked out from reads only.
type Plan struct {
	// Named is how many distinct instances the request names.
	Named int
	// Rotate is how many rotations would start: at least one Heroku
	// Platform API call each (the config update), one release of the
	// instance's app and of every app it is attached to.
	Rotate int
	// ReadBacks is how many of those rotations are of V1 instances, whose
	// update is confirmed by a second call reading the app's config back.
	ReadBacks int
	// FirstReads is how many of those rotations start with a read of the
	// config Heroku holds, one call each: instances registered without
	// current_config and not rotated since (store.NeedsCurrentFingerprint).
	FirstReads int
	// Instances left out: already rotating (the request would join that
	// rotation), deprovisioned, unknown, or with a previous credential
	// still waiting for revocation (only with Request.SkipIfPrevious).
	InFlight, Deprovisioned, Unknown, PreviousWaiting int
	// AtCap counts the instances that already have as many superseded
	// credentials waiting as the store allows (REKEY_MAX_PREVIOUS): their
	// claim is refused, and a request without SkipGone that names any is
	// refused whole (CapError).
	AtCap int
	// TokenRefreshes is how many V3 instances' OAuth access tokens would
	// expire before their call and need one refresh at Heroku's identity
	// service first (which does not spend the Platform API budget).
	TokenRefreshes int
	// Queue is the queue the tasks would go to.
	Queue string
	// PerHour is the budget the estimate assumes.
	PerHour int
	// Duration is the least time the budget takes to grant Calls, if
	// nothing else spends it.
	Duration time.Duration
}

// Calls is how many Heroku Platform API calls the rotations take when every
// call is answered: one update each, a read-back for each V1 instance and
// a first read where one is needed.
func (pl Plan) Calls() int { return pl.Rotate + pl.ReadBacks + pl.FirstReads }

// Plan works out what Rotate would do with req under a budget of perHour
// Heroku calls an hour, without changing anything: no batch, no claim, no
// task. It reads each instance, and with req.SkipIfPrevious its previous
// credentials, one round trip per thousand instances.
func (p *Producer) Plan(ctx context.Context, req Request, perHour int) (Plan, error) {
	if perHour <= 0 {
		return Plan{}, errors.New("plan: the budget must be a positive number of calls an hour")
	}
	ids := dedupe(req.InstanceIDs)
	pl := Plan{Named: len(ids), Queue: withDefaults(req, len(ids)).Queue, PerHour: perHour}
	var rotations []planned
	for start := 0; start < len(ids); start += checkPage {
		page := ids[start:min(start+checkPage, len(ids))]
		got, err := p.planPage(ctx, &pl, page, req.SkipIfPrevious)
		if err != nil {
			return Plan{}, err
		}
		rotations = append(rotations, got...)
	}
	if pl.Queue == tasks.QueueBulk {
		// As twoCallsFirst holds them, so the feeder releases them.
		first := slices.DeleteFunc(slices.Clone(rotations), func(r planned) bool { return !r.readBack })
		rotations = append(first, slices.DeleteFunc(rotations, func(r planned) bool { return r.readBack })...)
	}
	if err := p.countRefreshes(ctx, &pl, rotations, time.Now()); err != nil {
		return Plan{}, err
	}
	pl.Duration = Estimate(pl.Calls(), perHour)
	return pl, nil
}

// planned is one rotation a plan counts: readBack for a V1 instance (two
// calls), firstRead for one whose config is read first (store.FirstReads).
type planned struct {
	id                  string
	readBack, firstRead bool
}

// planPage counts one page of instances into pl and returns the rotations
// it would start, in the request's order.
func (p *Producer) planPage(ctx context.Context, pl *Plan, ids []string, skipIfPrevious bool) ([]planned, error) {
	ins, err := p.store.Instances(ctx, ids)
	if err != nil {
		return nil, err
	}
	var prev []int64
	limit := int64(p.store.MaxPrevious())
	if skipIfPrevious || limit > 0 {
		if prev, err = p.store.PreviousCounts(ctx, ids); err != nil {
			return nil, err
		}
	}
	var rotate []store.Instance
	for i, in := range ins {
		switch {
		case in.RegisteredAt.IsZero():
			pl.Unknown++
		case in.Deprovisioned():
			pl.Deprovisioned++
		case in.InFlight != "":
			pl.InFlight++
		case skipIfPrevious && prev[i] > 0:
			pl.PreviousWaiting++
		case limit > 0 && prev[i] >= limit:
			pl.AtCap++
		default:
			rotate = append(rotate, in)
		}
	}
	reads, err := p.store.FirstReads(ctx, rotate)
	if err != nil {
		return nil, err
	}
	out := make([]planned, len(rotate))
	for i, in := range rotate {
		out[i] = planned{id: in.ID, readBack: in.APIVersion != store.APIv3, firstRead: reads[i]}
		pl.Rotate++
		if reads[i] {
			pl.FirstReads++
		}
		if out[i].readBack {
			pl.ReadBacks++
		}
	}
	return out, nil
}

// countRefreshes counts the V3 instances whose access token would expire
// before their first call. Rotations run roughly in the order given, each
// after the calls of the ones before it, so the n-th call of the request
// comes at about now + Estimate(n) when the budget is the limit, and the
// Heroku client refreshes a token heroku.DefaultRefreshAhead before it
// expires. Tokens are read a page at a time.
func (p *Producer) countRefreshes(ctx context.Context, pl *Plan, rotations []planned, now time.Time) error {
	calls := 0
	var v3 []string
	var firstCall []int
	flush := func() error {
		if len(v3) == 0 {
			return nil
		}
		exps, err := p.store.TokenExpiries(ctx, v3)
		if err != nil {
			return err
		}
		for i, e := range exps {
			callAt := now.Add(Estimate(firstCall[i], pl.PerHour))
			stale := !e.ExpiresAt.IsZero() && !callAt.Add(heroku.DefaultRefreshAhead).Before(e.ExpiresAt)
			if !e.HasAccess || stale {
				pl.TokenRefreshes++
			}
		}
		v3, firstCall = v3[:0], firstCall[:0]
		return nil
	}
	for _, r := range rotations {
		if !r.readBack {
			v3, firstCall = append(v3, r.id), append(firstCall, calls+1)
		}
		calls++
		if r.readBack {
			calls++
		}
		if r.firstRead {
			calls++
		}
		if len(v3) == checkPage {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// Background burst, as internal/ratelimit sizes it by default: ten seconds
// of budget, of which the last reserveTokens are kept for interactive calls.
const (
	reserveTokens = 2
	burstSeconds  = 10
)

// Estimate is the least time a budget of perHour calls an hour, starting
// full and spent by nobody else, takes to grant calls background calls: the
// calls beyond the background burst, at the budget's rate. It is the
// arithmetic of ratelimit.Limiter.Estimate with default Params, without a
// Limiter or Redis, so a plan writes nothing.
func Estimate(calls, perHour int) time.Duration {
	if perHour <= 0 {
		return 0
	}
	burst := max(reserveTokens+1, perHour*burstSeconds/3600) - reserveTokens
	return time.Duration(max(0, calls-burst)) * (time.Hour / time.Duration(perHour))
}
