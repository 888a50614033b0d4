package ipgrt

// Go's own profiler and runtime statistics, served to Python (%go_pprof and
// %polyglot info). Profiles leave as pprof protobuf bytes in C memory.

/*
#include <stdint.h>
#include <stdlib.h>
#include "bridge.h"
*/
import "C"

import (
	"bytes"
	"encoding/json"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"
	"unsafe"
)

var (
	profileMu     sync.Mutex
	cpuProfile    *bytes.Buffer
	heapProfiling bool
	savedRate     int
)

// ipg_pprof_start turns on CPU profiling, or (heap != 0) allocation sampling
// every memRate bytes; for a heap profile `out` receives the baseline
// snapshot. It returns 0, or 1 with an error message in `out`.
//
//export ipg_pprof_start
func ipg_pprof_start(heap C.int, memRate C.int, out **C.char, outn *C.size_t) C.int {
	profileMu.Lock()
	defer profileMu.Unlock()
	if cpuProfile != nil || heapProfiling {
		toC(&writer{buf: []byte("a profile is already running in this Go runtime")}, out, outn)
		return 1
	}
	if heap != 0 {
		baseline := allocsProfile()
		savedRate = runtime.MemProfileRate
		runtime.MemProfileRate = int(memRate)
		heapProfiling = true
		toC(&writer{buf: baseline}, out, outn)
		return 0
	}
	buf := &bytes.Buffer{}
	if err := pprof.StartCPUProfile(buf); err != nil {
		toC(&writer{buf: []byte(err.Error())}, out, outn)
		return 1
	}
	// SIGPROF has one handler per process: make it this runtime's again in
	// case a runtime loaded later took it over.
	C.ipg_claim_sigprof()
	cpuProfile = buf
	toC(&writer{}, out, outn)
	return 0
}

// ipg_pprof_stop ends the profile and hands it over (gzipped pprof protobuf).
//
//export ipg_pprof_stop
func ipg_pprof_stop(out **C.char, outn *C.size_t) {
	profileMu.Lock()
	defer profileMu.Unlock()
	var data []byte
	switch {
	case cpuProfile != nil:
		pprof.StopCPUProfile()
		data = cpuProfile.Bytes()
		cpuProfile = nil
	case heapProfiling:
		data = allocsProfile()
		runtime.MemProfileRate = savedRate
		heapProfiling = false
	}
	toC(&writer{buf: data}, out, outn)
}

// allocsProfile is every sampled allocation so far; a full GC first publishes
// the most recent ones.
func allocsProfile() []byte {
	runtime.GC()
	buf := &bytes.Buffer{}
	_ = pprof.Lookup("allocs").WriteTo(buf, 0)
	return buf.Bytes()
}

// ipg_runtime_stats describes this runtime as JSON: goroutines, heap, GC cycles.
//
//export ipg_runtime_stats
func ipg_runtime_stats(out **C.char, outn *C.size_t) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	data, _ := json.Marshal(map[string]uint64{
		"goroutines": uint64(runtime.NumGoroutine()),
		"heap_inuse": m.HeapInuse,
		"heap_alloc": m.HeapAlloc,
		"gc_cycles":  uint64(m.NumGC),
		"sys":        m.Sys,
	})
	toC(&writer{buf: data}, out, outn)
}

// ipg_call_profiled is ipg_call for functions built with profiling on. The
// encoded result carries the phases Call measured (decoding the arguments,
// the function, encoding its results); copying that result into C memory
// for Python is part of copying out too, so its time goes to
// `copyOutNs` (the time Python sees is measured on the Python side).
//
//export ipg_call_profiled
func ipg_call_profiled(id C.int, in *C.char, n C.size_t, ownBulk C.int, out **C.char, outn *C.size_t, copyOutNs *C.int64_t) {
	var input []byte
	if n > 0 {
		input = unsafe.Slice((*byte)(unsafe.Pointer(in)), int(n))
	}
	result := Call(int(id), input, ownBulk != 0)
	started := time.Now()
	toC(result, out, outn)
	*copyOutNs = C.int64_t(time.Since(started).Nanoseconds())
}
