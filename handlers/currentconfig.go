package handlers

import (
	"context"
	"fmt"
	"strings"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// learnCurrent gives the instance's current credential the fingerprint of
// the config Heroku holds, before the instance's first mint, when that
// credential is the one registered at provisioning and its registration
// carried no current_config: without it, a mint answering a new id with
// the config the app already holds would pass the config_reused check,
// the push would change nothing, and the provisioning credential would be
// revoked after the grace while the app runs on it (I1).
//
// It costs one Heroku call of the shared budget, once per instance: the
// store notes the attempt whatever it learns (store.NeedsCurrentFingerprint).
// A read that fails is the run's failure: a transient one or a 429 is
// retried rather than the rotation minting unchecked; a 403, 404 or 410
// ends it as any step's does (Rotate.end). What is read is scrubbed from
// any text the run keeps; only the fingerprint is stored.
func (h *Rotate) learnCurrent(ctx context.Context, r *rotation) error {
	in := r.claim.Instance
	need, err := h.deps.Store.NeedsCurrentFingerprint(ctx, in.ID, in.CurrentCredential)
	if err != nil || !need {
		return err
	}
	got, err := h.deps.Heroku.GetConfig(h.classed(ctx, r), r.target())
	if err != nil {
		return fmt.Errorf("read the config the app holds: %w", err)
	}
	r.rememberRead(got)
	mine := make(map[string]secret.String, len(in.ConfigVars))
	for _, name := range in.ConfigVars {
		if v, ok := got[name]; ok && !v.IsZero() {
			mine[name] = v
		}
	}
	if len(mine) == 0 {
		// Heroku holds none of the vars the instance was registered with
		// (config_vars naming other vars than the add-on's, or something
		// not Heroku answering): a push would add vars the apps do not
		// read, and the credential they run on would be revoked after the
		// grace (I1). Nothing is minted, and nothing noted: the next
		// rotation reads again.
		return &VarsNotHeldError{Names: in.ConfigVars}
	}
	var learned store.Learned
	if len(mine) == len(in.ConfigVars) {
		learned, err = h.deps.Store.LearnCurrentFingerprint(ctx, in.ID, in.CurrentCredential, mine)
	} else {
		learned, err = h.deps.Store.NoteCurrentConfigIncomplete(ctx, in.ID, in.CurrentCredential)
	}
	if err != nil {
		return err
	}
	if learned == store.FingerprintLiveElsewhere {
		// The partner provisioned this add-on with another instance's live
		// credential: its apps hold that instance's secret.
		r.log.Warn().Str("credential_id", in.CurrentCredential).Str("outcome", string(learned)).Msg("current_config_live_elsewhere")
		return nil
	}
	r.log.Info().Str("credential_id", in.CurrentCredential).Str("outcome", string(learned)).Msg("current_config_read")
	return nil
}

// VarsNotHeldError means the config Heroku holds for an add-on holds none
// of the config vars its instance was registered with: the rotation ends
// before anything is minted (readback:config_vars_not_held).
type VarsNotHeldError struct {
	Names []string // the registered config vars
}

func (e *VarsNotHeldError) Error() string {
	return "Heroku holds none of the instance's config vars (" + strings.Join(e.Names, ", ") +
		"): check the instance's config_vars against the add-on's"
}
