package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// idempotencyHeader names the header with which a client makes a rotation
// request safe to send again: a request sent again with the key it was
// first sent with, after its answer was lost (a timeout, a dropped
// connection), is answered as the first was, and rotates nothing more.
// Without it, a request sent again once its rotations have finished
// rotates the instances again: another credential, and another restart of
// their apps.
const idempotencyHeader = "Idempotency-Key"

// maxIdempotencyKeyLen bounds an Idempotency-Key, in bytes.
const maxIdempotencyKeyLen = 255

// idempotentKeep is how long the answer of a request sent with an
// Idempotency-Key is kept to be given again.
const idempotentKeep = 24 * time.Hour

// idempotentPending bounds how long a request sent with an Idempotency-Key
// marks the key as being handled past the last renewal of the mark, so
// that a request cut off (a web process stopped mid-request, Redis
// refusing the mark's removal) holds the key only that long, where its
// sender is told to send it again (409). The process handling it renews
// the mark every third of that time (renewIdempotent) until it answers:
// the work may take up to rotationsTimeout on a slow Redis, and the same
// request handled anew meanwhile rotated again every instance whose
// rotation the first had started and that had finished.
const idempotentPending = 2 * time.Minute

// idempotent is a rotation request sent with an Idempotency-Key, being
// handled: it writes the answer through and keeps a copy, to be given
// again.
type idempotent struct {
	s       *server
	key     string
	request string // the request's digest
	w       http.ResponseWriter
	status  int
	body    bytes.Buffer
	// stop ends the mark's renewals (renewIdempotent).
	stop func()
}

func (i *idempotent) Header() http.Header { return i.w.Header() }

func (i *idempotent) WriteHeader(status int) {
	i.status = status
	i.w.WriteHeader(status)
}

func (i *idempotent) Write(b []byte) (int, error) {
	if i.status == 0 {
		i.status = http.StatusOK
	}
	i.body.Write(b)
	return i.w.Write(b)
}

// beginIdempotent reads the request's Idempotency-Key. Without one it
// returns (nil, true): handle the request as it is. With one it marks the
// key, and returns the writer the answer must go through, to be kept; or
// answers the request itself and returns false: with the answer given to
// the same request sent earlier with the key, or refusing it when that
// request is still being handled (409) or was another one (422).
func (s *server) beginIdempotent(w http.ResponseWriter, r *http.Request, body rotationsRequest) (*idempotent, bool) {
	values := r.Header.Values(idempotencyHeader)
	if len(values) == 0 {
		return nil, true
	}
	key := values[0]
	if len(values) > 1 || key == "" || len(key) > maxIdempotencyKeyLen ||
		strings.ContainsFunc(key, func(c rune) bool { return c < ' ' || c > '~' }) {
		writeError(w, http.StatusBadRequest, "the Idempotency-Key header must be one value of 1 to 255 printable ASCII characters")
		return nil, false
	}
	b, err := json.Marshal(body)
	if err != nil {
		s.internalError(w, r, "read the request for its idempotency key", err)
		return nil, false
	}
	sum := sha256.Sum256(b)
	request := hex.EncodeToString(sum[:16])
	prev, err := s.Store.BeginIdempotent(r.Context(), key, request, s.IdempotentPending)
	switch {
	case err != nil:
		s.internalError(w, r, "mark the request's idempotency key", err)
		return nil, false
	case prev == nil:
		i := &idempotent{s: s, key: key, request: request, w: w}
		i.stop = s.renewIdempotent(key, request)
		return i, true
	case prev.Pending:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusConflict, "the request sent earlier with this Idempotency-Key is still being handled: "+
			"send it again once that one is answered")
		return nil, false
	case prev.Request != request:
		writeError(w, http.StatusUnprocessableEntity, "this Idempotency-Key was sent with another request in the last "+
			"24 hours: send a new key with a new request")
		return nil, false
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(prev.Status)
	_, _ = w.Write(prev.Body)
	return nil, false
}

// finish keeps the request's answer under its key when the request was
// accepted, and otherwise frees the key: a request refused, or failed
// part-way, is handled anew when sent again, which is safe (an instance
// already rotating joins its rotation).
func (i *idempotent) finish(ctx context.Context) {
	i.stop()
	var err error
	if i.status == http.StatusAccepted {
		err = i.s.Store.FinishIdempotent(ctx, i.key, i.request, i.status, i.body.Bytes(), idempotentKeep)
	} else {
		err = i.s.Store.DropIdempotent(ctx, i.key, i.request)
	}
	if err != nil {
		i.s.Logger.Warn().Err(err).Msg("idempotency_key_not_kept")
	}
}

// renewIdempotent renews key's pending mark of request every third of its
// time until the returned stop is called, and returns once the renewals
// have ended. A renewal that fails is logged and tried again at the next.
func (s *server) renewIdempotent(key, request string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(max(s.IdempotentPending/3, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := s.Store.RenewIdempotent(ctx, key, request, s.IdempotentPending); err != nil && ctx.Err() == nil {
				s.Logger.Warn().Err(err).Msg("idempotency_key_not_renewed")
			}
		}
	}()
	return func() { cancel(); <-done }
}
