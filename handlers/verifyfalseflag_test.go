package handlers_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/rekeyhq/rekey/internal/issuer"
	"github.com/rekeyhq/rekey/internal/store"
)

// A verify answered 200 whose "valid" or "works" is written as PHP, MySQL
// or PostgreSQL write false (0, "0", "no", "off", "f") says the
// credential does not work. Read as "works", every app of the instance
// was pushed a credential the issuer had said does not work. The rotation
// is retried, nothing pushed, and goes on once the issuer says it works.
func TestVerifyAnsweredFalseWrittenAsZeroOrNoPushesNothing(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"valid":0}`, `{"valid":"0"}`, `{"valid":"no"}`, `{"works":"off"}`,
		`{"valid":"f"}`, `{"works":"N"}`, `{"valid":0.0}`} {
		t.Run(body, func(t *testing.T) {
			t.Parallel()
			g := newRig(t)
			var front atomic.Pointer[frontAnswer]
			g.overFront(t, issuer.VerifyAuto, http.MethodPost, "/verify", &front)
			ctx := context.Background()
			if err := g.run(rotateTask(t, "inst-1", "rot_z1")); err != nil {
				t.Fatalf("first rotation: %v", err)
			}
			first, _ := g.st.Instance(ctx, "inst-1")

			front.Store(&frontAnswer{http.StatusOK, "application/json", body})
			err := g.run(rotateTask(t, "inst-1", "rot_z2"))
			rot, _ := g.st.Rotation(ctx, "rot_z2")
			if err == nil || isPermanent(err) || rot.State == store.RotationPromoted {
				t.Fatalf("rotation with verify answered %s = %v, %s; want retried", body, err, rot.State)
			}
			if n := g.fake.ConfigChanges("inst-1"); n != 1 || g.configCredential(t, "inst-1") != first.CurrentCredential {
				t.Fatalf("%d config changes, Heroku holds %s; want only the first rotation's %s",
					n, g.configCredential(t, "inst-1"), first.CurrentCredential)
			}

			front.Store(&frontAnswer{http.StatusOK, "application/json", `{"valid":1}`})
			if err := g.run(rotateTask(t, "inst-1", "rot_z2")); err != nil {
				t.Fatalf("rotation once the issuer says it works: %v", err)
			}
			if rot, _ = g.st.Rotation(ctx, "rot_z2"); rot.State != store.RotationPromoted {
				t.Errorf("rotation %s, want promoted", rot.State)
			}
		})
	}
}
