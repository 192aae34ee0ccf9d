package config

import (
	"fmt"
	"strings"
)

// isQuoted reports whether v is wrapped in a pair of double or single
// quotes: a value written "abc" in a .env file, or given to heroku
// config:set with its quotes, reaches the environment with them, and rekey
// would take them as part of the value.
func isQuoted(v string) bool {
	return len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0]
}

func (p *parser) markQuoted(name string) {
	if p.quoted == nil {
		p.quoted = map[string]bool{}
	}
	p.quoted[name] = true
}

// noteQuotes adds to the refusal of a variable whose value is wrapped in
// quotes that it is, since the refusal's own words (duration units, true
// or false, a URL's scheme) do not show it. Every refusal of a variable
// starts with its name.
func (p *parser) noteQuotes() {
	for i, err := range p.errs {
		for name := range p.quoted {
			if rest, ok := strings.CutPrefix(err.Error(), name); ok && !startsWithNameByte(rest) {
				p.errs[i] = fmt.Errorf("%w; %s: set it without them", err, quotedSentence(name))
				break
			}
		}
	}
}

// startsWithNameByte reports whether s starts with a byte that continues
// a variable's name (REKEY_ISSUER in REKEY_ISSUER_URL).
func startsWithNameByte(s string) bool {
	if s == "" {
		return false
	}
	b := s[0]
	return b == '_' || b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9'
}

// quotedSentence says name's value is wrapped in quotes, never quoting it.
func quotedSentence(name string) string {
	return name + "'s value is wrapped in quotes, which rekey takes as part of it (a .env file's quotes, or quotes " +
		"given to heroku config:set, reach the environment as they are)"
}

// quotedWarnings warn of each variable Load took with its quotes: a
// secret so written matches no other party's copy of it, which shows only
// later, as 401s or signature failures. Only the names: the values may be
// secrets.
func (c *Config) quotedWarnings() []Warning {
	out := make([]Warning, 0, len(c.quoted))
	for _, name := range c.quoted {
		out = append(out, Warning{Name: WarnQuotedValue, Detail: quotedSentence(name) + ": unless they are part of " +
			"it, set it without them; a token, password, salt or secret taken with them matches no other party's " +
			"copy, which shows as 401s or signature failures"})
	}
	return out
}
