package issuer

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/rekeyhq/rekey/internal/secret"
)

// maxRequestBytes bounds a webhook request body.
const maxRequestBytes = 64 << 10

// webhookRequest is the body of every issuer webhook request.
type webhookRequest struct {
	InstanceID string `json:"instance_id"`
	RotationID string `json:"rotation_id"`
}

// NewDemoServer serves the issuer webhook contract of DESIGN.md from d, so
// that the HTTP issuer, tests and separate worker processes can use a Demo
// over the network. Every request must carry a valid Rekey-Signature made
// with key; others get 401. The handler is safe for concurrent use; mount it
// under a prefix with http.StripPrefix.
func NewDemoServer(d *Demo, key secret.String) http.Handler {
	s := &demoServer{d: d, key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /credentials", s.signed(s.mint))
	mux.HandleFunc("POST /credentials/{id}/verify", s.signed(s.verify))
	mux.HandleFunc("DELETE /credentials/{id}", s.signed(s.revoke))
	return mux
}

type demoServer struct {
	d   *Demo
	key secret.String
}

// signed reads the body, checks the signature and the instance id, and
// passes the decoded request on.
func (s *demoServer) signed(next func(http.ResponseWriter, *http.Request, webhookRequest)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
		if err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
			return
		}
		if err := VerifySignature(s.key, r.Header.Get(SignatureHeader), body, s.d.now(), DefaultSkew); err != nil {
			writeError(w, http.StatusUnauthorized, "bad signature")
			return
		}
		var req webhookRequest
		if err := json.Unmarshal(body, &req); err != nil || req.InstanceID == "" {
			writeError(w, http.StatusBadRequest, "body needs instance_id")
			return
		}
		next(w, r, req)
	}
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
		writeError(w, http.StatusNotFound, "no such live credential")
	}
}

// writeIssuerError maps a Demo error to the status the contract gives it.
func writeIssuerError(w http.ResponseWriter, err error) {
	var e *Error
	switch {
	case errors.Is(err, ErrVerifyUnsupported):
		writeError(w, http.StatusNotFound, "verify not supported")
	case errors.Is(err, ErrInvalid):
		writeError(w, http.StatusBadRequest, "empty id")
	case errors.As(err, &e) && e.Status >= 400:
		writeError(w, e.Status, e.Message)
	default:
		writeError(w, http.StatusInternalServerError, "issuer failed")
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
