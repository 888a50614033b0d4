package ipgrt

/*
#include <stdint.h>
#include <stdlib.h>
#include "bridge.h"
*/
import "C"

import (
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Goroutines started by cell code, and the calls that may be waiting for them.
//
// A panic in a goroutine a cell started is recovered (it would end the
// process). A Go call from Python in progress at that moment may be waiting
// for that goroutine (a channel it would have sent on, a WaitGroup it would
// have marked done), and would then never return: so the panic ends every
// supervised call in progress in this runtime (a Python callback's exception
// is raised as itself), and every channel receive Python is waiting in. A
// panic no call was waiting for is printed and raised after the next call.
//
// A call cannot be ended while it runs on the caller's own thread, so a call
// is supervised, that is run on a goroutine of its own while the calling
// thread waits for its result or such a panic, when its function may start a
// goroutine (Func.Spawns: a go statement in its code or in cell code it
// refers to), or may wait for one (Func.Waits: a channel operation, a select,
// a Wait or Lock call) while goroutines started by cells are running
// (cellGoroutines). Every other call runs on the calling thread, as fast as
// before: supervising costs two thread switches (about 10-20 µs). A supervised call that has not
// finished after pollInterval hands Python a token (statusRunning) and Python
// waits in slices of pollInterval (ipg_call_wait), so an interrupt reaches
// Python between them and abandons the call (ipg_call_abandon): Python gets
// its KeyboardInterrupt, the Go function runs on, its result is dropped.

const pollInterval = 50 * time.Millisecond

// cellGoroutines counts the goroutines started by cell code that are still running.
var cellGoroutines atomic.Int64

// Goroutine is a goroutine a cell's go statement starts. The inspector
// rewrites `go f(x)` as `go ipolyglotrt.Go().Run(func() { f(x) })`: Go is
// evaluated by the starting goroutine, so the new one is counted before the
// statement ends.
type Goroutine struct{}

// Go counts a goroutine a cell is starting.
func Go() Goroutine {
	cellGoroutines.Add(1)
	return Goroutine{}
}

// Run runs the goroutine's function, recovering its panic.
func (Goroutine) Run(f func()) {
	defer goroutineEnded()
	f()
}

func goroutineEnded() {
	p := recover()
	cellGoroutines.Add(-1)
	if p == nil {
		return
	}
	stack := debug.Stack()
	w := panicResult(p, stack)
	if w.buf[0] == statusPanic {
		w.buf[0] = statusGoroutinePanic
	}
	if !waiting.deliver(w) {
		keepGoroutinePanic(p, stack)
	}
}

// supervised: this call runs on a goroutine of its own.
func (e *entry) supervised() bool {
	return e.spawns || (e.waits && cellGoroutines.Load() > 0)
}

// Retry is checked first by the scalar fast entry point of a function that
// may wait for a goroutine: while goroutines started by cells are running,
// its call must be supervised, which only the generic entry point does; the
// fast one then runs nothing and leaves the calling thread a request to call
// again through ipg_call.
func Retry() bool {
	if cellGoroutines.Load() == 0 {
		return false
	}
	w := &writer{}
	w.byte(statusRetry)
	storeThreadPanic(w)
	return true
}

// ---- waiters: calls and receives a goroutine's panic ends ------------------------

type waiter struct {
	abort chan *writer // the panic that ends the wait (buffered: delivering never blocks)
}

type waiters struct {
	mu  sync.Mutex
	set map[*waiter]struct{}
}

var waiting = waiters{set: map[*waiter]struct{}{}}

func (ws *waiters) add() *waiter {
	w := &waiter{abort: make(chan *writer, 1)}
	ws.mu.Lock()
	ws.set[w] = struct{}{}
	ws.mu.Unlock()
	return w
}

// remove stops delivering to w; a panic delivered before is returned (nil if none).
func (ws *waiters) remove(w *waiter) *writer {
	ws.mu.Lock()
	delete(ws.set, w)
	ws.mu.Unlock()
	select {
	case p := <-w.abort:
		return p
	default:
		return nil
	}
}

// deliver hands a goroutine's panic to everything waiting; false when nothing is.
func (ws *waiters) deliver(p *writer) bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for w := range ws.set {
		select {
		case w.abort <- p:
		default: // already ended by an earlier panic
		}
	}
	return len(ws.set) > 0
}

// ---- supervised calls ------------------------------------------------------------

type supervisedCall struct {
	token  uint64
	waiter *waiter
	done   chan *writer
}

var running = struct {
	mu    sync.Mutex
	last  uint64
	calls map[uint64]*supervisedCall
}{calls: map[uint64]*supervisedCall{}}

// supervise starts run on a goroutine of its own and waits for it (at most pollInterval).
func supervise(run func() *writer) *writer {
	s := &supervisedCall{waiter: waiting.add(), done: make(chan *writer, 1)}
	running.mu.Lock()
	running.last++
	s.token = running.last
	running.calls[s.token] = s
	running.mu.Unlock()
	go func() { s.done <- run() }()
	return s.wait()
}

// wait returns the call's result, the goroutine panic that ended it, or
// (after pollInterval) statusRunning and the token to wait on with.
func (s *supervisedCall) wait() *writer {
	timer := time.NewTimer(pollInterval)
	defer timer.Stop()
	select {
	case result := <-s.done:
		if p := s.end(); p != nil { // a goroutine panicked while it ran: that is what Python hears
			return p
		}
		return result
	case p := <-s.waiter.abort:
		s.end()
		return p
	case <-timer.C:
		w := &writer{}
		w.byte(statusRunning)
		w.u64(s.token)
		return w
	}
}

// end forgets the call; a goroutine panic delivered to it meanwhile is returned.
func (s *supervisedCall) end() *writer {
	running.mu.Lock()
	delete(running.calls, s.token)
	running.mu.Unlock()
	return waiting.remove(s.waiter)
}

func runningCall(token uint64) *supervisedCall {
	running.mu.Lock()
	defer running.mu.Unlock()
	return running.calls[token]
}

// ipg_call_wait waits on for a supervised call that answered statusRunning:
// its result, or statusRunning again after pollInterval. copyOutNs receives
// the time copying the result into C memory took (for the profiler).
//
//export ipg_call_wait
func ipg_call_wait(token C.uint64_t, out **C.char, outn *C.size_t, copyOutNs *C.int64_t) {
	s := runningCall(uint64(token))
	if s == nil {
		toC(statusResult(statusValueError, "this Go call was abandoned"), out, outn)
		return
	}
	result := s.wait()
	started := time.Now()
	toC(result, out, outn)
	*copyOutNs = C.int64_t(time.Since(started).Nanoseconds())
}

// ipg_call_abandon stops waiting for a supervised call (Python was
// interrupted): the function runs on, and its result is dropped.
//
//export ipg_call_abandon
func ipg_call_abandon(token C.uint64_t) {
	if s := runningCall(uint64(token)); s != nil {
		s.end()
	}
}
