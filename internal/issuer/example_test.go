package issuer_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/secret"
)

// An issuer's webhook handler checks the v2 signature of every request
// before acting on it. A verify request captured on the way and replayed
// as a DELETE carries a valid v1 signature for its body, but its v2
// signature names another method and path, so the handler refuses it.
func ExampleVerifyRequest() {
	key := secret.New("whsec-example")                 // REKEY_ISSUER_SECRET, shared with rekey
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) // the receiver's clock
	revoke := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		if err == nil {
			err = issuer.VerifyRequest(key, r, body, at, issuer.DefaultSkew)
		}
		if err != nil {
			http.Error(w, `{"error":"bad_signature"}`, http.StatusUnauthorized)
			return
		}
		// ... check that the body's credential_id is r.PathValue("id"), then revoke it.
		w.WriteHeader(http.StatusNoContent)
	})
	mux := http.NewServeMux()
	mux.Handle("DELETE /credentials/{id}", revoke)

	// What rekey sends to verify cred_1.
	body := []byte(`{"credential_id":"cred_1","instance_id":"inst-1"}`)
	captured := issuer.SignRequest(key, at, http.MethodPost, "/credentials/cred_1/verify", body)

	for _, header := range []string{
		issuer.SignRequest(key, at, http.MethodDelete, "/credentials/cred_1", body), // rekey's own DELETE
		captured, // the verify signature replayed
	} {
		r := httptest.NewRequest(http.MethodDelete, "/credentials/cred_1", bytes.NewReader(body))
		r.Header.Set(issuer.SignatureHeader, header)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		fmt.Println(w.Code)
	}
	// Output:
	// 204
	// 401
}
