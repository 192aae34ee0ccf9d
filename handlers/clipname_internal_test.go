package handlers

import (
	"strings"
	"testing"
)

// TestClipNameQuotesOnlyWhatReadsAsAName: a TOTP seed of 80 bits is 16
// base32 characters, some with no digit, which LooksGenerated misses: it is
// not quoted, nor is a longer run of letters; names of config vars are.
func TestClipNameQuotesOnlyWhatReadsAsAName(t *testing.T) {
	for name, quoted := range map[string]bool{
		"JBSWYDPEHPKRXPQK":  false,
		"MFRGGZDFMZTWQYLK":  false,
		"ELASTICSEARCH_URL": true,
		"MYADDON_URL":       true,
		"postgres_url":      false,
	} {
		if got := strings.Contains(clipName(name), name); got != quoted {
			t.Errorf("clipName(%s) = %s: quoted %v, want %v", name, clipName(name), got, quoted)
		}
	}
}
