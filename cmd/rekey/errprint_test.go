package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestConfigErrorsPrintOneLinePerVariable(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"PORT": "eighty", "REKEY_GRACE": "two hours", "REKEY_RATE_SCOPE": "galaxy"}
	env := &environ{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	err := run(context.Background(), env, []string{"worker"})
	if err == nil {
		t.Fatal("rekey worker accepted three bad variables")
	}
	var out bytes.Buffer
	printError(&out, err)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("printed %q; want three lines", out.String())
	}
	for i, name := range []string{"PORT", "REKEY_GRACE", "REKEY_RATE_SCOPE"} {
		if !strings.HasPrefix(lines[i], "rekey: "+name+" must be") {
			t.Errorf("line %d = %q; want rekey: and the sentence for %s", i+1, lines[i], name)
		}
	}
}

// A misspelt REKEY_ setting is named on stderr, with the one meant, by any
// command: otherwise it would be ignored without a word.
func TestMisspeltSettingIsNamed(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	env := c.env()
	env.names = []string{"PATH", "REDIS_URL", "REKEY_GRACEE"}
	if err := runCommand(context.Background(), env, "revocations", "dead"); err != nil {
		t.Fatal(err)
	}
	if got := c.stderr.String(); !strings.Contains(got, "unknown_setting") ||
		!strings.Contains(got, "REKEY_GRACEE is not a setting rekey reads; it is ignored (did you mean REKEY_GRACE?)") {
		t.Errorf("stderr = %q; want the misspelt setting named", got)
	}
}
