package ipgrt

/*
#include "bridge.h"
*/
import "C"

import (
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// The lifetime of a Python callable handed to Go: Python keeps the callable
// in its handle table; every Go func value decoded from it holds a
// pythonHandle, and when the Go garbage collector finds that func value
// unreachable the handle's finalizer queues the handle for release. Python
// takes the queue after its calls (ipg_pending, which Python reads after
// every call, counts them with the panics not raised yet) and drops the callable. So a func that Go stores (in a
// variable, a map, a server's handler table, a goroutine) stays callable from
// any goroutine for as long as Go can reach it, and one Go drops is released
// at Go's next collection.

// pythonHandle is the Go-side owner of one entry of Python's handle table.
// It holds a pointer (the func's type) so that it is never a pointer-free
// tiny allocation, whose finalizer may never run.
type pythonHandle struct {
	id       int64
	funcType reflect.Type
}

// releasedHandles is the queue of handles whose Go func values were collected
// (or that were never made into a func value), not yet taken by Python.
type releasedHandles struct {
	mu  sync.Mutex
	ids []int64
}

var released releasedHandles

// adoptPython makes Go the owner of a Python handle until the returned value is collected.
func adoptPython(id int64, funcType reflect.Type) *pythonHandle {
	h := &pythonHandle{id: id, funcType: funcType}
	runtime.SetFinalizer(h, func(h *pythonHandle) { released.add(h.id) })
	return h
}

func (q *releasedHandles) add(id int64) {
	q.mu.Lock()
	q.ids = append(q.ids, id)
	q.mu.Unlock()
	atomic.AddInt32((*int32)(unsafe.Pointer(&C.ipg_released_pending)), 1)
	atomic.AddInt32((*int32)(unsafe.Pointer(&C.ipg_pending)), 1) // Python looks after every call
}

func (q *releasedHandles) take() []int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	ids := q.ids
	q.ids = nil
	atomic.AddInt32((*int32)(unsafe.Pointer(&C.ipg_released_pending)), -int32(len(ids)))
	atomic.AddInt32((*int32)(unsafe.Pointer(&C.ipg_pending)), -int32(len(ids)))
	return ids
}

// ipg_take_released hands Python the handles it may drop (little-endian u64s).
//
//export ipg_take_released
func ipg_take_released(out **C.char, outn *C.size_t) {
	w := &writer{}
	for _, id := range released.take() {
		w.u64(uint64(id))
	}
	toC(w, out, outn)
}

// ipg_collect runs a Go collection, so that func values Go no longer reaches
// have their handles queued (finalizers run soon after, on their own goroutine).
//
//export ipg_collect
func ipg_collect() {
	runtime.GC()
}
