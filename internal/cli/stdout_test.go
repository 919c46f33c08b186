package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoCommandWritesStdoutByHand is the lint rule of design.md ("commands
// never format by hand"): no command calls fmt.Fprint*, io.WriteString or a
// Write method on stdout (an expression ending in .Out, or os.Stdout).
// Stdout is handed to internal/output's printers, and only they write it.
func TestNoCommandWritesStdoutByHand(t *testing.T) {
	var found []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") ||
			strings.Contains(path, "cmdtest") || strings.HasPrefix(path, "gen") {
			return err
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			name := exprText(call.Fun)
			writes := strings.HasPrefix(name, "fmt.Fprint") || name == "io.WriteString"
			if !writes {
				return true
			}
			if target := exprText(call.Args[0]); strings.HasSuffix(target, ".Out") || target == "os.Stdout" {
				found = append(found, fset.Position(call.Pos()).String()+": "+name+"("+target+", ...)")
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("stdout written by hand (print through internal/output): %s", f)
	}
}

// exprText is a selector chain as written (a.b.c), "" for other expressions.
func exprText(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		if p := exprText(x.X); p != "" {
			return p + "." + x.Sel.Name
		}
	}
	return ""
}
