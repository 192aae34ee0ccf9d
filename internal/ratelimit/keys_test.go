package ratelimit

import "testing"

func TestKeysFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		scope Scope
		addon string
		want  scopeKeys
	}{
		{ScopeAccount, "", scopeKeys{
			"rekey:ratelimit:{account}", "rekey:ratelimit:{account}:hold", "rekey:ratelimit:{account}:backoff",
		}},
		{ScopeAccount, "a1", scopeKeys{
			"rekey:ratelimit:{account}", "rekey:ratelimit:{account}:hold", "rekey:ratelimit:{account}:backoff",
		}},
		{ScopeInstance, "a1", scopeKeys{
			"rekey:ratelimit:addon:{a1}", "rekey:ratelimit:{account}:hold", "rekey:ratelimit:{account}:backoff",
		}},
	}
	for _, tt := range tests {
		if got, err := keysFor(tt.scope, tt.addon); err != nil || got != tt.want {
			t.Errorf("keysFor(%v, %q) = %+v, %v; want %+v", tt.scope, tt.addon, got, err, tt.want)
		}
	}
}
