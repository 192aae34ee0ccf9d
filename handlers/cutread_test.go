package handlers_test

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// A 2xx to the config read before a first mint whose body stops halfway,
// the connection closed cleanly where the answer gave no Content-Length
// (close-delimited), is an answer lost on the way, as one reset halfway
// is: the run is retried. It was taken for an answer that is not Heroku's
// and ended the rotation for good (readback:unexpected_answer).
func TestAConfigReadCutShortBeforeTheFirstMintIsRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newRig(t)
	provisionWithoutConfig(t, g, "inst-2")
	g.useHeroku(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/addons/inst-2/config" {
			g.fake.ServeHTTP(w, r)
			return
		}
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" +
			`[{"name":"MYADDON_URL","value":"postgres://u:p@h/d"},{"name":"MYADDON_`)
		_ = buf.Flush()
	}), 5*time.Second)
	err := g.run(rotateTask(t, "inst-2", "rot-2"))
	if err == nil || isPermanent(err) {
		t.Fatalf("rotate = %v, want an error retried", err)
	}
	if in, _ := g.st.Instance(ctx, "inst-2"); in.LastErrorCode != "" {
		t.Errorf("last error code %q, want none: the rotation goes on", in.LastErrorCode)
	}
}
