package receiver

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestREADMENamesEveryRule keeps the README's tables in step with the receiver: every rule it
// declares (found in its source, so a new one cannot be left out) has a table row that names
// it with the status it is answered with.
func TestREADMENamesEveryRule(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "|") {
			rows = append(rows, line)
		}
	}
	rules := declaredRules(t)
	if len(rules) < 8 {
		t.Fatalf("found only %d rules in the source: %v", len(rules), rules)
	}
	for _, r := range rules {
		found := false
		for _, row := range rows {
			code := strconv.Itoa(r.status())
			// The status is written as "| 413 `too_large`" (the Answers table) or
			// "| `too_large` (413)" (the rules table).
			if strings.Contains(row, "`"+string(r)+"`") && (strings.HasPrefix(row, "| "+code+" ") || strings.Contains(row, "`"+string(r)+"` ("+code+")")) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("README has no table row naming rule `%s` with its status %d", r, r.status())
		}
	}
}

// declaredRules returns the constants of type rule in the package's source.
func declaredRules(t *testing.T) []rule {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var rules []rule
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "rule" {
					continue
				}
				for _, v := range vs.Values {
					lit, ok := v.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s: a rule constant that is not a string literal", name)
					}
					s, _ := strconv.Unquote(lit.Value)
					rules = append(rules, rule(s))
				}
			}
		}
	}
	return rules
}
