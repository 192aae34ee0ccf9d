package handlers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/ratelimit"
	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
	"github.com/rekeyhq/rekey/tasks"
)

// Rotate runs tasks.TypeRotate: claim the rotation, mint (or reload) its
// credential, verify it, push it to Heroku in one call, promote it and
// schedule the old credential's revocation. Every step is idempotent, so
// the task may run twice, or twice at once (docs/design.md, I6).
type Rotate struct{ deps *Deps }

// rotation is one run of a rotate task.
type rotation struct {
	p     tasks.RotatePayload
	queue string
	claim store.Claim
	log   zerolog.Logger
	// credID and config are the rotation's credential, once minted or
	// reloaded.
	credID string
	config map[string]secret.String
	// pushAttempted is true when the claim found a push attempted, or this
	// run is about to send one: Heroku may hold the credential.
	pushAttempted bool
	// marks counts the push attempts this run recorded and has not yet
	// settled (store.SettlePush).
	marks int
	// known is every secret value this run has seen; they are scrubbed
	// from any text the run keeps or returns (I5).
	known []secret.String
	// belowFloor is the longest positive grace the payload or the
	// rotation's record asked for below the floor, set aside for the
	// instance's own grace (honoured); zero when none was.
	belowFloor time.Duration
	// waveFailed is set when the run ended the rotation for good for a
	// reason that may be the whole wave's, not this instance's: the issuer
	// refusing rekey's signature (store.Failure.Fleetwide), any other
	// permanent failure at the issuer's steps, or a push answered in a way
	// that is not Heroku's (waveFailure); or when the run was put off by
	// Heroku's token endpoint answering 429 (tokenLater), which no shared
	// pause covers, as the Platform API's budget covers its own 429s.
	waveFailed bool
}

// remember adds config's values to the secrets the run scrubs.
func (r *rotation) remember(config map[string]secret.String) {
	for _, v := range config {
		r.known = append(r.known, v)
	}
}

// minOtherSecret is the shortest value of a var not the instance's, read
// back from Heroku, that the run scrubs as a secret.
const minOtherSecret = 8

// rememberRead adds the values of a config read from Heroku to the secrets
// the run scrubs: every value of the instance's own vars, and those of the
// app's other vars (a V1 read-back answers the app's whole config: its
// other add-ons' and its own settings) that may be a secret, of
// minOtherSecret bytes or more. A setting's short value ("2", "on",
// "true") is no secret, and scrubbed it made every text the run keeps
// unreadable ("a [redacted]xx whose c[redacted]fig").
func (r *rotation) rememberRead(got map[string]secret.String) {
	own := make(map[string]bool, len(r.claim.Instance.ConfigVars))
	for _, name := range r.claim.Instance.ConfigVars {
		own[name] = true
	}
	for name, v := range got {
		if own[name] || len(v.Reveal()) >= minOtherSecret {
			r.known = append(r.known, v)
		}
	}
}

// scrub makes outside text fit to keep: secrets removed, length capped.
func (r *rotation) scrub(text string) string { return scrubText(text, maxStoredText, r.known) }

// ProcessTask implements asynq.Handler.
func (h *Rotate) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.ParseRotate(t)
	if err != nil {
		// Capped like every error the handlers return: it quotes a
		// payload another app may have written by hand.
		return scrubError(permanent(err), nil)
	}
	queue, _ := asynq.GetQueueName(ctx)
	if queue == tasks.QueueRevoke {
		return h.moveOffRevokeQueue(ctx, p)
	}
	r := &rotation{p: p, queue: queue,
		log: zerolog.Ctx(ctx).With().Str("instance_id", p.InstanceID).Str("rotation_id", p.RotationID).Logger()}
	// Set aside before the claim, so that the rotation's record, which a
	// rebuilt task and a joining request read, never keeps it.
	r.p.Grace = tasks.Duration(h.honoured(r, time.Duration(p.Grace)))
	outcome, err := h.run(ctx, r)
	h.deps.observeRotation(ctx, queue, outcome, r.waveFailed)
	// The error becomes the task's last error (/monitoring) and the
	// worker's log line: it passes the scrubber like every kept text.
	return scrubError(err, r.known)
}

// moveOffRevokeQueue enqueues the rotation of a rotate task found on the
// revoke queue on the default queue, with rekey's options, before anything
// is claimed, and ends the task found there. The tasks package refuses a
// rotation on the revoke queue, but another app's asynq client, or an older
// version of the package, may put one there: run there, each would hold a
// slot of the revocations due for minutes, and a flood of them would run
// revocations past their revoke time. A task of the rotation already on
// the default queue is as good as the one enqueued.
func (h *Rotate) moveOffRevokeQueue(ctx context.Context, p tasks.RotatePayload) error {
	// No floor: the worker that runs it sets a grace below its own aside.
	t, err := tasks.NewRotateTaskWithFloor(p, 0, asynq.Queue(tasks.QueueDefault))
	if err != nil {
		return permanent(err)
	}
	if _, err := h.deps.Enqueuer.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("move rotation %s off the %s queue, which is for revocations: %w",
			p.RotationID, tasks.QueueRevoke, err)
	}
	zerolog.Ctx(ctx).Warn().Str("instance_id", p.InstanceID).Str("rotation_id", p.RotationID).
		Str("moved_to", tasks.QueueDefault).Str("detail", "a rotate task on the revoke queue, which is for "+
		"revocations: give rotations the interactive, default or bulk queue").Msg("rotation_moved_off_revoke_queue")
	return nil
}

// codeStaleTask starts the error of a rotate task refused as stale.
const codeStaleTask = "stale_task"

// checkNotStale refuses a task asked for longer ago than rekey keeps a
// finished rotation's record (store.FinishedRetention) whose rotation
// rekey no longer knows and that ran before: an archived task, which asynq
// keeps for 90 days, run again by hand (asynqmon's "run", asynq's CLI).
// Claimed, it would start a new rotation at once, a bulk one outside the
// feeder's pace, restarting the customer's app for a request weeks old,
// under a rotation id the issuer may have minted a credential for that is
// revoked by now (tasks.RotatePayload.RotationID). A task as old whose
// rotation is still recorded (in flight for weeks, run again by the sweep)
// runs, and so does one that never ran (asynq's record of it holds no
// failure and no retry): another app's rotation scheduled weeks ahead, its
// RequestedAt the day it was built. One without a request time (an older
// producer's) cannot be told apart and runs as before, as does every task
// when Deps.Tasks is nil.
func (h *Rotate) checkNotStale(ctx context.Context, r *rotation) error {
	at := r.p.RequestedAt
	if h.deps.Tasks == nil || at.IsZero() || h.deps.now().Sub(at) <= store.FinishedRetention {
		return nil
	}
	_, err := h.deps.Store.Rotation(ctx, r.p.RotationID)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("look up rotation %s, asked for at %s: %w", r.p.RotationID, at.UTC().Format(time.RFC3339), err)
	}
	id, _ := asynq.GetTaskID(ctx)
	info, err := h.deps.Tasks.GetTaskInfo(r.queue, id)
	if err != nil {
		return fmt.Errorf("read rotate task %s, asked for at %s: %w", id, at.UTC().Format(time.RFC3339), err)
	}
	if info.LastFailedAt.IsZero() && info.Retried == 0 {
		return nil // its first run
	}
	return permanent(fmt.Errorf("%s: rotate task asked for at %s, more than %d days ago, for rotation %s, which rekey no "+
		"longer knows (an archived task run again): it does not rotate the instance now; enqueue a new rotate task "+
		"(a new rotation id) to rotate it", codeStaleTask, at.UTC().Format(time.RFC3339), store.FinishedRetention/(24*time.Hour),
		r.p.RotationID))
}

// request is the claim a run of the task makes.
func (r *rotation) request() store.RotationRequest {
	return store.RotationRequest{InstanceID: r.p.InstanceID, RotationID: r.p.RotationID,
		BatchID: r.p.BatchID, Reason: r.p.Reason, Queue: r.queue, Grace: time.Duration(r.p.Grace),
		SkipIfPrevious: r.p.SkipIfPrevious, Overtakes: fleet.Overtakes(r.queue)}
}

func (h *Rotate) run(ctx context.Context, r *rotation) (outcome string, err error) {
	if err := h.checkNotStale(ctx, r); err != nil {
		if isPermanent(err) {
			return OutcomeFailed, err
		}
		return OutcomeRetry, err
	}
	claim, err := h.deps.Store.Claim(ctx, r.request())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return OutcomeFailed, permanent(fmt.Errorf("instance %s is not registered", r.p.InstanceID))
	case errors.Is(err, store.ErrDeprovisioned):
		return OutcomeFailed, permanent(fmt.Errorf("instance %s is deprovisioned", r.p.InstanceID))
	case errors.Is(err, store.ErrConflict):
		// The rotation id is another instance's rotation (a producer that
		// reused one): a rotation id names one rotation of one instance.
		return OutcomeFailed, permanent(err)
	case err != nil:
		return OutcomeRetry, err
	}
	r.claim, r.pushAttempted = claim, claim.PushAttempted
	r.claim.Grace = h.honoured(r, claim.Grace) // a record an older payload left
	switch claim.Status {
	case store.Joined:
		r.log.Info().Str("joined_rotation_id", claim.RotationID).Bool("moved", claim.Moved).Msg("rotation_joined")
		if claim.Moved {
			// This task's request overtook the rotation a wave holds: the
			// rotation's task runs on this task's queue. Should the enqueue
			// fail, the reconcile sweep enqueues it there.
			if err := fleet.EnqueueMoved(ctx, h.deps.Store, h.deps.Enqueuer, claim.RotationID); err != nil {
				return OutcomeJoined, err
			}
		}
		return OutcomeJoined, nil
	case store.Resumed:
		if r.queue == tasks.QueueBulk && claim.Queue != "" && claim.Queue != tasks.QueueBulk {
			// A request on another queue overtook the wave and moved the
			// rotation there (store.RotationRequest.Overtakes); the task
			// the feeder released before it saw the move leaves the
			// rotation to that queue's task (I4).
			r.log.Info().Str("moved_to", claim.Queue).Msg("rotation_moved")
			return OutcomeMoved, nil
		}
	case store.Skipped:
		if claim.Refused != nil {
			// A limit of the claim (REKEY_MAX_PREVIOUS): the store recorded a "refused" event.
			r.log.Warn().Str("refused", claim.Refused.Reason).Msg("rotation_refused")
			return OutcomeRefused, nil
		}
		r.log.Info().Msg("rotation_skipped_grace_running")
		return OutcomeSkipped, nil
	case store.Done:
		// A rerun after a crash: make sure the revocation was scheduled.
		return OutcomeAlreadyDone, h.deps.enqueueRevoke(ctx, claim.Previous)
	}
	if claim.Instance.Deprovisioned() {
		// Deprovisioned since the rotation was claimed (a wave's rotation
		// held for hours, a task retrying): the partner said the add-on is
		// gone, so nothing more is minted or sent to Heroku. A credential
		// minted already is discarded (revoked after the grace when a push
		// of it was attempted).
		step := stepMint
		if claim.CredentialID != "" {
			step = stepPush
		} else if claim.StartedBefore {
			return h.mintLost(ctx, r)
		}
		return h.end(ctx, r, step, permanent(errDeprovisionedSince))
	}
	return h.rotate(ctx, r)
}

// codeAnswerLost is the failure code of a rotation that ended while the
// issuer may hold a credential minted for it that rekey never received.
const codeAnswerLost = "mint:answer_lost"

// mintLost ends a rotation, found deprovisioned, that an earlier run
// started but recorded no credential for: that run may have reached the
// issuer, which minted with its answer lost (a gateway's 504 after the
// issuer's write, a timeout). Only the rotation's own mint, answered
// again (I6), can name that credential: it is asked once more, and a
// credential it answers is recorded discarded, due for revocation at once,
// never pushed (Heroku never had it: no push was attempted). If the issuer
// answers no credential, the task is retried while it has retries left;
// then the rotation ends mint:answer_lost, its failure saying that the
// issuer may hold a credential minted for it (store.AnswerLostCause).
func (h *Rotate) mintLost(ctx context.Context, r *rotation) (string, error) {
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mintTimeout)
	defer cancel()
	cred, err := h.deps.Issuer.Mint(mctx, r.p.InstanceID, r.p.RotationID)
	h.deps.observeIssuer(issuer.OpMint, err)
	id, values := cred.ID, []secret.String(nil)
	var unusable *issuer.UnusableCredentialError
	switch {
	case err == nil:
		r.remember(cred.Config)
		for _, v := range cred.Config {
			values = append(values, v)
		}
	case errors.As(err, &unusable) && !unusable.ConfigUnchecked:
		id, values = unusable.CredentialID, unusable.Config
		r.known = append(r.known, values...)
	default:
		id = ""
	}
	if id != "" {
		why := "the instance was deprovisioned before the rotation received its credential; never pushed"
		derr := h.deps.Store.DiscardMinted(mctx, r.p.InstanceID, r.p.RotationID, id, why, values)
		switch {
		case derr == nil || errors.Is(derr, store.ErrConflict):
			rev := &store.Revocation{InstanceID: r.p.InstanceID, CredentialID: id, RevokeAt: h.deps.now()}
			if err := h.deps.enqueueRevoke(ctx, rev); err != nil {
				// The sweep enqueues a due revocation whose task is missing.
				r.log.Warn().Msg("revoke_not_enqueued")
			}
			return h.end(ctx, r, stepMint, permanent(errDeprovisionedSince))
		case !isPermanent(derr):
			return OutcomeRetry, fmt.Errorf("%s: recording the credential minted for a deprovisioned instance: %w", stepMint, derr)
		}
		err = derr
	}
	if err != nil && (!isPermanent(err) || brokenOff(err)) {
		if retriesLeft(ctx) {
			return OutcomeRetry, fmt.Errorf("%s: asking the issuer again for the credential of a rotation whose instance "+
				"was deprovisioned: %w", stepMint, err)
		}
	}
	detail := "no answer"
	if err != nil {
		detail = err.Error()
	}
	f := store.Failure{Code: codeAnswerLost, Grace: h.grace(r),
		Cause: r.scrub(fmt.Sprintf("%s: %v; %s; asked again, the issuer answered: %s",
			stepMint, errDeprovisionedSince, store.AnswerLostCause(r.p.RotationID), detail))}
	return h.record(ctx, r, stepMint, f)
}

// retriesLeft reports whether asynq runs the task again should this run
// fail (false for a run outside asynq).
func retriesLeft(ctx context.Context) bool {
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	return ok && retried < maxRetry
}

// brokenOff reports whether err is a mint answer that broke off inside
// its config, naming a credential it could not check: asked again, the
// issuer answers it again (I6).
func brokenOff(err error) bool {
	var unusable *issuer.UnusableCredentialError
	return errors.As(err, &unusable) && unusable.ConfigUnchecked && unusable.BrokenOff
}

// errDeprovisionedSince ends a rotation whose instance was deprovisioned
// after its claim.
var errDeprovisionedSince = errors.New("the instance was deprovisioned after the rotation was requested")

func (h *Rotate) rotate(ctx context.Context, r *rotation) (string, error) {
	if r.claim.CredentialID == "" {
		if err := h.learnCurrent(ctx, r); err != nil {
			return h.fail(ctx, r, stepReadBack, err)
		}
	}
	credID, config, err := h.credential(ctx, r)
	if errors.Is(err, store.ErrNotFound) && r.claim.CredentialID != "" || errors.Is(err, store.ErrConflict) {
		// Another run of the task moved the rotation on meanwhile; the store
		// discarded any credential minted too late.
		return h.finished(ctx, r)
	}
	if err != nil {
		return h.fail(ctx, r, stepMint, err)
	}
	r.credID, r.config = credID, config
	r.remember(config)
	r.log = r.log.With().Str("credential_id", credID).Logger()
	// Before any push, on the first run and on every rerun: a credential
	// that does not name exactly the registered vars is never published.
	if err := checkConfigNames(config, r.claim.Instance.ConfigVars); err != nil {
		return h.fail(ctx, r, stepMint, err)
	}
	// Once a push was attempted the apps may already use the credential:
	// verifying again could only discard a live credential. A 404 is
	// "unsupported" or a credential the issuer does not know, as
	// REKEY_ISSUER_VERIFY says (issuer.WithVerify).
	if !r.pushAttempted {
		err := h.deps.Issuer.Verify(ctx, r.p.InstanceID, credID)
		h.deps.observeIssuer(issuer.OpVerify, err)
		if err != nil && !errors.Is(err, issuer.ErrVerifyUnsupported) {
			return h.fail(ctx, r, stepVerify, err)
		}
	} else if landed, err := h.landedBefore(ctx, r); err != nil {
		var later *RetryLaterError
		if errors.As(err, &later) {
			return OutcomeRateLimited, later
		}
		return OutcomeRetry, err
	} else if landed {
		r.log.Info().Msg("earlier_push_applied")
		return h.promote(ctx, r, credID)
	}
	return h.push(ctx, r)
}

// readBackAfter is how many of a rotation's pushes may be answered with
// neither success nor refusal (a 5xx, no answer) before a run reads
// Heroku's config back rather than push again.
const readBackAfter = 2

// landedBefore reports whether Heroku's config, read back, already holds
// the credential that earlier runs pushed readBackAfter times or more
// without an answer that settled the push. A front that applies every push
// and answers 503 (a router timing out on a slow Heroku) would otherwise
// have the rotation pushed again on every run and never promoted: the
// sweep would re-run it hourly for ever, the instance in flight, its old
// credential never revoked. After a single unanswered push it pushes
// again, as it would anyway: one read-back per 5xx would cost a wave
// under Heroku's 5xx a call per retry. A read-back that fails proves
// nothing, and the run pushes.
//
// A rerun of a rotation whose read-back after a failed push an earlier run
// put off (end, readBackLater) resumes at that read, whatever its pushes'
// answers: pushing first would release the app again for a config Heroku
// may hold already. A read put off again is put off without a push (a
// *RetryLaterError), until the rotation's read-back waits are used up:
// then the run pushes, and its failure is recorded without the read. A read
// that failed otherwise but may succeed later (a 5xx, no answer) is retried
// with the run (the error), under asynq's retry limit; one that cannot (a
// 403), or a config holding none or only part of the credential, leads to
// a push, as on any rerun.
func (h *Rotate) landedBefore(ctx context.Context, r *rotation) (landed bool, err error) {
	// As the claim read them: no command more on a rerun.
	resume := r.claim.ReadBackWaits > 0
	if !resume && r.claim.PushAttempts-r.claim.PushSettled < readBackAfter {
		return false, nil
	}
	held, err := h.heldByHeroku(ctx, r)
	switch {
	case !resume || err == nil:
		return err == nil && held, nil
	case isRateLimited(err):
		if later := h.readBackLater(ctx, r, err); later != nil {
			return false, later
		}
		return false, nil
	case !isPermanent(err):
		return false, fmt.Errorf("%s: reading Heroku's config back before pushing again: %w", stepReadBack, err)
	}
	return false, nil
}

// push sets the credential's config vars on Heroku in one call and
// promotes it. The attempt is recorded only when the request is about to
// leave, its token loaded and its budget granted: a push that never left
// cannot be in Heroku's config, so its credential may still be discarded
// and revoked if the rotation cannot go on (I1, I3).
//
// The rotation's first push that Heroku answers with a 5xx or a 408, or
// does not answer, is sent again within the same run, once, after retry.AgainDelay
// and under the budget like any call (sendAgain): returned to asynq, the
// rotation would wait out its retry delay and asynq's polls while the
// budget idles, which at a wave's end is the wave's tail.
func (h *Rotate) push(ctx context.Context, r *rotation) (string, error) {
	err := h.send(ctx, r)
	if h.sendAgain(ctx, r, err) {
		// Scrubbed: a front's answer may quote a secret the run read
		// from Heroku (a live config), which the client cannot know (I5).
		detail := r.scrub(stepPush + ": " + err.Error())
		r.log.Info().Str("error", detail).Msg("push_sent_again")
		// The instance's timeline shows the failure, as it shows one
		// returned to asynq (fail); a failed write loses only that line.
		_ = h.deps.Store.AddEvent(ctx, store.Event{Type: store.EventRetrying, InstanceID: r.p.InstanceID,
			RotationID: r.p.RotationID, Detail: detail})
		// The unanswered push stays unsettled, as at the end of a run: it
		// may still land after the next one, and neither the next one's
		// refusal nor the promotion settles it (I1).
		r.marks = 0
		err = h.send(ctx, r)
	}
	switch {
	case errors.Is(err, store.ErrConflict):
		// The store refused to record the attempt, so nothing was sent:
		// another run ended the rotation meanwhile.
		return h.finished(ctx, r)
	case errors.Is(err, store.ErrDeprovisioned), errors.Is(err, store.ErrRegistrationChanged):
		return h.registrationGone(ctx, r, err)
	}
	if err != nil {
		return h.fail(ctx, r, stepPush, err)
	}
	h.deps.observePushLanded(r.p.RequestedAt)
	return h.promote(ctx, r, r.credID)
}

// send makes one push of the credential and tells the breaker Heroku's
// answer.
func (h *Rotate) send(ctx context.Context, r *rotation) error {
	pctx := heroku.WithBeforeSend(h.classed(ctx, r), func() error { return h.markPush(ctx, r) })
	err := h.deps.Heroku.UpdateConfig(pctx, r.target(), configVars(r.config))
	if heroku.Refused(err) {
		// Refused, the push cannot land any more. One that landed has its
		// attempts settled by the promotion. One answered 5xx or 408, or
		// not at all, may still land, or may have landed already: it stays
		// unsettled, so that no read-back taken before it lands can prove
		// its credential absent (I1). So does one answered 2xx by what may
		// not be Heroku (heroku.ErrUnexpectedAnswer): a proxy that answered
		// for Heroku may still hand it the push.
		h.settlePush(ctx, r)
	}
	if !refusedByStore(err) {
		h.deps.observePush(ctx, r.claim.Instance.ID, err)
	}
	return err
}

// againLeast is how much of a run's time a push sent again needs, at most:
// a V3 push refused 401, the token's refresh and the push sent with the new
// token, three calls' own timeouts (heroku.DefaultTimeout), two of them
// after the longest wait for the budget (ratelimit.Params.MaxWait's
// default). A V1 push and its read-back need less.
const againLeast = 2*30*time.Second + 3*heroku.DefaultTimeout

// sendAgain reports whether the push that just failed with err is sent
// again in this run, after retry.AgainDelay: only the rotation's first
// push left unanswered (a 5xx, a 408, a timeout, a reset), which is what a
// transient fault in the middle of a wave leaves. A second one goes back
// to asynq (retry.Delay), whose next run reads Heroku's config back before
// it pushes a third (landedBefore); a persistent outage is thus sent at
// most twice a run (three times when the push sent again is refused 401
// and the client sends it with a refreshed token), each under the budget.
// A run with less than againLeast of its time left (tasks.RotateTimeout)
// leaves it to asynq: a push cut off by the run's end would be one more
// unanswered push.
func (h *Rotate) sendAgain(ctx context.Context, r *rotation, err error) bool {
	if err == nil || r.marks != 1 || r.claim.PushAttempts > r.claim.PushSettled ||
		heroku.Refused(err) || heroku.Classify(err) != heroku.ClassTransient {
		return false
	}
	if retry.Sleep(ctx, retry.AgainDelay()) != nil {
		return false
	}
	end, ok := ctx.Deadline()
	return !ok || time.Until(end) >= againLeast
}

// markPush records that the push is about to be sent (heroku.BeforeSend),
// and waits for the record to reach Redis's replicas (store.Durable): a
// failover that lost it would bring back the rotation as if no push had
// left, and its credential, which Heroku may hold, would be discarded and
// revoked (I1). A push whose record the replicas did not acknowledge is
// not sent, and its attempt is settled, since it never left.
func (h *Rotate) markPush(ctx context.Context, r *rotation) error {
	if err := h.deps.Store.MarkPushAttempt(ctx, r.p.RotationID, r.claim.Instance.Target()); err != nil {
		return err
	}
	r.pushAttempted, r.marks = true, r.marks+1
	if err := h.deps.Store.Durable(ctx); err != nil {
		h.settlePush(ctx, r)
		return err
	}
	return nil
}

// settlePush records that this run's push attempts can no longer land:
// Heroku refused them (heroku.Refused). If that fails, the attempts stay unsettled and no read-back can prove the
// credential absent: it is kept rather than discarded, which is safe.
func (h *Rotate) settlePush(ctx context.Context, r *rotation) {
	if r.marks == 0 {
		return
	}
	if err := h.deps.Store.SettlePush(ctx, r.p.RotationID, r.marks); err != nil {
		r.log.Warn().Msg("push_settle_not_recorded")
	}
	r.marks = 0
}

// target is the add-on the rotation pushes to.
func (r *rotation) target() heroku.Target {
	in := r.claim.Instance
	return heroku.Target{AddonID: in.ID, APIVersion: in.APIVersion, HerokuID: in.HerokuID}
}

// promote makes the pushed credential current and schedules the old one's
// revocation.
func (h *Rotate) promote(ctx context.Context, r *rotation, credID string) (string, error) {
	in := r.claim.Instance
	grace := h.grace(r)
	// The revoke time is now + grace on Redis's clock as this worker reads
	// it: its machine's clock stepped back since the last measurement, up
	// to 30 s before, would write it early by the step, and every worker
	// would revoke the old credential then (I2). One TIME a promotion.
	if h.deps.Measure != nil {
		if err := h.deps.Measure(ctx); err != nil {
			return OutcomeRetry, fmt.Errorf("promote: %w", err)
		}
	}
	before := h.deps.now()
	// The promotion settles this run's push attempts in the same step; if
	// it fails they stay unsettled, which is safe (settlePush).
	p, err := h.deps.Store.PromotePushed(ctx, in.ID, r.p.RotationID, credID, grace, "grace "+grace.String(), r.marks)
	if errors.Is(err, store.ErrDeprovisioned) {
		return h.deprovisionedMidway(ctx, r)
	}
	if err != nil {
		return OutcomeRetry, err
	}
	r.marks = 0
	if r.belowFloor > 0 {
		r.log.Warn().Dur("asked", r.belowFloor).Dur("grace", grace).Dur("min_grace", h.deps.MinGrace).
			Msg("grace_below_floor")
	}
	if asked := h.requestedGrace(r); asked != grace {
		// The request, the instance's registration or REKEY_GRACE asked
		// for another grace than this worker's floor and ceiling allow: a
		// process that told the customer or the operator the grace asked
		// for may run with other bounds (settings_mismatch says so).
		r.log.Warn().Dur("asked", asked).Dur("grace", grace).Dur("min_grace", h.deps.MinGrace).Dur("max_grace", h.deps.MaxGrace).
			Msg("grace_clamped")
	}
	if p.Previous != nil && p.Previous.RevokeAt.Sub(before) > grace+time.Second {
		// A request that joined the rotation asked a longer grace
		// (join_grace_ms), which the promotion took.
		grace = p.Previous.RevokeAt.Sub(before).Round(time.Second)
		r.log.Info().Dur("grace", grace).Msg("grace_lengthened_by_join")
	}
	r.log.Info().Dur("grace", grace).Msg("rotated")
	if p.Previous != nil && h.deps.CustomerLog != nil {
		h.deps.CustomerLog.Notify(ctx, in.ID, fmt.Sprintf("%s rotated; the old credential stays valid until %s",
			strings.Join(in.ConfigVars, ", "), p.Previous.RevokeAt.UTC().Format(time.RFC3339)))
	}
	for _, u := range p.Unconfirmed {
		if err := h.deps.enqueueRevoke(ctx, &u); err != nil {
			return OutcomeRetry, err
		}
	}
	return OutcomeRotated, h.deps.enqueueRevoke(ctx, p.Previous)
}

// deprovisionedMidway ends a rotation whose instance was deprovisioned
// while its push was on its way and registered again since
// (store.ErrDeprovisioned from the promotion): never promoted, it is
// recorded failed with no proof that Heroku holds none of its credential,
// so the store keeps that credential unconfirmed beside the current one
// the registration named: the push may have landed on the new add-on after
// it, and the next rotation replaces both (I1).
func (h *Rotate) deprovisionedMidway(ctx context.Context, r *rotation) (string, error) {
	return h.record(ctx, r, "push", store.Failure{Code: "push:deprovisioned", Grace: h.grace(r),
		Cause: "push: the instance was deprovisioned, and registered again, while this rotation pushed its credential"})
}

// registrationGone ends a rotation whose push the store refused to
// record, so it was not sent: the instance was deprovisioned since the
// run's claim (store.ErrDeprovisioned), or registered again under another
// app, config vars, API version or database (store.ErrRegistrationChanged).
// What the run would push to, or set, is no longer the instance's: a V1
// push names the app alone, and the app may have another customer's add-on
// installed by now; a credential minted on the database the instance left
// opens what the partner may give another customer. Its credential is discarded when no push of it was ever
// attempted, and kept otherwise as a failure keeps it (failScript).
func (h *Rotate) registrationGone(ctx context.Context, r *rotation, err error) (string, error) {
	f := store.Failure{Code: "push:deprovisioned", Grace: h.grace(r),
		Cause: "push: the instance was deprovisioned since this rotation began; no push was sent after that"}
	if errors.Is(err, store.ErrRegistrationChanged) {
		f.Code = "push:registration_changed"
		f.Cause = "push: the instance was registered again under another app, config vars, API version or database since this rotation began; " +
			"no push was sent after that"
	}
	return h.record(ctx, r, stepPush, f)
}

// refusedByStore reports whether err is the store's refusal to record a
// push attempt, or to vouch for the record (markPush): no request left,
// Heroku answered nothing.
func refusedByStore(err error) bool {
	return errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrDeprovisioned) ||
		errors.Is(err, store.ErrRegistrationChanged) || errors.Is(err, store.ErrNotDurable)
}

// finished handles a rotation that another run of the task, at the same
// time, moved on after this run's claim (I6): its pending credential was
// promoted or discarded, or it holds another credential. Once the rotation
// is done only its revocation is left to make sure of; otherwise the task
// runs again and resumes with the stored credential.
func (h *Rotate) finished(ctx context.Context, r *rotation) (string, error) {
	claim, err := h.deps.Store.Claim(ctx, r.request())
	switch {
	case err != nil:
		return OutcomeRetry, err
	case claim.Status != store.Done:
		return OutcomeRetry, fmt.Errorf("mint: pending credential %s of rotation %s is gone", r.claim.CredentialID, r.p.RotationID)
	}
	return OutcomeAlreadyDone, h.deps.enqueueRevoke(ctx, claim.Previous)
}

// credential mints the rotation's credential, or reloads it when an earlier
// run minted it already.
func (h *Rotate) credential(ctx context.Context, r *rotation) (string, map[string]secret.String, error) {
	if id := r.claim.CredentialID; id != "" {
		cfg, err := h.deps.Store.PendingConfig(ctx, r.p.InstanceID, id)
		return id, cfg, err
	}
	// A credential is minted only when it can be saved: checked for a
	// config reused under another id, which needs the fingerprint key.
	if err := h.deps.Store.CheckFingerprintKey(ctx); err != nil {
		return "", nil, err
	}
	// The claim that records the rotation reaches Redis's replicas before
	// the issuer mints (store.Durable): a rotation a failover lost would
	// leave its credential valid, unknown to rekey (I3).
	if err := h.deps.Store.Durable(ctx); err != nil {
		return "", nil, err
	}
	// The issuer may have minted by the time the task's deadline passes
	// (its own timeout or deadline, which a tasks/ caller may set short)
	// or the worker stops: the answer is still read and the credential
	// recorded, under rekey's own bound, so that it is revoked if the
	// rotation ends without it rather than stay valid unknown to rekey
	// (I3). Without that, only a later run's mint, answered the same
	// credential, would record it, and the caller's options may leave none.
	// A stopping worker's process lives on only for asynq's shutdown wait;
	// the task runs again, and its mint is answered the same credential.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mintTimeout)
	defer cancel()
	cred, err := h.deps.Issuer.Mint(ctx, r.p.InstanceID, r.p.RotationID)
	h.deps.observeIssuer(issuer.OpMint, err)
	var unusable *issuer.UnusableCredentialError
	if errors.As(err, &unusable) {
		// The issuer minted a credential it gave no usable config, or named
		// in an answer too large to use or broken off: it is discarded, and revoked like
		// any other (I3), and the rotation ends; unless its id holds a
		// secret of the config, or cannot be checked for one (I5): then it
		// is not recorded, as SavePending records no such id, and the
		// error says to revoke it at the issuer.
		why := "the issuer's answer gave it no config rekey can use"
		switch unusable.Code() {
		case issuer.CodeUnreadable:
			why = "the issuer's answer was too large to use or broke off before its end"
		case issuer.CodeIDNotString:
			why = "the issuer's answer wrote credential_id as a number; the contract has it a string"
		case issuer.CodeErrorAnswer:
			why = "the issuer's answer named it but said the mint failed"
		}
		if brokenOff(err) && retriesLeft(ctx) {
			// The answer broke off inside its config (a connection reset,
			// a proxy restarting): a fault of the network's, not the
			// issuer's answer. The task is retried, and its mint, keyed by
			// the rotation, is answered the same credential again (I6),
			// whole once the fault has passed; only once the retries run
			// out is it left for the issuer to revoke, as below.
			return "", nil, fmt.Errorf("the issuer's answer broke off before its config ended, the mint is asked again: %w",
				unusable.Err)
		}
		if unusable.ConfigUnchecked {
			return "", nil, fmt.Errorf("%w (%w): its config could not be read whole to check that the id it names holds "+
				"none of its secrets: the credential is not recorded, revoke it at the issuer", unusable, errIDUnchecked)
		}
		err := h.deps.Store.DiscardMinted(ctx, r.p.InstanceID, r.p.RotationID, unusable.CredentialID, why, unusable.Config)
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return "", nil, err
		}
		return "", nil, fmt.Errorf("%w: the credential it names is discarded and revoked", unusable)
	}
	if err != nil {
		return "", nil, err
	}
	// Stored as pending before its names are checked, so that a credential
	// the rotation refuses is discarded and revoked, never forgotten (I3).
	if err := h.deps.Store.SavePending(ctx, r.p.InstanceID, r.p.RotationID, cred.ID, cred.Config); err != nil {
		return "", nil, err
	}
	return cred.ID, cred.Config, nil
}

// mintTimeout bounds a mint and recording what it answered, past the
// task's own deadline: longer than the webhook issuer's call (30 s).
const mintTimeout = 45 * time.Second

// classed marks the Heroku call's priority for the rate limiter. A bulk
// rotation released by the pacing feeder spends the token the feeder took
// for it instead of waiting for another.
func (h *Rotate) classed(ctx context.Context, r *rotation) context.Context {
	if r.queue == tasks.QueueInteractive {
		return ratelimit.WithClass(ctx, ratelimit.Interactive)
	}
	ctx = ratelimit.WithClass(ctx, ratelimit.Background)
	if paid := h.deps.Paid; paid != nil && r.queue == tasks.QueueBulk {
		ctx = ratelimit.WithPrepaid(ctx, func() bool { return paid.Take(ctx, r.p.RotationID) })
	}
	return ctx
}

// grace is the rotation's grace, never below the floor (Deps.MinGrace)
// nor above the ceiling (Deps.MaxGrace).
func (h *Rotate) grace(r *rotation) time.Duration {
	g := max(h.requestedGrace(r), h.deps.MinGrace)
	if h.deps.MaxGrace > 0 {
		g = min(g, h.deps.MaxGrace)
	}
	return g
}

// honoured is grace g, asked for by the payload or kept in the rotation's
// record, as this worker honours it: a positive grace below the floor is
// set aside (zero: the instance's own grace applies, as when none was
// asked) and noted in r.belowFloor. rekey's producers refuse such a
// grace, and so does NewRotateTask: one comes from an older producer, a
// payload written by hand or a process with a lower REKEY_MIN_GRACE
// (settings_mismatch), and is almost always a unit mistake (Grace: 86400
// is 86.4µs, not a day). Raised to the floor, as it was until then, it
// had the old credential revoked the floor after the push (ten minutes by
// default), which breaks an app whose dynos take longer to restart (a
// Private Space's); the instance's grace is never shorter than the floor
// (grace), and is what the producer would have had without the mistake.
// A longer grace is safe, a shorter one is not.
func (h *Rotate) honoured(r *rotation, g time.Duration) time.Duration {
	if g > 0 && g < h.deps.MinGrace {
		r.belowFloor = max(r.belowFloor, g)
		return 0
	}
	return g
}

// requestedGrace is the grace the rotation's requests asked: the longer of
// the payload's and the one the rotation was claimed with, so that another
// app's task naming a rotation a producer claimed with a long grace does
// not shorten it (I2); without either, the instance's, else REKEY_GRACE's.
func (h *Rotate) requestedGrace(r *rotation) time.Duration {
	switch in := r.claim.Instance; {
	case r.p.Grace > 0 || r.claim.Grace > 0:
		return max(time.Duration(r.p.Grace), r.claim.Grace)
	case in.Grace > 0:
		return in.Grace
	case in.PrivateSpace && h.deps.PrivateSpaceGrace > 0:
		return h.deps.PrivateSpaceGrace
	}
	return h.deps.Grace
}

// fail sorts a step's error: waiting for budget is retried later without a
// failure, a permanent error ends the rotation (end), anything else is
// retried by asynq, and so is the issuer's own refusal of a bulk rotation
// during an outage of its wave, or on the rotation's first run
// (wavesRefusal).
func (h *Rotate) fail(ctx context.Context, r *rotation, step string, err error) (string, error) {
	if later := h.retryLater(ctx, r, err); later != nil {
		return OutcomeRateLimited, later
	}
	if isPermanent(err) {
		again := h.wavesRefusal(ctx, r, step, err)
		if again == nil {
			return h.end(ctx, r, step, err)
		}
		err = again
	}
	_ = h.deps.Store.AddEvent(ctx, store.Event{Type: store.EventRetrying, InstanceID: r.p.InstanceID,
		RotationID: r.p.RotationID, Detail: r.scrub(step + ": " + err.Error())})
	return OutcomeRetry, fmt.Errorf("%s: %w", step, err)
}

// wavesRefusal returns the error to retry the rotation with when the
// issuer's refusal err at step, which would end it for good, may be its
// whole wave's, or nil to end it. That is the issuer's own answer to a
// bulk rotation's mint or verify (its 401 to rekey's signature, a 4xx of
// its own), with nothing pushed, and either:
//   - the wave is in an outage (Wave.Outage: the feeder found its rotations
//     all failing, and none rotated since). The refusal is then the whole
//     wave's (a secret changed on one side only, a tenant suspended), and a
//     slowed wave's probes would otherwise each fail for good, four a
//     minute for as long as it lasts. Retried, the rotation waits out
//     asynq's back-off (its retries are about 4.5 hours of it) and is
//     brought forward once a run rotates again;
//   - or this is the task's first run: it is asked again once,
//     retry.ConfirmAfter later (retry.ErrConfirm). The rotations of a wave
//     released before the feeder saw every mint refused would otherwise
//     each fail for good, a dozen or more at Heroku's pace, to be rotated
//     again by hand; asked again, they find the outage marked. One
//     instance's own refusal ends at the second answer, a minute later.
//
// (docs/design.md, "Pacing a wave".) Nothing reached Heroku: the mint is
// keyed by its rotation (I6).
func (h *Rotate) wavesRefusal(ctx context.Context, r *rotation, step string, err error) error {
	var refused *issuer.Error
	if r.queue != tasks.QueueBulk || step != stepMint && step != stepVerify || r.pushAttempted ||
		!errors.As(err, &refused) || !issuer.IsPermanent(err) || errors.Is(err, asynq.SkipRetry) || h.deps.Wave == nil {
		return nil
	}
	if h.deps.Wave.Outage(ctx) {
		return fmt.Errorf("%w; retried: every rotation of the wave fails", err)
	}
	retried, _ := asynq.GetRetryCount(ctx)
	if maxRetry, ok := asynq.GetMaxRetry(ctx); ok && retried == 0 && maxRetry > 0 {
		return fmt.Errorf("%w; %w", err, retry.ErrConfirm)
	}
	return nil
}

// errIDUnchecked is a credential id named in a mint answer whose config
// could not be read whole (issuer.UnusableCredentialError.ConfigUnchecked).
var errIDUnchecked = errors.New("credential id unchecked")

// isPermanent reports whether a step's error will not go away by retrying.
func isPermanent(err error) bool {
	var mismatch *ConfigMismatchError
	var unusable *issuer.UnusableCredentialError
	var notHeld *VarsNotHeldError
	return errors.As(err, &notHeld) || errors.Is(err, asynq.SkipRetry) || errors.As(err, &unusable) || errors.Is(err, store.ErrConflict) ||
		unreadable(err) || errors.Is(err, store.ErrCredentialReused) ||
		errors.Is(err, store.ErrInvalidCredentialID) || errors.Is(err, store.ErrConfigReused) ||
		errors.Is(err, store.ErrConfigLiveElsewhere) ||
		errors.Is(err, store.ErrReminted) || errors.As(err, &mismatch) ||
		heroku.IsGone(err) || heroku.IsPermanent(err) || issuer.IsPermanent(err)
}

// unreadable reports whether err is a stored value of the instance that
// cannot be opened. The fingerprint key is no instance's: it fails every
// mint of a process whose REKEY_ENCRYPTION_KEYS lack its key (a worker
// refuses to start so), and is retried like an outage, not set down to
// the instance.
func unreadable(err error) bool {
	return errors.Is(err, store.ErrUnreadable) && !errors.Is(err, store.ErrFingerprintKey)
}

// failureCode labels a permanent failure for grouping in batch reports,
// such as "push:not_found" or "mint:issuer_422".
func failureCode(step string, err error) string {
	var api *heroku.APIError
	var iss *issuer.Error
	var mismatch *ConfigMismatchError
	var unusable *issuer.UnusableCredentialError
	var unknown *issuer.UnknownCredentialError
	var notHeld *VarsNotHeldError
	switch {
	case errors.As(err, &notHeld):
		return step + ":config_vars_not_held"
	case errors.Is(err, errIDUnchecked):
		return step + ":unchecked_credential_id"
	case errors.Is(err, errDeprovisionedSince):
		return step + ":deprovisioned"
	case errors.Is(err, heroku.ErrUnexpectedAnswer):
		return step + ":unexpected_answer"
	case errors.Is(err, heroku.ErrTokenRefused):
		return step + ":token_refused"
	case errors.Is(err, heroku.ErrTokenDenied):
		return step + ":token_denied"
	case errors.As(err, &unusable):
		return step + ":" + unusable.Code()
	case errors.As(err, &unknown):
		return step + ":" + issuer.CodeUnknownCredential
	case errors.As(err, &api) && api.ID != "":
		return step + ":" + api.ID
	case errors.As(err, &api):
		return fmt.Sprintf("%s:heroku_%d", step, api.Status)
	case errors.As(err, &iss):
		return fmt.Sprintf("%s:issuer_%d", step, iss.Status)
	case errors.As(err, &mismatch):
		return step + ":config_mismatch"
	case heroku.IsTokenUnusable(err):
		return step + ":no_token"
	case errors.Is(err, store.ErrUnreadable):
		return step + ":unreadable"
	case errors.Is(err, store.ErrCredentialReused):
		return step + ":credential_reused"
	case errors.Is(err, store.ErrInvalidCredentialID):
		return step + ":invalid_credential_id"
	case errors.Is(err, store.ErrConfigReused):
		return step + ":config_reused"
	case errors.Is(err, store.ErrConfigLiveElsewhere):
		return step + ":config_live_elsewhere"
	case errors.Is(err, store.ErrReminted):
		return step + ":config_changed"
	case errors.Is(err, store.ErrConflict):
		return step + ":conflict"
	}
	return step + ":error"
}

// retryLater turns "wait for the budget" into a RetryLaterError, or
// returns nil when err asks for no wait, or the rotation's waits for the
// token endpoint (tokenLater) or the Platform API (platformLater) are used
// up.
func (h *Rotate) retryLater(ctx context.Context, r *rotation, err error) *RetryLaterError {
	if d, ok := ratelimit.IsDelay(err); ok {
		return &RetryLaterError{After: d, Reason: "waiting for Heroku API budget"}
	}
	var rl *heroku.RateLimitError
	switch {
	case !errors.As(err, &rl):
		return nil
	case rl.Endpoint == heroku.EndpointOAuthToken:
		return h.tokenLater(ctx, r, rl)
	}
	return h.platformLater(ctx, r, rl)
}

// isRateLimited reports whether err asks to wait: the shared budget's
// delay or a 429 from Heroku, which retryLater turns into a wait.
func isRateLimited(err error) bool {
	var rl *heroku.RateLimitError
	_, delayed := ratelimit.IsDelay(err)
	return delayed || errors.As(err, &rl)
}

// configVars orders a credential's config by name, for one PATCH.
func configVars(config map[string]secret.String) []heroku.ConfigVar {
	vars := make([]heroku.ConfigVar, 0, len(config))
	for name, v := range config {
		vars = append(vars, heroku.ConfigVar{Name: name, Value: v})
	}
	sort.Slice(vars, func(i, j int) bool { return vars[i].Name < vars[j].Name })
	return vars
}
