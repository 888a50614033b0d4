package ipgrt

/*
#include <stdint.h>
*/
import "C"

import (
	"reflect"
	"runtime/debug"
	"sync"
	"time"
)

// A Go function whose result is a channel Python can receive from (`chan T`
// or `<-chan T`, optionally followed by an error) is bound: the channel is
// kept here under a handle, Python gets the handle and receives through
// ipg_chan_receive until it drops its GoChannel (ipg_chan_release). Only a
// function's own result crosses this way; a channel inside another value
// still cannot cross.

type channelTable struct {
	mu   sync.Mutex
	last int64
	open map[int64]reflect.Value
}

var channels = channelTable{open: map[int64]reflect.Value{}}

// keep gives a channel a handle (0 for a nil channel: Python sees None).
func (c *channelTable) keep(ch reflect.Value) int64 {
	if ch.IsNil() {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last++
	c.open[c.last] = ch
	return c.last
}

func (c *channelTable) get(id int64) (reflect.Value, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.open[id]
	return ch, ok
}

func (c *channelTable) drop(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.open, id)
}

// receivable: t's result is one channel Python can receive from, then maybe an error.
func receivable(t reflect.Type) bool {
	n := t.NumOut()
	if n == 2 && t.Out(1) == errorType {
		n = 1
	}
	return n == 1 && t.Out(0).Kind() == reflect.Chan && t.Out(0).ChanDir()&reflect.RecvDir != 0
}

// resultType is what crosses to Python for result type t: a receivable
// channel's values, otherwise t itself.
func resultType(t reflect.Type, channel bool) reflect.Type {
	if channel {
		return t.Elem()
	}
	return t
}

// ipg_chan_receive waits for the next value of a kept channel: (value, ok),
// as Go's `v, ok := <-ch` (ok is false once the channel is closed and drained).
// It waits at most pollInterval (then statusRunning: Python asks again, so an
// interrupt reaches it), and ends with the panic of a goroutine a cell
// started, which may have been the one to send (supervise.go).
//
//export ipg_chan_receive
func ipg_chan_receive(id C.int64_t, out **C.char, outn *C.size_t) {
	toC(receive(int64(id)), out, outn)
}

func receive(id int64) (result *writer) {
	ch, ok := channels.get(id)
	if !ok {
		return statusResult(statusValueError, "this Go channel was released")
	}
	defer func() {
		if p := recover(); p != nil {
			result = panicResult(p, debug.Stack())
		}
	}()
	w := waiting.add()
	timer := time.NewTimer(pollInterval)
	chosen, v, received := reflect.Select([]reflect.SelectCase{
		{Dir: reflect.SelectRecv, Chan: ch},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(w.abort)},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)},
	})
	timer.Stop()
	p := waiting.remove(w)
	switch {
	case chosen == 1:
		return v.Interface().(*writer)
	case p != nil && chosen == 0: // the value is not lost: the panic comes right after it
		requeueGoroutinePanic(p)
	case p != nil:
		return p
	case chosen == 2:
		return statusResult(statusRunning, "")
	}
	result = &writer{}
	result.byte(statusOK)
	result.u64(2)
	result.value(v, 0)
	result.value(reflect.ValueOf(received), 0)
	return result
}

// ipg_chan_release forgets a kept channel: Python no longer receives from it.
//
//export ipg_chan_release
func ipg_chan_release(id C.int64_t) {
	channels.drop(int64(id))
}
