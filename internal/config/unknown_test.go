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

// A misspelt REDIS_URL or HEROKU_ variable, and a REKEY_ setting in
// another case, are named too, with the one meant; Heroku's dyno metadata
// and names far from rekey's are not.
func TestUnknownNamesMisspeltSharedAndMiscasedSettings(t *testing.T) {
	t.Parallel()
	got := config.Unknown([]string{"HEROKU_API_ULR", "HEROKU_API_URL", "rekey_grace", "Rekey_Max_Grce", "REDIS_ULR",
		"redis_url", "HEROKU_APP_ID", "HEROKU_APP_NAME", "HEROKU_DYNO_ID", "HEROKU_RELEASE_VERSION", "HEROKU_SLUG_COMMIT",
		"HEROKU_REDIS_MAROON_URL", "DATABASE_URL", "REDIS_TLS_URL", "HEROKU_SSO_SALTT"})
	want := []string{
		"HEROKU_API_ULR is not a setting rekey reads; it is ignored (did you mean HEROKU_API_URL?)",
		"rekey_grace is not a setting rekey reads; it is ignored (names are case-sensitive: did you mean REKEY_GRACE?)",
		"Rekey_Max_Grce is not a setting rekey reads; it is ignored (did you mean REKEY_MAX_GRACE?)",
		"REDIS_ULR is not a setting rekey reads; it is ignored (did you mean REDIS_URL?)",
		"redis_url is not a setting rekey reads; it is ignored (names are case-sensitive: did you mean REDIS_URL?)",
		"HEROKU_SSO_SALTT is not a setting rekey reads; it is ignored (did you mean HEROKU_SSO_SALT?)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Unknown = %q\nwant %q", got, want)
	}
}

// A REKEY_ setting whose prefix is misspelt (REKY_MAX_GRACE, REKEYGRACE)
// is ignored like any other misspelling, and named as one.
func TestUnknownNamesSettingsWithAMisspeltPrefix(t *testing.T) {
	t.Parallel()
	got := config.Unknown([]string{"REKY_MAX_GRACE", "REKEYGRACE", "REKEY_GRACE", "KEY_GRACE_X", "PATH", "DATABASE_URL"})
	want := []string{
		"REKY_MAX_GRACE is not a setting rekey reads; it is ignored (did you mean REKEY_MAX_GRACE?)",
		"REKEYGRACE is not a setting rekey reads; it is ignored (did you mean REKEY_GRACE?)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Unknown = %q\nwant %q", got, want)
	}
}

// A setting whose name carries invisible characters (the byte order mark
// a file saved on Windows starts with, ahead of its first line's name; a
// zero-width space pasted with it) is named, quoted so they show, with the
// setting meant: the process ignores it, and a REKEY_GRACE=30m on the
// first line of such a file left the grace at its default without a word.
func TestUnknownNamesSettingsWithInvisibleCharacters(t *testing.T) {
	t.Parallel()
	got := config.Unknown([]string{"\ufeffREKEY_GRACE", "REKEY_\u200bMAX_GRACE", "\ufeffREDIS_URL", "\ufeffPATH", "\ufeffREKEY_SOMETHING_ELSE_ENTIRELY", "REKEY_GRACE"})
	want := []string{
		`"\ufeffREKEY_GRACE" is not a setting rekey reads; it is ignored (its name holds invisible characters, ` +
			`such as the byte order mark a file saved on Windows starts with: did you mean REKEY_GRACE?)`,
		`"REKEY_\u200bMAX_GRACE" is not a setting rekey reads; it is ignored (its name holds invisible characters, ` +
			`such as the byte order mark a file saved on Windows starts with: did you mean REKEY_MAX_GRACE?)`,
		`"\ufeffREDIS_URL" is not a setting rekey reads; it is ignored (its name holds invisible characters, ` +
			`such as the byte order mark a file saved on Windows starts with: did you mean REDIS_URL?)`,
		`"\ufeffREKEY_SOMETHING_ELSE_ENTIRELY" is not a setting rekey reads; it is ignored (its name holds invisible ` +
			`characters, such as the byte order mark a file saved on Windows starts with)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Unknown = %q\nwant %q", got, want)
	}
}
