package retry_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The retry contract lives here so that no package under internal/ depends
// on the handlers: packages agree through typed values, not by importing
// (or parsing the errors of) the code that runs the tasks. Only cmd/rekey
// wires the handlers in. Test files may still use them to assemble a
// worker as cmd/rekey does.
func TestNoInternalPackageImportsHandlers(t *testing.T) {
	t.Parallel()
	const handlers = "github.com/rekeyhq/rekey/handlers"
	out, err := exec.Command("go", "list", "-deps=false", "-f", "{{.ImportPath}} {{join .Deps \" \"}}",
		"github.com/rekeyhq/rekey/internal/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	pkgs := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, deps, _ := strings.Cut(line, " ")
		pkgs++
		for _, d := range strings.Fields(deps) {
			if d == handlers {
				t.Errorf("%s depends on %s; use internal/retry (or an interface) instead", pkg, handlers)
			}
		}
	}
	if pkgs < 10 {
		t.Fatalf("go list found %d internal packages; the check looked at nothing", pkgs)
	}
}

// The retry contract's own package stays a leaf: asynq and the standard
// library only.
func TestRetryIsALeaf(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-f", "{{join .Imports \" \"}}", "github.com/rekeyhq/rekey/internal/retry").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, imp := range strings.Fields(string(out)) {
		if strings.Contains(imp, ".") && imp != "github.com/hibiken/asynq" {
			t.Errorf("internal/retry imports %s; it must stay a leaf", imp)
		}
	}
}
