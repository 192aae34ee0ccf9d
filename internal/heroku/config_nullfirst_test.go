package heroku_test

import (
	"context"
	"errors"
	"testing"

	"github.com/rekeyhq/rekey/internal/heroku"
)

// A push's answer that names the pushed var twice, once without a value
// (null, a var Heroku lists as unset) and once with the pushed value, holds
// two answers for one var as surely as two values do: which one the apps
// run on cannot be told, so it is an unexpected answer, whichever comes
// first, never a confirmation that the push landed.
func TestAPushAnswerNamingTheVarTwiceOnceUnsetIsNoConfirmation(t *testing.T) {
	t.Parallel()
	sent := oneVar()[0]
	for _, body := range []string{
		`[{"name":"` + sent.Name + `","value":null},{"name":"` + sent.Name + `","value":"` + sent.Value.Reveal() + `"}]`,
		`[{"name":"` + sent.Name + `","value":"` + sent.Value.Reveal() + `"},{"name":"` + sent.Name + `","value":null}]`,
	} {
		s := newScript(t)
		s.on(patchRoute, reply{status: 200, body: body})
		c := newClient(t, s, heroku.WithTokenStore(newMemTokens(addonID, validToken())))
		if err := c.UpdateConfig(context.Background(), v3Target(), oneVar()); !errors.Is(err, heroku.ErrUnexpectedAnswer) {
			t.Errorf("answer %s: %v, want an unexpected answer", body, err)
		}
	}
}

// A var of a V3 config that gives its value twice, also in another case as
// encoding/json matches it, holds two values: a read of the config or a
// push's answer doing so proves nothing.
func TestAV3VarGivingItsValueTwiceIsNoAnswer(t *testing.T) {
	t.Parallel()
	sent := oneVar()[0]
	for _, second := range []string{"value", "Value"} {
		twice := `[{"name":"` + sent.Name + `","value":"` + sent.Value.Reveal() + `","` + second + `":"postgres://stale"}]`
		s := newScript(t)
		s.on("GET /addons/"+addonID+"/config", reply{status: 200, body: twice})
		s.on(patchRoute, reply{status: 200, body: `[{"name":"` + sent.Name + `","` + second + `":"postgres://stale","value":"` + sent.Value.Reveal() + `"}]`})
		c := newClient(t, s, heroku.WithTokenStore(newMemTokens(addonID, validToken())))
		ctx := context.Background()
		_, err := c.GetConfig(ctx, v3Target())
		for i, err := range []error{err, c.UpdateConfig(ctx, v3Target(), oneVar())} {
			if !errors.Is(err, heroku.ErrUnexpectedAnswer) {
				t.Errorf("%q given twice, call %d: %v, want an unexpected answer", second, i, err)
			}
		}
	}
}
