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
