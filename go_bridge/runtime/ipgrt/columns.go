package ipgrt

// Maps in columns: the bulk form of the common map shapes (string or integer
// keys; numeric, bool or string values). Instead of one tagged key and value
// per entry, tagMapColumns carries the entry count, then a key column and a
// value column:
//
//	column = 0x00 + uint64 byte length + the strings joined by NUL bytes
//	       | dtype byte + count raw little-endian elements
//
// Strings holding a NUL byte cannot be joined that way; such maps (and every
// other shape) keep the per-entry form. Typed Go maps are filled and read
// without reflection per entry; a column pair arriving for any other target
// type is expanded to the per-entry form and decoded by the general rules, so
// conversions and error messages are the same either way.

import (
	"encoding/binary"
	"math"
	"reflect"
	"strings"
)

const (
	tagMapColumns = 0x14
	colStrings    = 0x00
	minColumns    = 16 // smaller maps are cheaper in the per-entry form
)

// column is one decoded column: strings, or raw elements of a dtype.
type column struct {
	code byte
	strs []string
	raw  []byte
}

func (d *decoder) column(n int) column {
	code := d.r.byte()
	if code == colStrings {
		blob := string(d.r.bytes(int(d.r.u64()))) // one allocation; the keys share it
		c := column{code: code, strs: make([]string, 0, n)}
		for len(c.strs) < n-1 {
			i := strings.IndexByte(blob, 0)
			if i < 0 {
				panic(wireError("short string column"))
			}
			c.strs = append(c.strs, blob[:i])
			blob = blob[i+1:]
		}
		c.strs = append(c.strs, blob)
		return c
	}
	if int(code) >= len(dtypeSize) {
		panic(wireError("bad column type"))
	}
	return column{code: code, raw: d.r.bytes(n * dtypeSize[code])}
}

func (c *column) u64(i int) uint64 { return binary.LittleEndian.Uint64(c.raw[8*i:]) }

// Element readers: ok is false when the column does not hold what the Go type
// needs without a conversion the general rules would check or refuse.
func colString(c *column, i int) (string, bool) { return c.strs[i], c.code == colStrings }
func colInt64(c *column, i int) (int64, bool)   { return int64(c.u64(i)), c.code == dtInt64 }
func colInt(c *column, i int) (int, bool)       { return int(c.u64(i)), c.code == dtInt64 }
func colBool(c *column, i int) (bool, bool)     { return c.raw[i] != 0, c.code == dtBool }

func colInt32(c *column, i int) (int32, bool) {
	if c.code != dtInt64 {
		return 0, false
	}
	x := int64(c.u64(i))
	return int32(x), x == int64(int32(x))
}

func colFloat64(c *column, i int) (float64, bool) {
	switch c.code {
	case dtFloat64:
		return math.Float64frombits(c.u64(i)), true
	case dtInt64:
		return float64(int64(c.u64(i))), true
	}
	return 0, false
}

func colFloat32(c *column, i int) (float32, bool) {
	x, ok := colFloat64(c, i)
	if !ok || (math.Abs(x) > math.MaxFloat32 && !math.IsInf(x, 0)) {
		return 0, false
	}
	return float32(x), true
}

type columnDecoder func(keys, vals *column, n int) (reflect.Value, bool)

type columnEncoder func(w *writer, m any) bool

var (
	columnDecoders = map[reflect.Type]columnDecoder{}
	columnEncoders = map[reflect.Type]columnEncoder{}
)

func fillMap[K comparable, V any](key func(*column, int) (K, bool), val func(*column, int) (V, bool)) columnDecoder {
	return func(keys, vals *column, n int) (reflect.Value, bool) {
		m := make(map[K]V, n)
		for i := 0; i < n; i++ {
			k, ok := key(keys, i)
			if !ok {
				return reflect.Value{}, false
			}
			v, ok := val(vals, i)
			if !ok {
				return reflect.Value{}, false
			}
			m[k] = v
		}
		return reflect.ValueOf(m), true
	}
}

// colWriter collects one column while the map is ranged over once (a Go map's
// order differs between two ranges, so keys and values are written together).
type colWriter[T any] func(buf []byte, x T) ([]byte, bool)

func writeString(buf []byte, s string) ([]byte, bool) {
	if strings.IndexByte(s, 0) >= 0 {
		return buf, false
	}
	return append(append(buf, s...), 0), true
}

func writeInt[T ~int | ~int32 | ~int64](buf []byte, x T) ([]byte, bool) {
	return binary.LittleEndian.AppendUint64(buf, uint64(int64(x))), true
}

func writeFloat[T ~float32 | ~float64](buf []byte, x T) ([]byte, bool) {
	return binary.LittleEndian.AppendUint64(buf, math.Float64bits(float64(x))), true
}

func writeBool(buf []byte, x bool) ([]byte, bool) {
	if x {
		return append(buf, 1), true
	}
	return append(buf, 0), true
}

func readMap[K comparable, V any](kcode byte, key colWriter[K], vcode byte, val colWriter[V]) columnEncoder {
	return func(w *writer, mv any) bool {
		m := mv.(map[K]V)
		var kbuf, vbuf []byte
		if kcode != colStrings {
			kbuf = make([]byte, 0, 8*len(m))
		}
		if vcode != colStrings {
			vbuf = make([]byte, 0, dtypeSize[vcode]*len(m))
		}
		var ok bool
		for k, v := range m {
			if kbuf, ok = key(kbuf, k); !ok {
				return false
			}
			if vbuf, ok = val(vbuf, v); !ok {
				return false
			}
		}
		w.byte(tagMapColumns)
		w.u64(uint64(len(m)))
		writeColumn(w, kcode, kbuf)
		writeColumn(w, vcode, vbuf)
		return true
	}
}

func writeColumn(w *writer, code byte, buf []byte) {
	w.byte(code)
	if code == colStrings {
		buf = buf[:len(buf)-1] // the last string's separator
		w.u64(uint64(len(buf)))
	}
	w.raw(buf)
}

func addColumns[K comparable, V any](
	key func(*column, int) (K, bool), kcode byte, kw colWriter[K],
	val func(*column, int) (V, bool), vcode byte, vw colWriter[V],
) {
	t := reflect.TypeFor[map[K]V]()
	columnDecoders[t] = fillMap(key, val)
	columnEncoders[t] = readMap(kcode, kw, vcode, vw)
}

func addValues[K comparable](key func(*column, int) (K, bool), kcode byte, kw colWriter[K]) {
	addColumns(key, kcode, kw, colFloat64, dtFloat64, writeFloat[float64])
	addColumns(key, kcode, kw, colFloat32, dtFloat64, writeFloat[float32])
	addColumns(key, kcode, kw, colInt, dtInt64, writeInt[int])
	addColumns(key, kcode, kw, colInt64, dtInt64, writeInt[int64])
	addColumns(key, kcode, kw, colInt32, dtInt64, writeInt[int32])
	addColumns(key, kcode, kw, colBool, dtBool, writeBool)
	addColumns(key, kcode, kw, colString, colStrings, writeString)
}

func init() {
	addValues(colString, colStrings, writeString)
	addValues(colInt, dtInt64, writeInt[int])
	addValues(colInt64, dtInt64, writeInt[int64])
	addValues(colInt32, dtInt64, writeInt[int32])
}

// encodeColumns writes a map in columns when its type has a bulk form.
func (w *writer) encodeColumns(v reflect.Value) bool {
	if v.Len() < minColumns || !v.CanInterface() {
		return false
	}
	enc := columnEncoders[v.Type()]
	if enc == nil {
		return false
	}
	mark := len(w.buf)
	if enc(w, v.Interface()) {
		return true
	}
	w.buf = w.buf[:mark]
	return false
}

// mapColumns decodes a column pair (the tag is read) into a value of type t.
func (d *decoder) mapColumns(t reflect.Type) (reflect.Value, *convError) {
	n := int(d.r.u64())
	keys := d.column(n)
	vals := d.column(n)
	if dec := columnDecoders[t]; dec != nil {
		if m, ok := dec(&keys, &vals, n); ok {
			return m, nil
		}
	}
	// Any other target, or a value needing a checked conversion: the per-entry form.
	w := &writer{}
	w.byte(tagMap)
	w.u64(uint64(n))
	for i := 0; i < n; i++ {
		expandItem(w, &keys, i)
		expandItem(w, &vals, i)
	}
	sub := decoder{r: reader{buf: w.buf}, depth: d.depth, calls: d.calls}
	return sub.value(t)
}

func expandItem(w *writer, c *column, i int) {
	switch c.code {
	case colStrings:
		w.byte(tagString)
		w.str(c.strs[i])
	case dtInt64:
		w.byte(tagInt)
		w.u64(c.u64(i))
	case dtFloat64:
		w.byte(tagFloat)
		w.u64(c.u64(i))
	case dtBool:
		if c.raw[i] != 0 {
			w.byte(tagTrue)
		} else {
			w.byte(tagFalse)
		}
	default:
		panic(wireError("unexpected column type"))
	}
}
