package store

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"
)

// Every script the package declares is in namedScripts, under a name of
// its own, and no two have one hash: a new script left out would show in
// the benchmarks' attribution as a hash nobody can read.
func TestEveryScriptIsNamed(t *testing.T) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, e.Name(), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				v := spec.(*ast.ValueSpec)
				for i, name := range v.Names {
					if i < len(v.Values) && isScriptCall(v.Values[i]) {
						declared[name.Name] = true
					}
				}
			}
		}
	}
	if len(declared) < 40 {
		t.Fatalf("found %d script declarations; the parse missed some", len(declared))
	}
	byVar := map[string]bool{}
	for name, s := range namedScripts {
		if s == nil {
			t.Errorf("script %q is nil", name)
		}
		byVar[name+"Script"] = true
	}
	for v := range declared {
		if !byVar[v] {
			t.Errorf("%s is not in namedScripts", v)
		}
	}
	if got := ScriptNames(); len(got) != len(namedScripts) {
		t.Errorf("%d hashes for %d scripts: two scripts share one", len(got), len(namedScripts))
	}
}

// isScriptCall reports whether e is redis.NewScript(...) or eventScript(...).
func isScriptCall(e ast.Expr) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	switch fn := call.Fun.(type) {
	case *ast.SelectorExpr:
		return fn.Sel.Name == "NewScript"
	case *ast.Ident:
		return fn.Name == "eventScript"
	}
	return false
}
