package handlers_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/handlers"
)

// TestOutcomeListsAreComplete reads the constants outcome.go declares and
// fails on one that Outcomes or RevocationOutcomes leaves out: metrics
// exports the outcomes they list at 0 from the start, so an alert on
// increase(rekey_rotations_total{outcome="..."}[15m]) sees the first one.
func TestOutcomeListsAreComplete(t *testing.T) {
	declared := outcomeConstants(t)
	for _, tc := range []struct {
		prefix string
		list   []string
	}{
		{"Outcome", handlers.Outcomes()},
		{"Revocation", handlers.RevocationOutcomes()},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			want := declared[tc.prefix]
			if len(want) == 0 {
				t.Fatalf("outcome.go declares no %s constant; the parser misses them", tc.prefix)
			}
			slices.Sort(want)
			if got := slices.Sorted(slices.Values(tc.list)); !slices.Equal(got, want) {
				t.Errorf("the %s list is %q; outcome.go declares %q", tc.prefix, got, want)
			}
		})
	}
}

// outcomeConstants returns the values of outcome.go's string constants, by
// the prefix of their names ("Outcome", "Revocation").
func outcomeConstants(t *testing.T) map[string][]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "outcome.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, s := range gd.Specs {
			vs := s.(*ast.ValueSpec)
			for i, name := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				v, _ := strconv.Unquote(lit.Value)
				for _, prefix := range []string{"Outcome", "Revocation"} {
					if strings.HasPrefix(name.Name, prefix) {
						out[prefix] = append(out[prefix], v)
					}
				}
			}
		}
	}
	return out
}
