package store

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// vocabulary is every word vocabulary.go declares, by what it names. A word
// a script writes or compares must be one of these.
var vocabulary = map[string][]string{
	"state": {RotationRequested, RotationMinted, RotationPromoted, RotationFailed, RotationCancelled,
		CredentialPending, CredentialCurrent, CredentialPrevious, CredentialRevoked, CredentialDiscarded,
		CredentialUnconfirmed},
	"event type": {EventRegistered, EventDeprovisioned, EventRequested, EventJoined, EventCancelled,
		EventRefused, EventMinted, EventPushed, EventPromoted, EventRevokeScheduled, EventRevokeExpedited,
		EventRevoked, EventRevokeFailed, EventRevocationDead, EventRevocationRetried, EventFailed,
		EventDiscarded, EventPushUnknown, EventRetrying, EventScheduled, EventDeferred,
		EventScheduleChanged, EventQuarantined, EventUnquarantined, EventExpiring, EventRevocationHeld,
		EventHoldRechecked, EventHoldReleased, EventHoldCapped},
}

// TestScriptsUseTheVocabulary reads the Lua of every script of the package
// (the raw string literals of its package-level declarations) and fails,
// naming the declaration and the word, for each event type or state the
// Lua writes or compares that vocabulary.go does not declare.
func TestScriptsUseTheVocabulary(t *testing.T) {
	sources := luaSources(t, ".")
	if len(sources) < 20 {
		t.Fatalf("found %d Lua sources; the parser misses the scripts", len(sources))
	}
	checked := 0
	for _, name := range sortedKeys(sources) {
		for _, w := range scriptWords(sources[name]) {
			checked++
			if !declared(w.kind, w.word) {
				t.Errorf("%s: %s %q is not declared in vocabulary.go", name, w.kind, w.word)
			}
		}
	}
	t.Logf("checked %d words in %d sources", checked, len(sources))
	if checked < 50 {
		t.Fatalf("checked only %d words; the patterns miss the scripts' words", checked)
	}
}

// TestScriptWordsFindsEveryForm proves each pattern on a planted word.
func TestScriptWordsFindsEveryForm(t *testing.T) {
	for _, src := range []string{
		`emit(KEYS[4], KEYS[5], ARGV[8], ARGV[9], ARGV[2], 'promotd', ARGV[1], '', get(KEYS[1], 'x'), ARGV[3])`,
		`redis.call('HSET', KEYS[2], 'id', ARGV[1], 'state', 'promotd', 'at', get(KEYS[1], 'y'))`,
		"if st == 'promotd' then return end",
		"if st ~= 'promotd' then return end",
		"if get(KEYS[8] .. id, 'state') == 'promotd' then return end",
	} {
		words := scriptWords(src)
		if len(words) != 1 || words[0].word != "promotd" || declared(words[0].kind, words[0].word) {
			t.Errorf("scriptWords(%s) = %+v, want the undeclared word promotd", src, words)
		}
	}
}

func declared(kind, word string) bool {
	for _, w := range vocabulary[kind] {
		if w == word {
			return true
		}
	}
	return false
}

// luaSources returns the raw string literals of the package-level
// declarations in dir's non-test Go files, joined per declared name.
func luaSources(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, s := range gd.Specs {
				if vs, ok := s.(*ast.ValueSpec); ok {
					addRawStrings(out, vs)
				}
			}
		}
	}
	return out
}

func addRawStrings(out map[string]string, vs *ast.ValueSpec) {
	for i, v := range vs.Values {
		ast.Inspect(v, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING && strings.HasPrefix(lit.Value, "`") {
				out[vs.Names[i].Name] += strings.Trim(lit.Value, "`") + "\n"
			}
			return true
		})
	}
}

// word is one literal a script writes or compares, and what it names.
type word struct{ kind, word string }

var (
	// stateCompare: st == 'X', st ~= 'X', get(..., 'state') == 'X'; not
	// st == '', which means the hash has no state (it does not exist).
	stateCompare = regexp.MustCompile(`(?:\bst|get\([^()]*'state'\))\s*[=~]=\s*'([^']+)'`)
	// callStart: the start of a call whose arguments are read one by one.
	callStart = regexp.MustCompile(`\bemit\(|redis\.call\('HSET',`)
	quoted    = regexp.MustCompile(`^'([^']*)'$`)
)

// scriptWords returns the states and event types src writes or compares:
// the kind argument of emit (the sixth), the value of 'state' in an HSET,
// and the literal a state is compared with.
func scriptWords(src string) []word {
	var out []word
	for _, m := range stateCompare.FindAllStringSubmatch(src, -1) {
		out = append(out, word{"state", m[1]})
	}
	for _, loc := range callStart.FindAllStringIndex(src, -1) {
		call := src[loc[0]:loc[1]]
		args := callArgs(src[loc[1]:])
		if strings.HasPrefix(call, "emit") {
			if len(args) == 10 {
				out = appendLiteral(out, "event type", args[5])
			}
			continue
		}
		for i := 1; i+1 < len(args); i += 2 { // args[0] is the key
			if args[i] == "'state'" {
				out = appendLiteral(out, "state", args[i+1])
			}
		}
	}
	return out
}

// appendLiteral adds arg when it is a quoted literal; a variable (the
// function's own parameter, or ARGV chosen by Go code) is not checked here.
func appendLiteral(out []word, kind, arg string) []word {
	if m := quoted.FindStringSubmatch(arg); m != nil {
		out = append(out, word{kind, m[1]})
	}
	return out
}

// callArgs splits the arguments of the call whose text starts at s, just
// after its opening parenthesis, at the commas outside nested calls and
// quotes.
func callArgs(s string) []string {
	var args []string
	depth, quote, start := 0, byte(0), 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '(' || c == '{':
			depth++
		case (c == ')' || c == '}') && depth > 0:
			depth--
		case c == ')':
			return append(args, strings.TrimSpace(s[start:i]))
		case c == ',' && depth == 0:
			args = append(args, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	return args
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
