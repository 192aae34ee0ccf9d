package issuer_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// v1Receiver is an issuer written before v2 that follows the README's
// advice for such issuers: it checks the v1 signature, that the body's
// credential_id is the one in the path and that its action is the one
// the method stands for. It records the verify request it
// got, and whether a DELETE was accepted.
type v1Receiver struct {
	mu            sync.Mutex
	verifyHeader  string
	verifyBody    []byte
	deleteAllowed bool
}

func (s *v1Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if issuer.VerifySignature(key, r.Header.Get(issuer.SignatureHeader), body, time.Now(), 0) != nil {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var b struct {
		CredentialID string `json:"credential_id"`
		Action       string `json:"action"`
	}
	id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/credentials/"), "/verify")
	action := issuer.ActionVerify
	if r.Method == http.MethodDelete {
		action = issuer.ActionRevoke
	}
	if json.Unmarshal(body, &b) != nil || b.CredentialID != id || b.Action != action {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.Method {
	case http.MethodPost:
		s.verifyHeader, s.verifyBody = r.Header.Get(issuer.SignatureHeader), body
	case http.MethodDelete:
		s.deleteAllowed = true
	}
	w.WriteHeader(http.StatusOK)
}

// A verify request of the new credential, captured on the way, replayed
// as DELETE of the same credential: the v1 signature covers only t.body,
// so only the body's action, which says "verify", lets a v1 issuer refuse
// it; without it the credential about to be pushed would be revoked by
// someone who never held the secret.
func TestV1ReceiverRefusesVerifyReplayedAsDelete(t *testing.T) {
	t.Parallel()
	rec := &v1Receiver{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	h, err := issuer.NewHTTP(srv.URL, key, issuer.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Verify(context.Background(), "inst-1", "cred-new"); err != nil {
		t.Fatalf("verify: %v", err)
	}
	rec.mu.Lock()
	header, body := rec.verifyHeader, append([]byte(nil), rec.verifyBody...)
	rec.mu.Unlock()

	replay, err := http.NewRequest(http.MethodDelete, srv.URL+"/credentials/cred-new", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	replay.Header.Set(issuer.SignatureHeader, header)
	resp, err := srv.Client().Do(replay)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.deleteAllowed {
		t.Fatalf("a captured verify request (body %s) was accepted as DELETE by a v1 issuer checking credential_id: "+
			"verify and revoke bodies must differ (e.g. an \"action\" field) so v1 signatures bind the purpose", body)
	}
}
