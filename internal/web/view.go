package web

import (
	"context"
	"errors"
	"time"

	"github.com/rekeyhq/rekey/internal/store"
)

// instanceView is an instance's state as the API and the dashboard show
// it: ids, times and sentences, never a secret. Its field names follow
// store.Instance, so the CLI and the API read alike.
type instanceView struct {
	ID              string    `json:"id"`
	APIVersion      string    `json:"api_version"`
	ConfigVars      []string  `json:"config_vars"`
	HerokuID        string    `json:"heroku_id,omitempty"`
	PrivateSpace    bool      `json:"private_space"`
	Grace           string    `json:"grace,omitempty"`
	RegisteredAt    time.Time `json:"registered_at"`
	DeprovisionedAt time.Time `json:"deprovisioned_at,omitzero"`

	CurrentCredentialID string    `json:"current_credential_id,omitempty"`
	CurrentSince        time.Time `json:"current_since,omitzero"`
	// PreviousCredentials wait for revocation, soonest first.
	PreviousCredentials []previousView `json:"previous_credentials"`
	// UnconfirmedCredentials are credentials kept valid because a push of
	// each had no clear answer: Heroku may hold them (store.Unconfirmed).
	UnconfirmedCredentials []store.UnconfirmedCredential `json:"unconfirmed_credentials"`
	InFlightRotationID     string                        `json:"in_flight_rotation_id,omitempty"`
	InFlightRotation       *rotationView                 `json:"in_flight_rotation,omitempty"`
	LastRotatedAt          time.Time                     `json:"last_rotated_at,omitzero"`
	LastError              string                        `json:"last_error,omitempty"`
	LastErrorAt            time.Time                     `json:"last_error_at,omitzero"`
	LastErrorCode          string                        `json:"last_error_code,omitempty"`
	// NextRotationAt is when the scheduler next rotates the instance, in
	// its maintenance window; left out when it is not scheduled.
	NextRotationAt time.Time `json:"next_rotation_at,omitzero"`
	ScheduleOptOut bool      `json:"schedule_opt_out,omitempty"`
	// MaintenanceWindow is the instance's own window ("02-04", hours UTC);
	// left out when it rotates in the fleet's, or at any hour.
	MaintenanceWindow *store.Window `json:"maintenance_window,omitempty"`
	QuarantinedAt     time.Time     `json:"quarantined_at,omitzero"`
	// QuarantineReason says why the instance was set aside (operators only).
	QuarantineReason string `json:"quarantine_reason,omitempty"`
	// Holds are old credentials whose revocation waits because they are
	// still in use (holds.go).
	Holds []holdView `json:"holds"`
}

// previousView is a credential waiting for revocation.
type previousView struct {
	CredentialID string    `json:"credential_id"`
	RevokeAt     time.Time `json:"revoke_at"`
	// Dead is a revocation the issuer refused for good, set aside in the
	// dead-letter set until an operator retries it (rekey revocations
	// retry): it may wait for days.
	Dead bool `json:"dead,omitempty"`
}

// rotationView is the rotation in flight.
type rotationView struct {
	RotationID  string    `json:"rotation_id"`
	State       string    `json:"state"`
	BatchID     string    `json:"batch_id,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Queue       string    `json:"queue,omitempty"`
	RequestedAt time.Time `json:"requested_at,omitzero"`
	// rotation is the record read, for what the JSON leaves out.
	rotation store.Rotation
}

// loadView reads an instance's state; store.ErrNotFound when unknown.
func (s *server) loadView(ctx context.Context, id string) (instanceView, error) {
	in, err := s.Store.Instance(ctx, id)
	if err != nil {
		return instanceView{}, err
	}
	in.NextRotationAt = in.NextRotation(s.fleetWindow(ctx))
	v := newView(in)
	prev, err := s.Store.Previous(ctx, id)
	if err != nil {
		return instanceView{}, err
	}
	for _, p := range prev {
		pv := previousView{CredentialID: p.CredentialID, RevokeAt: p.RevokeAt}
		// Only a revocation whose time has come can be dead-lettered.
		if !p.RevokeAt.After(s.Now()) {
			if pv.Dead, err = s.Store.IsRevocationDead(ctx, id, p.CredentialID); err != nil {
				return instanceView{}, err
			}
		}
		v.PreviousCredentials = append(v.PreviousCredentials, pv)
	}
	if v.UnconfirmedCredentials, err = s.Store.Unconfirmed(ctx, id); err != nil {
		return instanceView{}, err
	}
	if v.InFlightRotation, err = s.inFlight(ctx, in.InFlight); err != nil {
		return instanceView{}, err
	}
	if v.Holds, err = s.loadHolds(ctx, v); err != nil {
		return instanceView{}, err
	}
	return v, nil
}

func newView(in store.Instance) instanceView {
	v := instanceView{ID: in.ID, APIVersion: in.APIVersion, ConfigVars: in.ConfigVars, HerokuID: in.HerokuID,
		PrivateSpace: in.PrivateSpace, RegisteredAt: in.RegisteredAt, DeprovisionedAt: in.DeprovisionedAt,
		CurrentCredentialID: in.CurrentCredential, CurrentSince: in.CurrentSince,
		PreviousCredentials: []previousView{}, InFlightRotationID: in.InFlight,
		LastRotatedAt: in.LastRotatedAt, LastError: in.LastError, LastErrorAt: in.LastErrorAt, LastErrorCode: in.LastErrorCode,
		NextRotationAt: in.NextRotationAt, ScheduleOptOut: in.ScheduleOptOut, MaintenanceWindow: in.Window,
		QuarantinedAt:    in.QuarantinedAt,
		QuarantineReason: in.QuarantineReason}
	if in.Grace > 0 {
		v.Grace = in.Grace.String()
	}
	if v.ConfigVars == nil {
		v.ConfigVars = []string{}
	}
	return v
}

// inFlight reads the rotation in flight; nil when there is none or it has
// just finished.
func (s *server) inFlight(ctx context.Context, rotationID string) (*rotationView, error) {
	if rotationID == "" {
		return nil, nil
	}
	rot, err := s.Store.Rotation(ctx, rotationID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &rotationView{RotationID: rot.ID, State: rot.State, BatchID: rot.BatchID, Reason: rot.Reason,
		Queue: rot.Queue, RequestedAt: rot.RequestedAt, rotation: rot}, nil
}
