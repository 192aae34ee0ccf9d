package heroku_test

import (
	"context"
	"errors"
	"testing"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/secret"
)

// A V1 app's info that carries its config twice (the key "config" named
// twice, in any case, which encoding/json folds into one map, the last
// value of a var winning) names the var twice as surely as one config
// object that lists it twice: which value the apps run on cannot be told,
// so a read of it is an unexpected answer, not a config that lacks the
// pushed value (which would discard and revoke a credential Heroku holds).
func TestAV1AppInfoCarryingItsConfigTwiceIsNoAnswer(t *testing.T) {
	t.Parallel()
	sent := oneVar()[0]
	pushed := `{"` + sent.Name + `":"` + sent.Value.Reveal() + `"}`
	stale := `{"` + sent.Name + `":"postgres://stale"}`
	for _, body := range []string{
		`{"id":"app123@heroku.com","config":` + pushed + `,"config":` + stale + `}`,
		`{"id":"app123@heroku.com","config":` + pushed + `,"Config":` + stale + `}`,
	} {
		s := newScript(t)
		s.on(v1GetRoute, reply{status: 200, body: body})
		c := newClient(t, s, heroku.WithV1Credentials("myaddon", secret.New(v1Password)))
		got, err := c.GetConfig(context.Background(), v1Target())
		if !errors.Is(err, heroku.ErrUnexpectedAnswer) {
			t.Errorf("app info %s: read %s = %q, %v; want an unexpected answer",
				body, sent.Name, got[sent.Name].Reveal(), err)
		}
	}
}
