package ipgrt

// The wire format shared with go_bridge/marshal.py. Every value starts with a
// one-byte tag; numbers are little-endian; lengths are uint64. The format is
// self-describing, so either side can decode without knowing the Go types,
// and a byte buffer in / byte buffer out is all a call needs (which is what a
// separate worker process would serve).

import (
	"encoding/binary"
	"math"
	"unsafe"
)

const (
	tagNil         = 0x00
	tagFalse       = 0x01
	tagTrue        = 0x02
	tagInt         = 0x03 // int64
	tagUint        = 0x04 // uint64 (Python ints >= 2**63)
	tagBigInt      = 0x05 // decimal text of an int beyond 64 bits
	tagFloat       = 0x06 // float64
	tagComplex     = 0x07 // two float64
	tagString      = 0x08 // uint64 length + UTF-8
	tagBytes       = 0x09 // uint64 length + bytes
	tagArray       = 0x0A // dtype byte + uint64 count + raw elements
	tagArrayExtern = 0x0B // dtype byte + uint64 count + uint64 address of C/numpy memory
	tagBytesExtern = 0x0C // uint64 length + uint64 address
	// dtype byte + uint64 count + uint64 address of a block of C memory (malloc) holding the
	// elements, which the receiver owns from then on: only in results for Python (writer.ownBulk).
	tagArrayOwned = 0x0D
	tagList        = 0x10 // uint64 count + values
	tagMap         = 0x11 // uint64 count + key, value pairs
	tagStruct      = 0x12 // name string + uint64 count + (field name as a tagged string, value) pairs
	tagFunc        = 0x13 // int64 handle of a Python callable
	// tagMapColumns (0x14): uint64 count + key column + value column (columns.go)
)

// Result status bytes: the first byte of every call result.
const (
	statusOK            = 0
	statusGoError       = 1
	statusPanic         = 2
	statusTypeError     = 3
	statusOverflowError = 4
	statusValueError    = 5
	statusCallbackError = 6
	// A supervised call still running (a u64 token follows), or a channel
	// receive still waiting: Python waits again (supervise.go).
	statusRunning = 7
	// A panic in a goroutine a cell started ended the call (value, stack).
	statusGoroutinePanic = 8
	// A fast entry point ran nothing: call again through ipg_call (supervise.go).
	statusRetry = 9
)

// Numeric element types of bulk arrays (numpy dtypes).
const (
	dtInt8 = 1 + iota
	dtInt16
	dtInt32
	dtInt64
	dtUint8
	dtUint16
	dtUint32
	dtUint64
	dtFloat32
	dtFloat64
	dtComplex64
	dtComplex128
	dtBool
)

var dtypeSize = [...]int{0, 1, 2, 4, 8, 1, 2, 4, 8, 4, 8, 8, 16, 1}

type reader struct {
	buf []byte
	pos int
}

func (r *reader) need(n int) {
	if n < 0 || r.pos+n > len(r.buf) {
		panic(wireError("truncated input"))
	}
}

func (r *reader) byte() byte {
	r.need(1)
	b := r.buf[r.pos]
	r.pos++
	return b
}

func (r *reader) peek() byte {
	r.need(1)
	return r.buf[r.pos]
}

func (r *reader) u64() uint64 {
	r.need(8)
	v := binary.LittleEndian.Uint64(r.buf[r.pos:])
	r.pos += 8
	return v
}

func (r *reader) f64() float64 { return math.Float64frombits(r.u64()) }

func (r *reader) bytes(n int) []byte {
	r.need(n)
	b := r.buf[r.pos : r.pos+n]
	r.pos += n
	return b
}

func (r *reader) str() string { return string(r.bytes(int(r.u64()))) }

// externBytes views memory the caller owns (a numpy buffer, bytes) for the
// duration of the call; it is only ever copied from, never kept.
func externBytes(addr uint64, n int) []byte {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(uintptr(addr))), n)
}

type wireError string

// writer collects an encoded value; large bulk slices are kept as references
// to Go memory and copied once, straight into the C result buffer, or (ownBulk)
// each into a C block of its own that a numpy array on Python's side takes
// over without copying it again.
type writer struct {
	buf    []byte
	chunks []chunk
	// ownBulk: large numeric slices are written as tagArrayOwned (a result
	// Python's call decodes; never one that goes back into Go).
	ownBulk bool
}

type chunk struct {
	at   int // offset in buf where the bulk data goes
	data []byte
	// owned: the data goes into a C block of its own, and buf gets its
	// address (toC allocates the block, just before Python takes the result).
	owned   bool
	address uint64
}

const bulkThreshold = 1 << 16

func (w *writer) byte(b byte) { w.buf = append(w.buf, b) }

func (w *writer) u64(v uint64) { w.buf = binary.LittleEndian.AppendUint64(w.buf, v) }

func (w *writer) f64(v float64) { w.u64(math.Float64bits(v)) }

func (w *writer) str(s string) {
	w.u64(uint64(len(s)))
	w.buf = append(w.buf, s...)
}

func (w *writer) raw(b []byte) {
	if len(b) >= bulkThreshold {
		w.chunks = append(w.chunks, chunk{at: len(w.buf), data: b})
		return
	}
	w.buf = append(w.buf, b...)
}

// ownedRaw keeps b for a C block of its own (see chunk.owned).
func (w *writer) ownedRaw(b []byte) {
	w.chunks = append(w.chunks, chunk{at: len(w.buf), data: b, owned: true})
}

func (w *writer) size() int {
	n := len(w.buf)
	for _, c := range w.chunks {
		n += c.inline()
	}
	return n
}

// inline is how many bytes the chunk takes in the result itself.
func (c *chunk) inline() int {
	if c.owned {
		return 8
	}
	return len(c.data)
}

// into writes everything into dst, which must be w.size() bytes long; owned
// chunks must have their blocks (address) by then.
func (w *writer) into(dst []byte) {
	src, out := 0, 0
	for _, c := range w.chunks {
		out += copy(dst[out:], w.buf[src:c.at])
		src = c.at
		if c.owned {
			binary.LittleEndian.PutUint64(dst[out:], c.address)
			out += 8
		} else {
			out += copy(dst[out:], c.data)
		}
	}
	copy(dst[out:], w.buf[src:])
}
