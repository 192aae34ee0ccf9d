package issuer_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
)

// TestUsageHintWithAKeyInGroupsBesideADashIsDropped plays an issuer whose
// credentials are keys written as UUIDs and whose usage answer echoes the
// key asked about with a dash stuck to one end of it: after a double dash
// ("client--<key>"), or before a trailing one. The hint must be dropped as
// the bare key is (I5): it is kept in clear in Redis and shown to the
// customer while the key still works.
func TestUsageHintWithAKeyInGroupsBesideADashIsDropped(t *testing.T) {
	t.Parallel()
	const uuid = "3f2a9c1e-7b4d-4e8a-9c2f-1a6b5d8e0f47"
	for _, hint := range []string{"client--" + uuid, uuid + "--web.1", uuid + "-", "-" + uuid, "by " + uuid + "- web.1",
		"k9Xq-2mPv-7LwR-4zTy-8NcB---x"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"last_used_at":"2020-01-01T00:00:00Z","last_used_by":"` + hint + `"}`))
		}))
		h, err := issuer.NewHTTP(srv.URL, key)
		if err != nil {
			t.Fatal(err)
		}
		u, err := h.Usage(context.Background(), "inst-1", "cred-1")
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		if u.LastUsedBy != "" {
			t.Errorf("usage hint %q kept in clear as %q: it holds a key written in groups", hint, u.LastUsedBy)
		}
	}
}
