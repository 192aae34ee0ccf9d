package main

import (
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestReadmeCommandsExist: every command the README's table of operator
// commands shows is one rekey runs, with the flags the row names: not a
// group that only lists its subcommands (exit 2), and no flag the command
// lacks.
func TestReadmeCommandsExist(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	root := newRootCmd(&environ{lookup: func(string) (string, bool) { return "", false },
		stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard})
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	root.InitDefaultVersionFlag()
	row := regexp.MustCompile("(?m)^\\| `(rekey[^`]*)`")
	word := regexp.MustCompile(`^[a-z][a-z-]*$`)
	flag := regexp.MustCompile(`--[a-z][a-z-]*`)
	group := reflect.ValueOf(unknownSubcommand).Pointer()
	rows := row.FindAllStringSubmatch(string(readme), -1)
	if len(rows) < 20 {
		t.Fatalf("found %d command rows in README.md; has the table moved?", len(rows))
	}
	for _, m := range rows {
		shown := m[1]
		var path []string
		for _, w := range strings.Fields(shown)[1:] {
			if !word.MatchString(w) {
				break
			}
			path = append(path, w)
		}
		c, rest, err := root.Find(path)
		if err != nil || len(rest) > 0 {
			t.Errorf("README shows `%s`: rekey has no command %q", shown, strings.Join(path, " "))
			continue
		}
		if c.Name() == "completion" {
			continue // cobra's: a shell name follows
		}
		if c.RunE != nil && reflect.ValueOf(c.RunE).Pointer() == group {
			var subs []string
			for _, s := range c.Commands() {
				subs = append(subs, s.Name())
			}
			t.Errorf("README shows `%s`, but `%s` alone only asks for a subcommand (%s), exit 2",
				shown, c.CommandPath(), strings.Join(subs, ", "))
			continue
		}
		c.InitDefaultHelpFlag()
		for _, f := range flag.FindAllString(shown, -1) {
			if !hasFlag(c, strings.TrimPrefix(f, "--")) {
				t.Errorf("README shows `%s`, but `%s` has no %s", shown, c.CommandPath(), f)
			}
		}
	}
}

func hasFlag(c *cobra.Command, name string) bool {
	return c.Flags().Lookup(name) != nil || c.InheritedFlags().Lookup(name) != nil
}

// TestResealHelpSaysWhenItIsSafe: `rekey keys reseal --help` and the
// README's key rotation steps say reseal is safe only once every process
// runs with the new key first, and that REKEY_POSTGRES_KEY is pinned
// before the first key changes with the PostgreSQL issuer.
func TestResealHelpSaysWhenItIsSafe(t *testing.T) {
	var out syncBuffer
	env := &environ{lookup: func(string) (string, bool) { return "", false }, stdin: strings.NewReader(""),
		stdout: &out, stderr: io.Discard}
	if err := runCommand(t.Context(), env, "keys", "reseal", "--help"); err != nil {
		t.Fatal(err)
	}
	help := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{"Run it only once every running process (web, worker, clock, one-off) holds the new key first in REKEY_ENCRYPTION_KEYS: restart them all with NEW,OLD first",
		"pin REKEY_POSTGRES_KEY before changing the first key"} {
		if !strings.Contains(help, want) {
			t.Errorf("rekey keys reseal --help lacks %q:\n%s", want, out.String())
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "### Encryption keys")
	section, _, _ = strings.Cut(section, "\n#")
	section = strings.Join(strings.Fields(section), " ")
	for _, want := range []string{"with `REKEY_ISSUER=postgres` and `REKEY_POSTGRES_KEY` unset, pin it first",
		"printf %s rekey-postgres-issuer-key | openssl dgst -sha256 -binary -mac HMAC",
		"2. only then run `rekey keys reseal`"} {
		if !strings.Contains(section, want) {
			t.Errorf("README's \"Encryption keys\" lacks %q", want)
		}
	}
	if strings.Contains(string(readme), "idempotent and safe while workers run |") {
		t.Error("README's command table still calls reseal safe while workers run, without the condition")
	}
}
