// Command inspector reads one %%go cell body on stdin and prints, as JSON,
// what the cell holds: its imports, its top-level declarations (names, kinds,
// source text, the package names they use) or, for a cell of statements, the
// statement block. It also rewrites every `go` statement so that a panic in a
// goroutine the user starts is recovered instead of ending the process.
//
// Line numbers in the output count the cell body's first line as line 1.
// Standard library only: cells must build without network access.
package main

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"io"
	"os"
	"sort"
	"strings"
)

type position struct {
	Line int `json:"line"`
	Col  int `json:"col"`
}

type importInfo struct {
	position
	Name string `json:"name"` // explicit name, "" when none
	Path string `json:"path"`
	// Preamble is cgo's preamble of `import "C"` (the comment directly above it,
	// markers removed as cgo removes them); PreambleLine is the line it starts on.
	Preamble     string `json:"preamble,omitempty"`
	PreambleLine int    `json:"preamble_line,omitempty"`
}

type typeSpec struct {
	Name    string `json:"name"`
	Generic bool   `json:"generic"`
	Alias   bool   `json:"alias"`
	// Constraint: an interface usable only as a type constraint (unions, ~T,
	// comparable); it is no type a value can have, so it is never registered.
	Constraint bool `json:"constraint,omitempty"`
}

type fastSig struct {
	In  []string `json:"in"`
	Out string   `json:"out"` // "" for no result
}

type declInfo struct {
	position
	Names []string `json:"names"`
	Kind  string   `json:"kind"` // func, method, type, const, var
	Text  string   `json:"text"`
	Uses  []string `json:"uses"`
	// Refs: the package-level names the declaration refers to (its own cell's
	// or another cell's; predeclared names too): which declarations use which.
	Refs     []string   `json:"refs"`
	Doc      string     `json:"doc,omitempty"` // the comment above it, as go/doc reads it
	Params   []string   `json:"params,omitempty"`
	Variadic bool       `json:"variadic,omitempty"`
	Generic  bool       `json:"generic,omitempty"`
	Fast     *fastSig   `json:"fast,omitempty"`
	Types    []typeSpec `json:"types,omitempty"`
	// Spawns: the declaration holds a go statement (in a func literal too).
	Spawns bool `json:"spawns,omitempty"`
	// Waits: it may wait for another goroutine (see waitsFor).
	Waits bool `json:"waits,omitempty"`
}

type bodyInfo struct {
	position
	Text   string   `json:"text"`
	Uses   []string `json:"uses"`
	Refs   []string `json:"refs"` // package-level names the statements refer to
	Spawns bool     `json:"spawns,omitempty"`
	Waits  bool     `json:"waits,omitempty"`
}

type errorInfo struct {
	position
	Msg string `json:"msg"`
}

type result struct {
	Mode    string       `json:"mode"` // "decls", "stmts" or "error"
	Imports []importInfo `json:"imports"`
	Decls   []declInfo   `json:"decls"`
	Body    *bodyInfo    `json:"body,omitempty"`
	Errors  []errorInfo  `json:"errors,omitempty"`
}

const (
	filePrefix = "package main\n"
	stmtPrefix = "package main\nfunc _() {\n"
)

func main() {
	src, err := io.ReadAll(os.Stdin)
	if err != nil {
		os.Exit(2)
	}
	out := inspect(string(src))
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		os.Exit(2)
	}
}

func inspect(body string) result {
	fset := token.NewFileSet()
	file, declErr := parser.ParseFile(fset, "cell.go", filePrefix+body, parser.ParseComments)
	if declErr == nil {
		return declarations(fset, file, filePrefix+body)
	}
	stmtRes, stmtErr := statements(body)
	if stmtErr == nil {
		return stmtRes
	}
	// Report whichever reading of the cell got further before failing.
	de, se := errorsOf(declErr, 1), errorsOf(stmtErr, 2)
	if len(se) > 0 && len(de) > 0 && later(se[0], de[0]) {
		return result{Mode: "error", Errors: se}
	}
	return result{Mode: "error", Errors: de}
}

func later(a, b errorInfo) bool {
	return a.Line > b.Line || (a.Line == b.Line && a.Col > b.Col)
}

func errorsOf(err error, prefixLines int) []errorInfo {
	var out []errorInfo
	if list, ok := err.(scanner.ErrorList); ok {
		for _, e := range list {
			out = append(out, errorInfo{position{e.Pos.Line - prefixLines, e.Pos.Column}, e.Msg})
		}
	} else {
		out = append(out, errorInfo{position{0, 0}, err.Error()})
	}
	return out
}

func declarations(fset *token.FileSet, file *ast.File, src string) result {
	res := result{Mode: "decls", Imports: []importInfo{}, Decls: []declInfo{}}
	res.Imports = importsOf(fset, file)
	constraints = constraintNames(file)
	top := topLevelObjects(file)
	for _, decl := range file.Decls {
		if gd, ok := decl.(*ast.GenDecl); ok && gd.Tok == token.IMPORT {
			continue
		}
		info := describe(fset, decl, src)
		info.Refs = packageRefs(decl, top)
		res.Decls = append(res.Decls, info)
	}
	return res
}

func importsOf(fset *token.FileSet, file *ast.File) []importInfo {
	out := []importInfo{}
	for _, decl := range file.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.IMPORT {
			continue
		}
		for _, s := range gen.Specs {
			spec := s.(*ast.ImportSpec)
			p := fset.Position(spec.Pos())
			info := importInfo{position: position{p.Line - 1, p.Column}, Path: strings.Trim(spec.Path.Value, "\"`")}
			if spec.Name != nil {
				info.Name = spec.Name.Name
			}
			doc := spec.Doc
			if doc == nil && !gen.Lparen.IsValid() {
				doc = gen.Doc
			}
			if info.Path == "C" && doc != nil {
				info.Preamble = cgoPreamble(doc)
				info.PreambleLine = fset.Position(doc.Pos()).Line - 1
			}
			out = append(out, info)
		}
	}
	return out
}

// cgoPreamble is a comment's text as cgo reads it: markers removed, line
// breaks kept (so line n of the text is line n of the comment).
func cgoPreamble(doc *ast.CommentGroup) string {
	var text strings.Builder
	for _, c := range doc.List {
		if strings.HasPrefix(c.Text, "//") {
			text.WriteString(c.Text[2:] + "\n")
		} else {
			text.WriteString(c.Text[2:len(c.Text)-2] + "\n")
		}
	}
	return text.String()
}

func describe(fset *token.FileSet, decl ast.Decl, src string) declInfo {
	start := decl.Pos()
	var info declInfo
	switch d := decl.(type) {
	case *ast.FuncDecl:
		if d.Doc != nil {
			start = d.Doc.Pos()
			info.Doc = d.Doc.Text()
		}
		info.Kind = "func"
		name := d.Name.Name
		if d.Recv != nil && len(d.Recv.List) > 0 {
			info.Kind = "method"
			name = receiverName(d.Recv.List[0].Type) + "." + name
		}
		info.Names = []string{name}
		info.Generic = d.Type.TypeParams != nil && len(d.Type.TypeParams.List) > 0
		for _, field := range d.Type.Params.List {
			if _, ok := field.Type.(*ast.Ellipsis); ok {
				info.Variadic = true
			}
			if len(field.Names) == 0 {
				info.Params = append(info.Params, "")
			}
			for _, n := range field.Names {
				info.Params = append(info.Params, n.Name)
			}
		}
		if info.Kind == "func" && !info.Generic && !info.Variadic {
			info.Fast = fastSignature(d.Type)
		}
	case *ast.GenDecl:
		if d.Doc != nil {
			start = d.Doc.Pos()
			info.Doc = d.Doc.Text()
		}
		info.Kind = d.Tok.String()
		for _, spec := range d.Specs {
			switch s := spec.(type) {
			case *ast.TypeSpec:
				info.Names = append(info.Names, s.Name.Name)
				info.Types = append(info.Types, typeSpec{
					Name:       s.Name.Name,
					Generic:    s.TypeParams != nil && len(s.TypeParams.List) > 0,
					Alias:      s.Assign.IsValid(),
					Constraint: constraints[s.Name.Name],
				})
			case *ast.ValueSpec:
				for _, n := range s.Names {
					info.Names = append(info.Names, n.Name)
				}
			}
		}
	}
	p := fset.Position(start)
	info.position = position{p.Line - 1, p.Column}
	from, to := fset.Position(start).Offset, fset.Position(decl.End()).Offset
	info.Text = rewriteGoStatements(fset, decl, src, from, to)
	info.Uses = selectorRoots(decl)
	info.Spawns = hasGoStatement(decl)
	info.Waits = waitsFor(decl)
	return info
}

func receiverName(expr ast.Expr) string {
	for {
		switch e := expr.(type) {
		case *ast.StarExpr:
			expr = e.X
		case *ast.IndexExpr:
			expr = e.X
		case *ast.IndexListExpr:
			expr = e.X
		case *ast.ParenExpr:
			expr = e.X
		case *ast.Ident:
			return e.Name
		default:
			return "?"
		}
	}
}

var scalarTypes = map[string]bool{
	"bool": true, "int": true, "int8": true, "int16": true, "int32": true, "int64": true,
	"uint": true, "uint8": true, "uint16": true, "uint32": true, "uint64": true, "uintptr": true,
	"float32": true, "float64": true, "byte": true, "rune": true,
}

// fastSignature is set when every parameter and the (at most one) result is a
// predeclared scalar: such a function gets a direct C entry point.
func fastSignature(ft *ast.FuncType) *fastSig {
	sig := &fastSig{In: []string{}}
	for _, field := range ft.Params.List {
		id, ok := field.Type.(*ast.Ident)
		if !ok || !scalarTypes[id.Name] {
			return nil
		}
		n := len(field.Names)
		if n == 0 {
			n = 1
		}
		for i := 0; i < n; i++ {
			sig.In = append(sig.In, id.Name)
		}
	}
	if ft.Results != nil {
		if len(ft.Results.List) != 1 || len(ft.Results.List[0].Names) > 1 {
			return nil
		}
		id, ok := ft.Results.List[0].Type.(*ast.Ident)
		if !ok || !scalarTypes[id.Name] {
			return nil
		}
		sig.Out = id.Name
	}
	return sig
}

// topLevelObjects are the objects the cell declares at package level.
func topLevelObjects(file *ast.File) map[*ast.Object]bool {
	top := map[*ast.Object]bool{}
	for _, obj := range file.Scope.Objects {
		top[obj] = true
	}
	return top
}

// packageRefs lists the names a declaration refers to at package level:
// identifiers that go/parser resolved to a top-level object of this cell, or
// could not resolve in the cell (another cell's names, predeclared names and
// package names). Locals, fields, selectors (x.Sel) and the keys of struct
// literals are not references.
func packageRefs(decl ast.Node, top map[*ast.Object]bool) []string {
	declaring := map[*ast.Ident]bool{}
	skip := map[*ast.Ident]bool{}
	switch d := decl.(type) {
	case *ast.FuncDecl:
		declaring[d.Name] = true
	case *ast.GenDecl:
		for _, spec := range d.Specs {
			switch s := spec.(type) {
			case *ast.TypeSpec:
				declaring[s.Name] = true
			case *ast.ValueSpec:
				for _, n := range s.Names {
					declaring[n] = true
				}
			}
		}
	}
	seen := map[string]bool{}
	ast.Inspect(decl, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.SelectorExpr:
			skip[x.Sel] = true
		case *ast.CompositeLit:
			if _, isMap := x.Type.(*ast.MapType); !isMap {
				for _, elt := range x.Elts {
					if kv, ok := elt.(*ast.KeyValueExpr); ok {
						if id, ok := kv.Key.(*ast.Ident); ok {
							skip[id] = true
						}
					}
				}
			}
		case *ast.Ident:
			if !declaring[x] && !skip[x] && x.Name != "_" && (x.Obj == nil || top[x.Obj]) {
				seen[x.Name] = true
			}
		}
		return true
	})
	return sortedNames(seen)
}

// selectorRoots lists the identifiers used as X in X.Sel: the package names a
// declaration may refer to (used to drop imports nothing refers to any more).
func selectorRoots(node ast.Node) []string {
	seen := map[string]bool{}
	ast.Inspect(node, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok {
				seen[id.Name] = true
			}
		}
		return true
	})
	return sortedNames(seen)
}

func statements(body string) (result, error) {
	res := result{Mode: "stmts", Imports: []importInfo{}, Decls: []declInfo{}}
	// Leading imports are allowed in a statement cell; blank them out (keeping
	// line breaks, so positions stay true) before reading the rest as a body.
	fset := token.NewFileSet()
	head, err := parser.ParseFile(fset, "cell.go", filePrefix+body, parser.ImportsOnly|parser.ParseComments)
	rest := body
	if err == nil && len(head.Imports) > 0 {
		res.Imports = importsOf(fset, head)
		end := fset.Position(head.Decls[len(head.Decls)-1].End()).Offset - len(filePrefix)
		rest = blank(body[:end]) + body[end:]
	}
	src := stmtPrefix + rest + "\n}\n"
	fset = token.NewFileSet()
	file, err := parser.ParseFile(fset, "cell.go", src, 0)
	if err != nil {
		return res, err
	}
	fn := file.Decls[0].(*ast.FuncDecl)
	from := len(stmtPrefix)
	to := len(stmtPrefix) + len(rest)
	res.Body = &bodyInfo{
		position: position{1, 1},
		Text:     rewriteGoStatements(fset, fn.Body, src, from, to),
		Uses:     selectorRoots(fn.Body),
		Refs:     packageRefs(fn.Body, map[*ast.Object]bool{}),
		Spawns:   hasGoStatement(fn.Body),
		Waits:    waitsFor(fn.Body),
	}
	return res, nil
}

func blank(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == '\n' {
			b.WriteRune(r)
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

type edit struct {
	from, to int
	text     string
}

func hasGoStatement(node ast.Node) bool {
	found := false
	ast.Inspect(node, func(n ast.Node) bool {
		if _, ok := n.(*ast.GoStmt); ok {
			found = true
		}
		return !found
	})
	return found
}

// waitsFor: the code may wait for another goroutine: a channel send or
// receive, a select, or a call of a method named Wait, Lock or RLock (as
// sync's WaitGroup, Cond, Mutex and RWMutex have). Without types a range over
// a channel cannot be told from one over a slice: it is not counted.
func waitsFor(node ast.Node) bool {
	found := false
	ast.Inspect(node, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.SendStmt, *ast.SelectStmt:
			found = true
		case *ast.UnaryExpr:
			found = x.Op == token.ARROW
		case *ast.CallExpr:
			if sel, ok := x.Fun.(*ast.SelectorExpr); ok {
				switch sel.Sel.Name {
				case "Wait", "Lock", "RLock":
					found = true
				}
			}
		}
		return !found
	})
	return found
}

// rewriteGoStatements returns src[from:to] with each `go f(args)` turned into
// `go ipolyglotrt.Go().Run(func() { f(args) })`: a goroutine the bridge counts
// while it runs and whose panic it recovers (ipgrt's supervise.go). Calls among
// the arguments are evaluated before the goroutine starts, as Go does; the
// rewrite stays on the statement's own lines so positions remain true.
func rewriteGoStatements(fset *token.FileSet, node ast.Node, src string, from, to int) string {
	var edits []edit
	ast.Inspect(node, func(n ast.Node) bool {
		gs, ok := n.(*ast.GoStmt)
		if !ok {
			return true
		}
		call := gs.Call
		var hoist []string
		var names []string
		raw := func(e ast.Node) string {
			return src[fset.Position(e.Pos()).Offset:fset.Position(e.End()).Offset]
		}
		text := func(e ast.Node) string { // nested go statements are rewritten too
			return rewriteGoStatements(fset, e, src, fset.Position(e.Pos()).Offset, fset.Position(e.End()).Offset)
		}
		fun := text(call.Fun)
		if containsCall(call.Fun) {
			hoist = append(hoist, fun)
			names = append(names, "ipgGoFn")
			fun = "ipgGoFn"
		}
		var args []string
		for i, a := range call.Args {
			if containsCall(a) {
				name := "ipgGoArg" + string(rune('0'+i%10))
				if i >= 10 {
					name += string(rune('a' + i/10))
				}
				hoist = append(hoist, text(a))
				names = append(names, name)
				args = append(args, name)
			} else {
				args = append(args, text(a))
			}
		}
		callText := fun + "(" + strings.Join(args, ", ")
		if call.Ellipsis.IsValid() {
			callText += "..."
		}
		callText += ")"
		// Keep the original line breaks inside the call so later lines keep their numbers.
		lines := strings.Count(raw(gs), "\n")
		var b strings.Builder
		if len(hoist) > 0 {
			b.WriteString("{ " + strings.Join(names, ", ") + " := " + strings.Join(hoist, ", ") + "; ")
		}
		b.WriteString("go ipolyglotrt.Go().Run(func() { " + callText + " })")
		if len(hoist) > 0 {
			b.WriteString(" }")
		}
		out := b.String()
		if extra := lines - strings.Count(out, "\n"); extra > 0 {
			out += strings.Repeat("\n", extra)
		}
		edits = append(edits, edit{fset.Position(gs.Pos()).Offset, fset.Position(gs.End()).Offset, out})
		return true
	})
	sort.Slice(edits, func(i, j int) bool { return edits[i].from < edits[j].from })
	var buf bytes.Buffer
	pos := from
	for _, e := range edits {
		if e.from < pos { // nested go statements: the outer rewrite already covers it
			continue
		}
		buf.WriteString(src[pos:e.from])
		buf.WriteString(e.text)
		pos = e.to
	}
	buf.WriteString(src[pos:to])
	return buf.String()
}

func containsCall(e ast.Expr) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		switch n.(type) {
		case *ast.CallExpr:
			found = true
		case *ast.UnaryExpr:
			if n.(*ast.UnaryExpr).Op == token.ARROW {
				found = true
			}
		case *ast.FuncLit:
			return false
		}
		return !found
	})
	return found
}

// constraints holds the cell's constraint-only interface names while it is described.
var constraints map[string]bool

// constraintNames finds the interfaces of a cell that are constraints only: those
// with a union, a ~T term or comparable, or embedding another such interface.
func constraintNames(file *ast.File) map[string]bool {
	found := map[string]bool{}
	ifaces := map[string]*ast.InterfaceType{}
	for _, decl := range file.Decls {
		if gd, ok := decl.(*ast.GenDecl); ok && gd.Tok == token.TYPE {
			for _, spec := range gd.Specs {
				if ts, ok := spec.(*ast.TypeSpec); ok {
					if it, ok := ts.Type.(*ast.InterfaceType); ok {
						ifaces[ts.Name.Name] = it
					}
				}
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for name, it := range ifaces {
			if !found[name] && isConstraint(it, found) {
				found[name] = true
				changed = true
			}
		}
	}
	return found
}

func isConstraint(it *ast.InterfaceType, known map[string]bool) bool {
	for _, field := range it.Methods.List {
		if len(field.Names) > 0 {
			continue
		}
		switch t := field.Type.(type) {
		case *ast.BinaryExpr, *ast.UnaryExpr:
			return true
		case *ast.Ident:
			if t.Name == "comparable" || known[t.Name] {
				return true
			}
		case *ast.InterfaceType:
			if isConstraint(t, known) {
				return true
			}
		}
	}
	return false
}

// sortedNames lists a set's names in order (the inspector's output is stable).
func sortedNames(set map[string]bool) []string {
	out := []string{}
	for name := range set {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
