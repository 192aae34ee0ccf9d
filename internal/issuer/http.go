package issuer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
)

const (
	// maxResponseBytes bounds what is read of any issuer response.
	maxResponseBytes = 256 << 10
	// maxMessageLen bounds the issuer's message as kept in an Error.
	maxMessageLen = 200
	// defaultTimeout bounds one webhook call; the caller's context too.
	defaultTimeout = 30 * time.Second
)

// HTTP is the issuer that calls the partner's webhook service, as DESIGN.md
// specifies it, signing every request. It is safe for concurrent use.
type HTTP struct {
	base   string
	key    secret.String
	client *http.Client
	now    func() time.Time
}

var _ Issuer = (*HTTP)(nil)

// Option configures an HTTP issuer and checks its input.
type Option func(*HTTP) error

// WithHTTPClient sets the HTTP client (default: a 30 s timeout).
func WithHTTPClient(c *http.Client) Option {
	return func(h *HTTP) error {
		if c == nil {
			return errors.New("http client is nil")
		}
		h.client = c
		return nil
	}
}

// WithClock sets the clock that timestamps signatures.
func WithClock(now func() time.Time) Option {
	return func(h *HTTP) error {
		if now == nil {
			return errors.New("clock is nil")
		}
		h.now = now
		return nil
	}
}

// NewHTTP returns an issuer calling the webhook service at baseURL, signing
// with key (REKEY_ISSUER_SECRET).
func NewHTTP(baseURL string, key secret.String, opts ...Option) (*HTTP, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("issuer: base url must be an absolute http(s) URL without credentials, query or fragment")
	}
	if key.IsZero() {
		return nil, errors.New("issuer: signing secret is empty")
	}
	h := &HTTP{base: strings.TrimRight(u.String(), "/"), key: key, client: &http.Client{Timeout: defaultTimeout}, now: time.Now}
	for _, opt := range opts {
		if err := opt(h); err != nil {
			return nil, fmt.Errorf("issuer: %w", err)
		}
	}
	return h, nil
}

// Mint calls POST {base}/credentials.
func (h *HTTP) Mint(ctx context.Context, instanceID, rotationID string) (Credential, error) {
	if instanceID == "" || rotationID == "" {
		return Credential{}, fmt.Errorf("issuer mint: empty instance or rotation id: %w", ErrInvalid)
	}
	req := map[string]string{"instance_id": instanceID, "rotation_id": rotationID}
	status, body, err := h.do(ctx, "mint", http.MethodPost, h.base+"/credentials", req)
	if err != nil {
		return Credential{}, err
	}
	if !ok2xx(status) {
		return Credential{}, statusError("mint", status, body)
	}
	return decodeCredential(body)
}

// Verify calls POST {base}/credentials/{id}/verify: 2xx works, 404 means
// unsupported.
func (h *HTTP) Verify(ctx context.Context, instanceID, credentialID string) error {
	u, err := h.credentialURL("verify", instanceID, credentialID)
	if err != nil {
		return err
	}
	status, body, err := h.do(ctx, "verify", http.MethodPost, u+"/verify", map[string]string{"instance_id": instanceID})
	switch {
	case err != nil:
		return err
	case ok2xx(status):
		return nil
	case status == http.StatusNotFound:
		return ErrVerifyUnsupported
	}
	return statusError("verify", status, body)
}

// Revoke calls DELETE {base}/credentials/{id}: 2xx and 404 both mean
// revoked.
func (h *HTTP) Revoke(ctx context.Context, instanceID, credentialID string) error {
	u, err := h.credentialURL("revoke", instanceID, credentialID)
	if err != nil {
		return err
	}
	status, body, err := h.do(ctx, "revoke", http.MethodDelete, u, map[string]string{"instance_id": instanceID})
	if err != nil || ok2xx(status) || status == http.StatusNotFound {
		return err
	}
	return statusError("revoke", status, body)
}

func (h *HTTP) credentialURL(op, instanceID, credentialID string) (string, error) {
	if instanceID == "" || credentialID == "" {
		return "", fmt.Errorf("issuer %s: empty instance or credential id: %w", op, ErrInvalid)
	}
	return h.base + "/credentials/" + url.PathEscape(credentialID), nil
}

// do sends one signed JSON request and returns the status and the body, read
// with a size limit. A call that got no response returns an *Error without
// the URL, which may hold a path secret of the partner's.
func (h *HTTP) do(ctx context.Context, op, method, u string, payload any) (int, []byte, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return 0, nil, &Error{Op: op, Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(raw))
	if err != nil {
		return 0, nil, &Error{Op: op, Message: "cannot build request"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set(SignatureHeader, Sign(h.key, h.now(), raw))
	resp, err := h.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return 0, nil, &Error{Op: op, Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil || len(body) > maxResponseBytes {
		return 0, nil, &Error{Op: op, Status: resp.StatusCode, Message: "response body unreadable or too large"}
	}
	return resp.StatusCode, body, nil
}

func ok2xx(status int) bool { return status >= 200 && status <= 299 }

// statusError is the one place that turns an issuer's non-2xx answer into an
// Error. Only a short message from a JSON body is kept: the body itself may
// hold anything.
func statusError(op string, status int, body []byte) error {
	var msg struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &msg) // a body that is not JSON leaves both empty
	text := msg.Error
	if text == "" {
		text = msg.Message
	}
	if text == "" {
		text = http.StatusText(status)
	}
	if len(text) > maxMessageLen {
		text = strings.ToValidUTF8(text[:maxMessageLen], "") + "…"
	}
	return &Error{Op: op, Status: status, Message: text}
}

// decodeCredential reads a mint response. A response without an id or
// config is the issuer's bug; it is reported without the body, which holds
// secrets, and stays retryable in case the issuer is fixed.
func decodeCredential(body []byte) (Credential, error) {
	var r struct {
		CredentialID string            `json:"credential_id"`
		Config       map[string]string `json:"config"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.CredentialID == "" || len(r.Config) == 0 {
		return Credential{}, &Error{Op: "mint", Message: "malformed response: needs credential_id and config"}
	}
	c := Credential{ID: r.CredentialID, Config: make(map[string]secret.String, len(r.Config))}
	for name, v := range r.Config {
		if name == "" || v == "" {
			return Credential{}, &Error{Op: "mint", Message: "malformed response: empty config var name or value"}
		}
		c.Config[name] = secret.New(v)
	}
	return c, nil
}
