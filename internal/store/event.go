package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Event is one audit event: a step of a rotation or of an instance's life.
// Detail is a plain sentence or a timestamp; it never holds a secret.
type Event struct {
	ID           string    `json:"id"`
	Type         string    `json:"type"`
	InstanceID   string    `json:"instance_id"`
	RotationID   string    `json:"rotation_id,omitempty"`
	CredentialID string    `json:"credential_id,omitempty"`
	Detail       string    `json:"detail,omitempty"`
	At           time.Time `json:"at"`
}

// AddEvent records an event that is not part of a state change, for
// example a transient failure that will be retried.
func (s *Store) AddEvent(ctx context.Context, e Event) error {
	if e.At.IsZero() {
		e.At = s.now()
	}
	fields := []any{"type", e.Type, "instance_id", e.InstanceID, "rotation_id", e.RotationID,
		"credential_id", e.CredentialID, "detail", e.Detail, "at", ms(e.At)}
	pipe := s.rdb.Pipeline()
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: instanceEventsKey(e.InstanceID), MaxLen: s.eventsPerInstance, Approx: true, Values: fields})
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: eventsKey(), MaxLen: s.eventsGlobal, Approx: true, Values: fields})
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("add event: %w", err)
	}
	return nil
}

// Events returns up to n of an instance's most recent events, newest first.
func (s *Store) Events(ctx context.Context, instanceID string, n int64) ([]Event, error) {
	return s.events(ctx, instanceEventsKey(instanceID), n)
}

// FleetEvents returns up to n of the fleet's most recent events, newest first.
func (s *Store) FleetEvents(ctx context.Context, n int64) ([]Event, error) {
	return s.events(ctx, eventsKey(), n)
}

func (s *Store) events(ctx context.Context, key string, n int64) ([]Event, error) {
	msgs, err := s.rdb.XRevRangeN(ctx, key, "+", "-", n).Result()
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	out := make([]Event, len(msgs))
	for i, m := range msgs {
		str := func(k string) string { v, _ := m.Values[k].(string); return v }
		at, _ := strconv.ParseInt(str("at"), 10, 64)
		out[i] = Event{ID: m.ID, Type: str("type"), InstanceID: str("instance_id"),
			RotationID: str("rotation_id"), CredentialID: str("credential_id"), Detail: str("detail"),
			At: time.UnixMilli(at).UTC()}
	}
	return out, nil
}
