// Package ipgrt is the Go half of ipolyglot's Go bridge: the registry of a
// library's functions and types, the one generic copy-only entry point
// (ipg_call: bytes in, bytes out), panic recovery, and calls back into Python.
// It uses only the standard library so cells build without network access.
package ipgrt

/*
#include <stdlib.h>
#include "bridge.h"
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Func is one exported function of the session, as the generated glue registers it.
type Func struct {
	Name   string
	Params []string // parameter names as written (blank when unnamed)
	Fn     any
	// Spawns: the function may start a goroutine (a go statement in its cell
	// code or in cell code it refers to): its calls are supervised (supervise.go).
	Spawns bool
	// Waits: it may wait for a goroutine (a channel operation, a select, a
	// Wait or Lock call): supervised while goroutines started by cells run.
	Waits bool
}

// Type is one exported named type of the session. Methods holds the
// parameter names of its methods as written (the methods themselves are
// found by reflection, so a method declared in any cell is included).
type Type struct {
	Name    string
	Type    reflect.Type
	Methods map[string][]string
	// Spawns, Waits: as Func's, for its methods.
	Spawns, Waits bool
}

// Var is one package-level variable (exported or not): Python reads it, and
// copies its value from one build's runtime into the next one's.
type Var struct {
	Name string
	Ptr  any
}

// Const is one exported package-level constant and its value.
type Const struct {
	Name  string
	Value any
}

type entry struct {
	Func
	v       reflect.Value
	t       reflect.Type
	recv    string // the struct type of a method ("" for a function)
	pointer bool   // a pointer-receiver method: the receiver is sent back after the call
	varName string // a variable's accessor: messages name the variable
	spawns  bool   // may start a goroutine: every call is supervised
	waits   bool   // may wait for a goroutine: supervised while cells' goroutines run
}

type varEntry struct {
	Var
	get, set int
	t        reflect.Type
	// A variable a rebuild cannot carry: its fingerprint when the runtime
	// started (fingerprint.go), so Python warns only when a reset loses something.
	fingerprinted bool
	initial       uint64
}

var (
	funcs   []entry
	types   []Type
	vars    []varEntry
	consts  []Const
	profile bool
)

// Register is called once, from the generated glue's init.
func Register(fs []Func, ts []Type, vs []Var, cs []Const, withProfile bool) {
	for _, f := range fs {
		v := reflect.ValueOf(f.Fn)
		funcs = append(funcs, entry{Func: f, v: v, t: v.Type(), spawns: f.Spawns, waits: f.Waits})
	}
	types = ts
	for _, ty := range ts {
		registerMethods(ty)
	}
	for _, v := range vs {
		ve := registerVar(v)
		if _, reset := carrying(ve.t); reset != "" {
			ve.fingerprinted = true
			ve.initial = fingerprintOf(reflect.ValueOf(v.Ptr).Elem())
		}
		vars = append(vars, ve)
	}
	consts = cs
	profile = withProfile
}

// registerMethods adds the exported methods of a struct type as entries
// whose first parameter is the receiver (T, or *T for pointer receivers).
func registerMethods(ty Type) {
	if ty.Type.Kind() != reflect.Struct {
		return
	}
	pt := reflect.PointerTo(ty.Type)
	for i := 0; i < pt.NumMethod(); i++ {
		m := pt.Method(i)
		fn, pointer := m.Func, true
		if vm, ok := ty.Type.MethodByName(m.Name); ok {
			fn, pointer = vm.Func, false
		}
		params := []string{"receiver"}
		if names, ok := ty.Methods[m.Name]; ok && len(names) == fn.Type().NumIn()-1 {
			params = append(params, names...)
		} else {
			for j := 1; j < fn.Type().NumIn(); j++ {
				params = append(params, "")
			}
		}
		funcs = append(funcs, entry{
			Func: Func{Name: ty.Name + "." + m.Name, Params: params},
			v:    fn, t: fn.Type(), recv: ty.Name, pointer: pointer, spawns: ty.Spawns, waits: ty.Waits,
		})
	}
}

// registerVar gives a variable a getter and a setter reachable through ipg_call.
func registerVar(v Var) varEntry {
	p := reflect.ValueOf(v.Ptr).Elem()
	t := p.Type()
	get := reflect.MakeFunc(reflect.FuncOf(nil, []reflect.Type{t}, false), func([]reflect.Value) []reflect.Value {
		return []reflect.Value{p}
	})
	set := reflect.MakeFunc(reflect.FuncOf([]reflect.Type{t}, nil, false), func(a []reflect.Value) []reflect.Value {
		p.Set(a[0])
		return nil
	})
	ve := varEntry{Var: v, get: len(funcs), set: len(funcs) + 1, t: t}
	funcs = append(funcs,
		entry{Func: Func{Name: v.Name + " (get)"}, v: get, t: get.Type(), varName: v.Name},
		entry{Func: Func{Name: v.Name + " (set)", Params: []string{"value"}}, v: set, t: set.Type(), varName: v.Name},
	)
	return ve
}

// ---- results in C memory -------------------------------------------------

// toC copies an encoded result into malloc'd memory that Python frees, and
// each owned chunk into a block of its own that Python's array then frees.
func toC(w *writer, out **C.char, outn *C.size_t) {
	for i := range w.chunks {
		if c := &w.chunks[i]; c.owned {
			c.address = uint64(uintptr(bulkToC(c.data)))
		}
	}
	n := w.size()
	p := C.malloc(C.size_t(n + 1))
	w.into(unsafe.Slice((*byte)(p), n))
	*out = (*C.char)(p)
	*outn = C.size_t(n)
}

// bulkToC copies a large slice into a fresh C block, advised to the kernel as
// huge pages as numpy's own large arrays are (a 4 KiB page fault per 4 KiB
// would cost more than the copy).
func bulkToC(data []byte) unsafe.Pointer {
	p := C.malloc(C.size_t(len(data)))
	C.ipg_advise_bulk(p, C.size_t(len(data)))
	copy(unsafe.Slice((*byte)(p), len(data)), data)
	return p
}

func statusResult(status byte, msg string) *writer {
	w := &writer{}
	w.byte(status)
	w.str(msg)
	return w
}

// ---- panics ----------------------------------------------------------------

// CallbackError is the panic raised in Go when a Python callable raised; the
// Python exception itself is re-raised once the panic reaches Python.
type CallbackError struct {
	ID  int64
	Msg string
}

func (e *CallbackError) Error() string { return "Python callback raised " + e.Msg }

func panicResult(p any, stack []byte) *writer {
	if ce, ok := p.(*CallbackError); ok {
		w := &writer{}
		w.byte(statusCallbackError)
		w.u64(uint64(ce.ID))
		w.str(ce.Msg)
		return w
	}
	if ce, ok := p.(*convError); ok { // a callback's result Go could not take: the TypeError a parameter's would be
		return statusResult(ce.status, ce.msg)
	}
	w := &writer{}
	w.byte(statusPanic)
	w.str(panicValue(p))
	w.str(cleanStack(string(stack)))
	return w
}

func panicValue(p any) string {
	if err, ok := p.(error); ok {
		return err.Error()
	}
	return fmt.Sprint(p)
}

// cellFunction is the package path of a cell compiled as a package of its own,
// as it prefixes a function in a stack trace.
var cellFunction = regexp.MustCompile(`^ipolyglot\.local/cell/ipgcell[0-9a-f]+\.`)

// cleanStack keeps the frames a user cares about: their own code (with cell
// line numbers) and the standard library, not the bridge or reflection.
func cleanStack(stack string) string {
	lines := strings.Split(strings.TrimRight(stack, "\n"), "\n")
	var kept []string
	for i := 1; i+1 < len(lines); i += 2 {
		fn, loc := lines[i], lines[i+1]
		if strings.HasPrefix(fn, "runtime/debug.") || strings.HasPrefix(fn, "panic(") ||
			strings.Contains(fn, "/ipgrt.") || strings.HasPrefix(fn, "ipgrt.") ||
			strings.HasPrefix(fn, "reflect.") || strings.HasPrefix(fn, "main._cgoexp") ||
			strings.HasPrefix(fn, "main.ipg") || strings.HasPrefix(fn, "runtime.") ||
			strings.HasPrefix(fn, "_cgoexp") {
			continue
		}
		if at := strings.LastIndex(loc, " +0x"); at > 0 {
			loc = loc[:at]
		}
		if rest, ok := strings.CutPrefix(fn, "created by "); ok {
			fn = "created by " + cellFunction.ReplaceAllString(strings.TrimPrefix(rest, "main."), "")
		}
		kept = append(kept, cellFunction.ReplaceAllString(strings.TrimPrefix(fn, "main."), ""), loc)
	}
	return strings.Join(kept, "\n")
}

// Recover is deferred by every scalar fast-path export: the panic is kept in
// a C thread-local of the calling thread, and Python raises it after the call.
func Recover() {
	if p := recover(); p != nil {
		storeThreadPanic(panicResult(p, debug.Stack()))
	}
}

func storeThreadPanic(w *writer) {
	var out *C.char
	var n C.size_t
	toC(w, &out, &n)
	C.ipg_set_thread_panic(out, n)
	atomic.AddInt32((*int32)(unsafe.Pointer(&C.ipg_pending)), 1)
}

var (
	goroutinePanicsMu sync.Mutex
	goroutinePanics   []*writer
)

// keepGoroutinePanic prints a panic of a cell's goroutine that no call was
// waiting for, and keeps it for Python to raise after its next call.
func keepGoroutinePanic(p any, stack []byte) {
	fmt.Fprintf(os.Stderr, "panic in a goroutine: %s\n%s\n", panicValue(p), labelCells(cleanStack(string(stack))))
	goroutinePanicsMu.Lock()
	goroutinePanics = append(goroutinePanics, panicResult(p, stack))
	goroutinePanicsMu.Unlock()
	atomic.AddInt32((*int32)(unsafe.Pointer(&C.ipg_pending)), 1)
}

// requeueGoroutinePanic keeps a delivered panic that its waiter did not report.
func requeueGoroutinePanic(w *writer) {
	goroutinePanicsMu.Lock()
	goroutinePanics = append(goroutinePanics, w)
	goroutinePanicsMu.Unlock()
	atomic.AddInt32((*int32)(unsafe.Pointer(&C.ipg_pending)), 1)
}

var (
	cellLabelsMu sync.Mutex
	cellLabels   *strings.Replacer // cell-<hash> -> In [n], as Python last told us
)

// ipg_set_cell_labels receives the session's cell labels as JSON ({"cell-…": "In [3]"}),
// so what Go prints itself names cells the way the notebook does.
//
//export ipg_set_cell_labels
func ipg_set_cell_labels(in *C.char, n C.size_t) {
	var labels map[string]string
	if json.Unmarshal(C.GoBytes(unsafe.Pointer(in), C.int(n)), &labels) != nil {
		return
	}
	var pairs []string
	for id, label := range labels {
		pairs = append(pairs, id, label)
	}
	cellLabelsMu.Lock()
	cellLabels = strings.NewReplacer(pairs...)
	cellLabelsMu.Unlock()
}

func labelCells(text string) string {
	cellLabelsMu.Lock()
	r := cellLabels
	cellLabelsMu.Unlock()
	if r == nil {
		return text
	}
	return r.Replace(text)
}

//export ipg_take_goroutine_panic
func ipg_take_goroutine_panic(out **C.char, outn *C.size_t) C.int {
	goroutinePanicsMu.Lock()
	defer goroutinePanicsMu.Unlock()
	if len(goroutinePanics) == 0 {
		return 0
	}
	w := goroutinePanics[0]
	goroutinePanics = goroutinePanics[1:]
	atomic.AddInt32((*int32)(unsafe.Pointer(&C.ipg_pending)), -1)
	toC(w, out, outn)
	return 1
}

//export ipg_thread_panic_taken
func ipg_thread_panic_taken() {
	atomic.AddInt32((*int32)(unsafe.Pointer(&C.ipg_pending)), -1)
}

// ---- the generic entry point ---------------------------------------------------

// ipg_call: with ownBulk, large numeric slices of the result come as C blocks
// of their own (tagArrayOwned) for Python's arrays to own; without, the
// result is self-contained (bytes that may go back into Go as arguments).
//
//export ipg_call
func ipg_call(id C.int, in *C.char, n C.size_t, ownBulk C.int, out **C.char, outn *C.size_t) {
	var input []byte
	if n > 0 {
		input = unsafe.Slice((*byte)(unsafe.Pointer(in)), int(n))
	}
	toC(Call(int(id), input, ownBulk != 0), out, outn)
}

// Call runs function `id` on encoded arguments and returns the encoded result.
// The arguments are decoded on the calling goroutine (they may point into the
// caller's memory, valid only during this C call); a supervised function then
// runs on a goroutine of its own (supervise.go), every other one right here.
func Call(id int, input []byte, ownBulk bool) (result *writer) {
	if id < 0 || id >= len(funcs) {
		return statusResult(statusValueError, fmt.Sprintf("no function with id %d in this library", id))
	}
	e := &funcs[id]
	c := &pendingCall{e: e, ownBulk: ownBulk}
	if failed := c.decode(input); failed != nil {
		return failed
	}
	if e.supervised() {
		return supervise(c.run)
	}
	return c.run()
}

// pendingCall is one call between decoding its arguments and encoding its results.
type pendingCall struct {
	e        *entry
	args     []reflect.Value
	started  time.Time
	decodeNs int64
	ownBulk  bool // the result's large numeric slices as blocks Python owns (writer.ownBulk)
}

func (c *pendingCall) decode(input []byte) (failed *writer) {
	e := c.e
	defer func() {
		if p := recover(); p != nil {
			if we, ok := p.(wireError); ok {
				failed = statusResult(statusValueError, "malformed call data: "+string(we))
				return
			}
			failed = panicResult(p, debug.Stack())
		}
	}()
	if profile {
		c.started = time.Now()
	}
	d := decoder{r: reader{buf: input}, calls: &callContext{}}
	nargs := int(d.r.u64())
	t := e.t
	if nargs != t.NumIn() {
		return statusResult(statusTypeError, fmt.Sprintf("%s takes %d arguments, got %d", callName(e), t.NumIn()-e.implicit(), nargs-e.implicit()))
	}
	c.args = make([]reflect.Value, nargs)
	for i := 0; i < nargs; i++ {
		v, err := d.value(t.In(i))
		if err != nil {
			return statusResult(err.status, fmt.Sprintf("%s (Go type %s): %s", paramLabel(e, i), TypeName(t.In(i)), err.msg))
		}
		c.args[i] = v
	}
	if profile {
		c.decodeNs = time.Since(c.started).Nanoseconds()
	}
	return nil
}

// run calls the function on the decoded arguments and encodes what it returned.
func (c *pendingCall) run() (result *writer) {
	e, t, args := c.e, c.e.t, c.args
	var nativeNs int64
	var started time.Time
	defer func() {
		if p := recover(); p != nil {
			result = panicResult(p, debug.Stack())
		}
	}()
	if profile {
		started = time.Now()
	}
	var results []reflect.Value
	if t.IsVariadic() {
		results = e.v.CallSlice(args)
	} else {
		results = e.v.Call(args)
	}
	if profile {
		nativeNs = time.Since(started).Nanoseconds()
		started = time.Now()
	}
	w := &writer{ownBulk: c.ownBulk}
	if k := len(results); k > 0 && t.Out(k-1) == errorType {
		if err := results[k-1]; !err.IsNil() {
			w := statusResult(statusGoError, err.Interface().(error).Error())
			w.ownBulk = c.ownBulk
			if e.pointer { // the receiver as the method left it, for the copy back
				w.value(args[0].Elem(), 0)
			}
			return w
		}
		results = results[:k-1]
	}
	if len(results) == 1 && receivable(t) { // Python gets a handle (channels.go)
		results[0] = reflect.ValueOf(channels.keep(results[0]))
	}
	w.byte(statusOK)
	if e.pointer {
		w.u64(uint64(len(results) + 1))
	} else {
		w.u64(uint64(len(results)))
	}
	for _, r := range results {
		w.value(r, 0)
	}
	if e.pointer {
		w.value(args[0].Elem(), 0)
	}
	if profile {
		w.u64(uint64(c.decodeNs))
		w.u64(uint64(nativeNs))
		w.u64(uint64(time.Since(started).Nanoseconds()))
	}
	return w
}

// implicit is 1 for a method (its receiver is not an argument the user passes).
func (e *entry) implicit() int {
	if e.recv != "" {
		return 1
	}
	return 0
}

func callName(e *entry) string {
	if e.varName != "" {
		return "Go var " + e.varName
	}
	return e.Name + "()"
}

func paramLabel(e *entry, i int) string {
	if e.varName != "" {
		return "Go var " + e.varName
	}
	if e.recv != "" && i == 0 {
		return e.Name + "() receiver"
	}
	return e.Name + "() parameter " + paramName(e, i)
}

func paramName(e *entry, i int) string {
	if i < len(e.Params) && e.Params[i] != "" && e.Params[i] != "_" {
		return e.Params[i]
	}
	return fmt.Sprintf("#%d", i+1-e.implicit())
}

// ---- calling Python back ----------------------------------------------------

type callContext struct{}

// pythonFunc makes a Go func of type t that calls the Python callable `handle`.
// cffi takes the GIL in the callback, so any goroutine may call it.
// The func value owns the handle (see handles.go): Python keeps the callable
// while Go can reach the func, whether or not the call that passed it returned.
func (c *callContext) pythonFunc(t reflect.Type, handle int64) reflect.Value {
	owner := adoptPython(handle, t)
	return reflect.MakeFunc(t, func(args []reflect.Value) []reflect.Value {
		handle := owner.id
		w := &writer{}
		w.u64(uint64(t.NumOut()))
		w.u64(uint64(len(args)))
		for _, a := range args {
			w.value(a, 0)
		}
		var in *C.char
		var inN C.size_t
		toC(w, &in, &inN)
		defer C.free(unsafe.Pointer(in))
		var out *C.char
		var outN C.size_t
		if C.ipg_call_python(C.int64_t(handle), in, inN, &out, &outN) != 0 || out == nil {
			panic("the Python callback is no longer available")
		}
		defer C.free(unsafe.Pointer(out))
		d := decoder{r: reader{buf: unsafe.Slice((*byte)(unsafe.Pointer(out)), int(outN))}, calls: c}
		switch status := d.r.byte(); status {
		case statusOK:
		case statusCallbackError:
			id := int64(d.r.u64())
			panic(&CallbackError{ID: id, Msg: d.r.str()})
		default:
			panic("Python callback failed: " + d.r.str())
		}
		n := int(d.r.u64())
		results := make([]reflect.Value, t.NumOut())
		if n != t.NumOut() {
			panic(fmt.Sprintf("the Python callback returned %d values, %s needs %d", n, TypeName(t), t.NumOut()))
		}
		for i := range results {
			v, err := d.value(t.Out(i))
			if err != nil {
				panic(within(callbackResultLabel(t, i), err))
			}
			results[i] = v
		}
		return results
	})
}

// callbackResultLabel names a result of a Python callback as a parameter is
// named: "callback result (Go type int)", "callback result 2 (Go type error)".
func callbackResultLabel(t reflect.Type, i int) string {
	if t.NumOut() == 1 {
		return fmt.Sprintf("callback result (Go type %s)", TypeName(t.Out(i)))
	}
	return fmt.Sprintf("callback result %d (Go type %s)", i+1, TypeName(t.Out(i)))
}

// ---- describing the library to Python ----------------------------------------

type typeInfo struct {
	Go      string `json:"go"`
	Kind    string `json:"kind"`
	Problem string `json:"problem,omitempty"`
}

type funcInfo struct {
	ID       int        `json:"id"`
	Name     string     `json:"name"`
	Params   []string   `json:"params"`
	In       []typeInfo `json:"in"`
	Out      []typeInfo `json:"out"`
	Variadic bool       `json:"variadic"`
	Error    bool       `json:"error"`
	Problem  string     `json:"problem,omitempty"`
	Receiver string     `json:"receiver,omitempty"` // a method of this struct type
	Pointer  bool       `json:"pointer,omitempty"`  // ... with a pointer receiver
	Channel  bool       `json:"channel,omitempty"`  // its result is a channel Python receives from (channels.go)
}

type varInfo struct {
	Name string `json:"name"`
	Get  int    `json:"get"`
	Set  int    `json:"set"`
	typeInfo
	// Carried: the value can be copied faithfully from one runtime to the next;
	// Reset says why not (the variable starts from its initializer after a rebuild).
	Carried bool   `json:"carried"`
	Reset   string `json:"reset,omitempty"`
}

type constInfo struct {
	Name    string `json:"name"`
	Value   []byte `json:"value,omitempty"` // encoded
	Problem string `json:"problem,omitempty"`
}

type fieldInfo struct {
	Name string `json:"name"`
	typeInfo
}

type structInfo struct {
	Name   string      `json:"name"`
	Fields []fieldInfo `json:"fields"`
	Zero   []byte      `json:"zero"` // the zero value, encoded: the Python class's defaults
}

//export ipg_describe
func ipg_describe(out **C.char, outn *C.size_t) {
	var fs []funcInfo
	for id, e := range funcs {
		fi := funcInfo{ID: id, Name: e.Name, Params: e.Params, Variadic: e.t.IsVariadic(), Receiver: e.recv, Pointer: e.pointer}
		if e.pointer {
			if p := crossOut(e.t.In(0), map[reflect.Type]bool{}); p != "" {
				fi.Problem = p
			}
		}
		for i := 0; i < e.t.NumIn(); i++ {
			ti := info(e.t.In(i))
			if p := crossIn(e.t.In(i), map[reflect.Type]bool{}); p != "" && fi.Problem == "" {
				fi.Problem = p
			}
			fi.In = append(fi.In, ti)
		}
		nout := e.t.NumOut()
		if nout > 0 && e.t.Out(nout-1) == errorType {
			fi.Error = true
			nout--
		}
		fi.Channel = receivable(e.t)
		for i := 0; i < nout; i++ {
			if p := crossOut(resultType(e.t.Out(i), fi.Channel), map[reflect.Type]bool{}); p != "" && fi.Problem == "" {
				fi.Problem = p
			}
			fi.Out = append(fi.Out, info(e.t.Out(i)))
		}
		fs = append(fs, fi)
	}
	var ss []structInfo
	for _, t := range types {
		if t.Type.Kind() != reflect.Struct {
			continue
		}
		si := structInfo{Name: t.Name, Fields: []fieldInfo{}}
		for i := 0; i < t.Type.NumField(); i++ {
			if f := t.Type.Field(i); f.IsExported() {
				si.Fields = append(si.Fields, fieldInfo{f.Name, info(f.Type)})
			}
		}
		zero := &writer{}
		zero.value(reflect.Zero(t.Type), 0)
		si.Zero = zero.buf
		ss = append(ss, si)
	}
	vs := []varInfo{}
	for _, v := range vars {
		ti := info(v.t)
		problem, reset := carrying(v.t)
		ti.Problem = problem
		vs = append(vs, varInfo{Name: v.Name, Get: v.get, Set: v.set, typeInfo: ti, Carried: reset == "", Reset: reset})
	}
	cs := []constInfo{}
	for _, c := range consts {
		ci := constInfo{Name: c.Name}
		v := reflect.ValueOf(c.Value)
		if p := crossOut(v.Type(), map[reflect.Type]bool{}); p != "" {
			ci.Problem = p
		} else {
			w := &writer{}
			w.value(v, 0)
			ci.Value = w.buf
		}
		cs = append(cs, ci)
	}
	data, _ := json.Marshal(map[string]any{"funcs": fs, "structs": ss, "vars": vs, "consts": cs, "profile": profile})
	w := &writer{buf: data}
	toC(w, out, outn)
}

// carrying says why a variable of type t cannot cross to Python (problem) and
// why a rebuild cannot carry its value (reset); "" when it can.
func carrying(t reflect.Type) (problem, reset string) {
	if p := crossOut(t, map[reflect.Type]bool{}); p != "" {
		problem = p
	} else if p := crossIn(t, map[reflect.Type]bool{}); p != "" {
		problem = p
	}
	reset = resetReason(t, map[reflect.Type]bool{})
	if reset == "" && problem != "" {
		reset = "values of type " + problem + " cannot be carried across a rebuild"
	}
	return problem, reset
}

func info(t reflect.Type) typeInfo {
	kind := t.Kind().String()
	if t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8 && dtypeOf(t.Elem().Kind()) != 0 && t.Elem().Kind() != reflect.Bool {
		kind = "numeric-slice"
	}
	return typeInfo{Go: TypeName(t), Kind: kind}
}

// crossIn says why a Python value cannot become a t ("" when it can).
func crossIn(t reflect.Type, seen map[reflect.Type]bool) string {
	if seen[t] {
		return ""
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Chan, reflect.UnsafePointer:
		return TypeName(t)
	case reflect.Interface:
		if t.NumMethod() != 0 && t != errorType {
			return TypeName(t)
		}
	case reflect.Slice, reflect.Array, reflect.Pointer:
		return crossIn(t.Elem(), seen)
	case reflect.Map:
		if p := crossIn(t.Key(), seen); p != "" {
			return p
		}
		return crossIn(t.Elem(), seen)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if f := t.Field(i); f.IsExported() {
				if p := crossIn(f.Type, seen); p != "" {
					return p
				}
			}
		}
	case reflect.Func:
		for i := 0; i < t.NumIn(); i++ {
			if p := crossOut(t.In(i), seen); p != "" {
				return p
			}
		}
		for i := 0; i < t.NumOut(); i++ {
			if p := crossIn(t.Out(i), seen); p != "" {
				return p
			}
		}
	}
	return ""
}

// crossOut says why a t cannot become a Python value ("" when it can).
func crossOut(t reflect.Type, seen map[reflect.Type]bool) string {
	if seen[t] {
		return ""
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Chan, reflect.UnsafePointer, reflect.Func:
		return TypeName(t)
	case reflect.Slice, reflect.Array, reflect.Pointer:
		return crossOut(t.Elem(), seen)
	case reflect.Map:
		if p := crossOut(t.Key(), seen); p != "" {
			return p
		}
		return crossOut(t.Elem(), seen)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if f := t.Field(i); f.IsExported() {
				if p := crossOut(f.Type, seen); p != "" {
					return p
				}
			}
		}
	}
	return ""
}

// resetReason says why a value of type t cannot survive the trip out of one
// Go runtime and into another unchanged (up to pointer identity), "" when it
// can: interfaces lose their dynamic types, unexported struct fields do not
// cross, channels, funcs and unsafe pointers cannot cross at all.
func resetReason(t reflect.Type, seen map[reflect.Type]bool) string {
	if seen[t] {
		return ""
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Chan:
		return "channels cannot be carried across a rebuild"
	case reflect.Func:
		return "funcs cannot be carried across a rebuild"
	case reflect.UnsafePointer:
		return "unsafe pointers cannot be carried across a rebuild"
	case reflect.Interface:
		return "interface values cannot be carried across a rebuild (their dynamic types do not cross)"
	case reflect.Slice, reflect.Array, reflect.Pointer:
		return resetReason(t.Elem(), seen)
	case reflect.Map:
		if reason := resetReason(t.Key(), seen); reason != "" {
			return reason
		}
		return resetReason(t.Elem(), seen)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				return TypeName(t) + " has unexported fields, which cannot be carried across a rebuild"
			}
			if f.Anonymous {
				return TypeName(t) + " embeds " + TypeName(f.Type) + ", which cannot be carried across a rebuild"
			}
			if reason := resetReason(f.Type, seen); reason != "" {
				return reason
			}
		}
	}
	return ""
}
