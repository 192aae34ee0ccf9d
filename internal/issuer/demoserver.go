package issuer

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/rekeyhq/rekey/internal/secret"
)

// maxRequestBytes bounds a webhook request body.
const maxRequestBytes = 64 << 10

// webhookRequest is the body of every issuer webhook request.
type webhookRequest struct {
	InstanceID   string `json:"instance_id"`
	RotationID   string `json:"rotation_id"`
	CredentialID string `json:"credential_id"`
	// Action is "verify", "revoke" or "usage" in those requests' bodies.
	Action string `json:"action"`
}

// DemoServerOption configures NewDemoServer.
type DemoServerOption func(*demoServer)

// WithV1Signatures makes the server check the v1 signature scheme only, as
// an issuer written before v2 does. Tests use it to prove rekey still works
// with such issuers.
func WithV1Signatures() DemoServerOption {
	return func(s *demoServer) { s.v1Only = true }
}

// NewDemoServer serves the issuer webhook contract of README.md from d, so
// that the HTTP issuer, tests and separate worker processes can use a Demo
// over the network. Every request must carry a valid v2 Rekey-Signature
// made with key (v1 with WithV1Signatures); others get 401. A verify or
// revoke body naming another credential than the path gets 400. The handler
// is safe for concurrent use; mount it under a prefix with http.StripPrefix.
func NewDemoServer(d *Demo, key secret.String, opts ...DemoServerOption) http.Handler {
	s := &demoServer{d: d, key: key}
	for _, opt := range opts {
		opt(s)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /credentials", s.signed(s.mint))
	mux.HandleFunc("POST /credentials/{id}/verify", s.signed(s.verify))
	mux.HandleFunc("DELETE /credentials/{id}", s.signed(s.revoke))
	mux.HandleFunc("GET /credentials/{id}/usage", s.signed(s.usage))
	return mux
}

type demoServer struct {
	d      *Demo
	key    secret.String
	v1Only bool
}

// signed reads the body, checks the signature, the instance id and the
// credential id, and passes the decoded request on.
func (s *demoServer) signed(next func(http.ResponseWriter, *http.Request, webhookRequest)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
		if err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, "request_too_large")
			return
		}
		if err := s.verifySignature(r, body); err != nil {
			writeError(w, http.StatusUnauthorized, "bad_signature")
			return
		}
		var req webhookRequest
		if err := json.Unmarshal(body, &req); err != nil || req.InstanceID == "" {
			writeError(w, http.StatusBadRequest, "instance_id_missing")
			return
		}
		// A v1 signature does not cover the path; the body's credential_id
		// does, for issuers that check it.
		if id := r.PathValue("id"); id != "" && req.CredentialID != "" && req.CredentialID != id {
			writeError(w, http.StatusBadRequest, "credential_id_mismatch")
			return
		}
		// Nor does it cover the method: the body's action does, so a
		// verify body replayed as a DELETE is refused.
		if req.Action != "" && req.Action != actionOf(r) {
			writeError(w, http.StatusBadRequest, "action_mismatch")
			return
		}
		next(w, r, req)
	}
}

// actionOf is the action a request's method and path stand for, as
// credentialBody names it.
func actionOf(r *http.Request) string {
	switch {
	case r.Method == http.MethodDelete:
		return ActionRevoke
	case strings.HasSuffix(r.URL.Path, "/verify"):
		return ActionVerify
	case strings.HasSuffix(r.URL.Path, "/usage"):
		return ActionUsage
	}
	return ""
}

func (s *demoServer) verifySignature(r *http.Request, body []byte) error {
	if s.v1Only {
		return VerifySignature(s.key, r.Header.Get(SignatureHeader), body, s.d.now(), DefaultSkew)
	}
	return VerifyRequest(s.key, r, body, s.d.now(), DefaultSkew)
}

func (s *demoServer) mint(w http.ResponseWriter, r *http.Request, req webhookRequest) {
	c, err := s.d.Mint(r.Context(), req.InstanceID, req.RotationID)
	if err != nil {
		writeIssuerError(w, err)
		return
	}
	config := make(map[string]string, len(c.Config))
	for name, v := range c.Config {
		config[name] = v.Reveal()
	}
	writeJSON(w, http.StatusCreated, map[string]any{"credential_id": c.ID, "config": config})
}

func (s *demoServer) verify(w http.ResponseWriter, r *http.Request, req webhookRequest) {
	if err := s.d.Verify(r.Context(), req.InstanceID, r.PathValue("id")); err != nil {
		writeIssuerError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// revoke answers 204 when this request revoked the credential and 404 when
// it was unknown or already revoked; the contract treats both as revoked.
func (s *demoServer) revoke(w http.ResponseWriter, r *http.Request, req webhookRequest) {
	revoked, err := s.d.revoke(r.Context(), req.InstanceID, r.PathValue("id"))
	switch {
	case err != nil:
		writeIssuerError(w, err)
	case revoked:
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, http.StatusNotFound, "no_live_credential")
	}
}

// writeIssuerError maps a Demo error to the status the contract gives it.
func writeIssuerError(w http.ResponseWriter, err error) {
	var e *Error
	switch {
	case errors.Is(err, ErrVerifyUnsupported):
		writeError(w, http.StatusNotFound, "verify_unsupported")
	case errors.Is(err, ErrInvalid):
		writeError(w, http.StatusBadRequest, "empty_id")
	case errors.As(err, &e) && e.Status >= 400:
		writeError(w, e.Status, e.Code)
	default:
		writeError(w, http.StatusInternalServerError, "issuer_failed")
	}
}

// writeError answers with a failure code, the only part of an error body
// rekey keeps.
func writeError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
