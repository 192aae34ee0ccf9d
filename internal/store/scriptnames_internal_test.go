package store

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
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
	pairs := map[string]string{} // namedScripts as written: name -> variable
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
					if name.Name == "namedScripts" && i < len(v.Values) {
						literalPairs(t, v.Values[i], pairs)
					}
				}
			}
		}
	}
	if len(declared) < 40 {
		t.Fatalf("found %d script declarations; the parse missed some", len(declared))
	}
	// A script built any other way (inside a function, by another helper)
	// is not found here: the package's scripts are package-level variables
	// built by redis.NewScript or eventScript.
	if len(pairs) != len(namedScripts) {
		t.Fatalf("read %d entries of namedScripts from its source, it has %d", len(pairs), len(namedScripts))
	}
	for name, v := range pairs {
		if v != name+"Script" {
			t.Errorf("namedScripts names %s %q", v, name)
		}
		if !declared[v] {
			t.Errorf("namedScripts holds %s, which is no script of the package", v)
		}
	}
	for v := range declared {
		if pairs[strings.TrimSuffix(v, "Script")] != v {
			t.Errorf("%s is not in namedScripts", v)
		}
	}
	if got := ScriptNames(); len(got) != len(namedScripts) {
		t.Errorf("%d hashes for %d scripts: two scripts share one", len(got), len(namedScripts))
	}
}

// literalPairs reads the map literal e, "name": variable, into pairs.
func literalPairs(t *testing.T, e ast.Expr, pairs map[string]string) {
	t.Helper()
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		t.Fatalf("namedScripts is not a map literal")
	}
	for _, el := range lit.Elts {
		kv := el.(*ast.KeyValueExpr)
		k, ok1 := kv.Key.(*ast.BasicLit)
		v, ok2 := kv.Value.(*ast.Ident)
		name, err := strconv.Unquote(k.Value)
		if !ok1 || !ok2 || err != nil {
			t.Fatalf("namedScripts entry %v: want \"name\": nameScript", kv)
		}
		pairs[name] = v.Name
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
