package config_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/config"
)

// A misspelt setting is named, with the one it is closest to; settings
// rekey reads, other programs' variables and the test harness's are not.
func TestUnknownNamesMisspeltSettings(t *testing.T) {
	t.Parallel()
	got := config.Unknown([]string{"REKEY_GRACEE", "REKEY_GRACE", "PATH", "REKEY_TEST_REDIS_URL",
		"REKEY_MAX_GRCE", "REKEY_SOMETHING_ELSE_ENTIRELY"})
	want := []string{
		"REKEY_GRACEE is not a setting rekey reads; it is ignored (did you mean REKEY_GRACE?)",
		"REKEY_MAX_GRCE is not a setting rekey reads; it is ignored (did you mean REKEY_MAX_GRACE?)",
		"REKEY_SOMETHING_ELSE_ENTIRELY is not a setting rekey reads; it is ignored",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Unknown = %q\nwant %q", got, want)
	}
}

// Every REKEY_ setting the README's table documents is one rekey reads.
func TestEveryDocumentedSettingIsKnown(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for line := range strings.Lines(string(readme)) {
		if strings.HasPrefix(line, "| `REKEY_") {
			documented = append(documented, regexp.MustCompile("REKEY_[A-Z0-9_]+").FindAllString(strings.SplitN(line, "|", 3)[1], -1)...)
		}
	}
	if len(documented) < 20 {
		t.Fatalf("found %d settings in README.md's table; the table moved?", len(documented))
	}
	if got := config.Unknown(documented); len(got) > 0 {
		t.Errorf("documented but unknown: %q", got)
	}
}
