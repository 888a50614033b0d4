package ipgrt

// Decoding Python values (in the wire format) into Go values of a known type.
// Every mismatch is a convError whose kind becomes TypeError, OverflowError
// or ValueError in Python; the message says what was expected and what came.

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"regexp"
	"strings"
	"unsafe"
)

type convError struct {
	status byte
	msg    string
}

func (e *convError) Error() string { return e.msg }

func typeErr(format string, a ...any) *convError {
	return &convError{statusTypeError, fmt.Sprintf(format, a...)}
}

func overflowErr(format string, a ...any) *convError {
	return &convError{statusOverflowError, fmt.Sprintf(format, a...)}
}

func within(where string, err *convError) *convError {
	return &convError{err.status, where + ": " + err.msg}
}

// cellQualifier is how Go qualifies a name of a cell compiled as a package of
// its own (ipgcell0123456789.Point); the user wrote Point.
var cellQualifier = regexp.MustCompile(`\bipgcell[0-9a-f]+\.`)

// TypeName is a Go type as the user wrote it: main.Point reads Point.
func TypeName(t reflect.Type) string {
	return cellQualifier.ReplaceAllString(strings.ReplaceAll(t.String(), "main.", ""), "")
}

var tagNames = map[byte]string{
	tagNil: "None", tagFalse: "bool", tagTrue: "bool", tagInt: "int", tagUint: "int",
	tagBigInt: "int", tagFloat: "float", tagComplex: "complex", tagString: "str",
	tagBytes: "bytes", tagBytesExtern: "bytes", tagArray: "array", tagArrayExtern: "array",
	tagList: "sequence", tagMap: "dict", tagMapColumns: "dict", tagStruct: "struct", tagFunc: "callable",
}

type decoder struct {
	r     reader
	depth int
	calls *callContext
}

func (d *decoder) mismatch(t reflect.Type, tag byte) *convError {
	return typeErr("expected %s, got %s", describeExpected(t), tagNames[tag])
}

func describeExpected(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		if isNumeric(t.Elem().Kind()) {
			return "a sequence or array of numbers (Go type " + TypeName(t) + ")"
		}
		if t.Elem().Kind() == reflect.Uint8 {
			return "bytes (Go type " + TypeName(t) + ")"
		}
		return "a sequence (Go type " + TypeName(t) + ")"
	case reflect.Map:
		return "a dict (Go type " + TypeName(t) + ")"
	case reflect.Struct:
		return "a " + TypeName(t) + " or a dict of its fields"
	case reflect.Func:
		return "a callable (Go type " + TypeName(t) + ")"
	}
	return TypeName(t)
}

func isNumeric(k reflect.Kind) bool {
	return (k >= reflect.Int && k <= reflect.Uint64) || k == reflect.Float32 || k == reflect.Float64 ||
		k == reflect.Complex64 || k == reflect.Complex128
}

// value decodes the next value into a Go value of type t.
func (d *decoder) value(t reflect.Type) (reflect.Value, *convError) {
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > 10000 {
		return reflect.Value{}, &convError{statusValueError, "value nested too deeply"}
	}
	tag := d.r.peek()
	switch t.Kind() {
	case reflect.Pointer:
		if tag == tagNil {
			d.r.byte()
			return reflect.Zero(t), nil
		}
		v, err := d.value(t.Elem())
		if err != nil {
			return v, err
		}
		p := reflect.New(t.Elem())
		p.Elem().Set(v)
		return p, nil
	case reflect.Interface:
		if t == errorType { // a Python callback's error result: None, or its message
			switch tag {
			case tagNil:
				d.r.byte()
				return reflect.Zero(t), nil
			case tagString:
				d.r.byte()
				out := reflect.New(t).Elem()
				out.Set(reflect.ValueOf(errors.New(d.r.str())))
				return out, nil
			}
			return reflect.Value{}, typeErr("expected None or an error message, got %s", tagNames[tag])
		}
		if t.NumMethod() != 0 {
			return reflect.Value{}, typeErr("cannot build a %s from Python", TypeName(t))
		}
		v, err := d.natural()
		if err != nil {
			return v, err
		}
		out := reflect.New(t).Elem()
		if v.IsValid() {
			out.Set(v)
		}
		return out, nil
	}
	d.r.byte()
	if tag == tagMapColumns {
		return d.mapColumns(t)
	}
	out := reflect.New(t).Elem()
	switch tag {
	case tagNil:
		switch t.Kind() {
		case reflect.Slice, reflect.Map, reflect.Func:
			return out, nil
		}
	case tagFalse, tagTrue:
		if t.Kind() == reflect.Bool {
			out.SetBool(tag == tagTrue)
			return out, nil
		}
	case tagInt:
		return out, setInt(out, int64(d.r.u64()))
	case tagUint:
		return out, setUint(out, d.r.u64())
	case tagBigInt:
		text := d.r.str()
		switch k := t.Kind(); {
		case k >= reflect.Int && k <= reflect.Uint64:
			return out, overflowErr("%s is out of range for %s", text, TypeName(t))
		case k == reflect.Float32 || k == reflect.Float64 || k == reflect.Complex64 || k == reflect.Complex128:
			f, _ := new(big.Float).SetString(text)
			x, _ := f.Float64()
			if math.IsInf(x, 0) { // an integer no float64 holds
				return out, overflowErr("%s is out of range for %s", text, TypeName(t))
			}
			if k == reflect.Complex64 || k == reflect.Complex128 {
				return out, setComplex(out, complex(x, 0))
			}
			return out, setFloat(out, x)
		}
	case tagFloat:
		x := d.r.f64()
		switch t.Kind() {
		case reflect.Float32, reflect.Float64:
			return out, setFloat(out, x)
		case reflect.Complex64, reflect.Complex128:
			return out, setComplex(out, complex(x, 0))
		}
	case tagComplex:
		re, im := d.r.f64(), d.r.f64()
		if t.Kind() == reflect.Complex64 || t.Kind() == reflect.Complex128 {
			return out, setComplex(out, complex(re, im))
		}
	case tagString:
		s := d.r.str()
		if t.Kind() == reflect.String {
			out.SetString(s)
			return out, nil
		}
	case tagBytes, tagBytesExtern:
		var b []byte
		if tag == tagBytes {
			b = d.r.bytes(int(d.r.u64()))
		} else {
			n := int(d.r.u64())
			b = externBytes(d.r.u64(), n)
		}
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
			s := reflect.MakeSlice(t, len(b), len(b))
			copy(s.Bytes(), b)
			return s, nil
		}
		if t.Kind() == reflect.Array && t.Elem().Kind() == reflect.Uint8 {
			if len(b) != t.Len() {
				return out, typeErr("expected %d bytes for %s, got %d", t.Len(), TypeName(t), len(b))
			}
			reflect.Copy(out, reflect.ValueOf(b))
			return out, nil
		}
	case tagArray, tagArrayExtern:
		dt := d.r.byte()
		n := int(d.r.u64())
		if int(dt) >= len(dtypeSize) || dt == 0 {
			return out, typeErr("unsupported array element type")
		}
		var raw []byte
		if tag == tagArray {
			raw = d.r.bytes(n * dtypeSize[dt])
		} else {
			raw = externBytes(d.r.u64(), n*dtypeSize[dt])
		}
		return d.array(t, dt, n, raw)
	case tagList:
		n := int(d.r.u64())
		return d.list(t, n)
	case tagMap:
		n := int(d.r.u64())
		switch t.Kind() {
		case reflect.Map:
			m := reflect.MakeMapWithSize(t, n)
			for i := 0; i < n; i++ {
				k, err := d.value(t.Key())
				if err != nil {
					return out, within("a key", err)
				}
				v, err := d.value(t.Elem())
				if err != nil {
					return out, within(fmt.Sprintf("key %v", k.Interface()), err)
				}
				m.SetMapIndex(k, v)
			}
			return m, nil
		case reflect.Struct:
			return out, d.fields(out, n)
		}
		d.skipPairs(n)
	case tagStruct:
		d.r.str() // the Python class name; fields are matched by name
		n := int(d.r.u64())
		if t.Kind() == reflect.Struct {
			return out, d.fields(out, n)
		}
		d.skipFieldPairs(n)
	case tagFunc:
		handle := int64(d.r.u64())
		if t.Kind() == reflect.Func {
			return d.calls.pythonFunc(t, handle), nil
		}
	default:
		return out, typeErr("unknown wire tag %#x", tag)
	}
	return out, d.mismatch(t, tag)
}

func setInt(out reflect.Value, x int64) *convError {
	t := out.Type()
	switch k := t.Kind(); {
	case k >= reflect.Int && k <= reflect.Int64:
		if out.OverflowInt(x) {
			return overflowErr("%d is out of range for %s", x, TypeName(t))
		}
		out.SetInt(x)
	case k >= reflect.Uint && k <= reflect.Uintptr:
		if x < 0 || out.OverflowUint(uint64(x)) {
			return overflowErr("%d is out of range for %s", x, TypeName(t))
		}
		out.SetUint(uint64(x))
	case k == reflect.Float32 || k == reflect.Float64:
		out.SetFloat(float64(x))
	case k == reflect.Complex64 || k == reflect.Complex128:
		return setComplex(out, complex(float64(x), 0))
	default:
		return typeErr("expected %s, got int", describeExpected(t))
	}
	return nil
}

func setUint(out reflect.Value, x uint64) *convError {
	t := out.Type()
	switch k := t.Kind(); {
	case k >= reflect.Int && k <= reflect.Int64:
		return overflowErr("%d is out of range for %s", x, TypeName(t))
	case k >= reflect.Uint && k <= reflect.Uintptr:
		if out.OverflowUint(x) {
			return overflowErr("%d is out of range for %s", x, TypeName(t))
		}
		out.SetUint(x)
	case k == reflect.Float32 || k == reflect.Float64:
		out.SetFloat(float64(x))
	case k == reflect.Complex64 || k == reflect.Complex128:
		return setComplex(out, complex(float64(x), 0))
	default:
		return typeErr("expected %s, got int", describeExpected(t))
	}
	return nil
}

func setFloat(out reflect.Value, x float64) *convError {
	if out.Kind() == reflect.Float32 && beyondFloat32(x) {
		return overflowErr("%g is out of range for %s", x, TypeName(out.Type()))
	}
	out.SetFloat(x)
	return nil
}

// setComplex range-checks both parts for complex64, as setFloat does for float32.
func setComplex(out reflect.Value, c complex128) *convError {
	if out.Kind() == reflect.Complex64 && (beyondFloat32(real(c)) || beyondFloat32(imag(c))) {
		return overflowErr("(%g%+gj) is out of range for %s", real(c), imag(c), TypeName(out.Type()))
	}
	out.SetComplex(c)
	return nil
}

func beyondFloat32(x float64) bool {
	return !math.IsInf(x, 0) && !math.IsNaN(x) && math.Abs(x) > math.MaxFloat32
}

func (d *decoder) list(t reflect.Type, n int) (reflect.Value, *convError) {
	var out reflect.Value
	switch t.Kind() {
	case reflect.Slice:
		out = reflect.MakeSlice(t, n, n)
	case reflect.Array:
		out = reflect.New(t).Elem()
		if n != t.Len() {
			d.skipValues(n)
			return out, typeErr("expected %d items for %s, got %d", t.Len(), TypeName(t), n)
		}
	default:
		d.skipValues(n)
		return reflect.New(t).Elem(), d.mismatch(t, tagList)
	}
	for i := 0; i < n; i++ {
		v, err := d.value(t.Elem())
		if err != nil {
			return out, within(fmt.Sprintf("item %d", i), err)
		}
		out.Index(i).Set(v)
	}
	return out, nil
}

// array copies a numeric buffer into a slice or array: in bulk when the
// element types match, element by element (with range checks) otherwise.
func (d *decoder) array(t reflect.Type, dt byte, n int, raw []byte) (reflect.Value, *convError) {
	var out reflect.Value
	switch t.Kind() {
	case reflect.Slice:
		if n > 0 && dtypeOf(t.Elem().Kind()) == dt {
			return copiedSlice(t, n, raw), nil
		}
		out = reflect.MakeSlice(t, n, n)
	case reflect.Array:
		out = reflect.New(t).Elem()
		if n != t.Len() {
			return out, typeErr("expected %d items for %s, got %d", t.Len(), TypeName(t), n)
		}
	default:
		return reflect.New(t).Elem(), d.mismatch(t, tagArray)
	}
	elem := t.Elem()
	if n > 0 && dtypeOf(elem.Kind()) == dt {
		dst := unsafe.Slice((*byte)(out.Index(0).Addr().UnsafePointer()), n*dtypeSize[dt])
		copy(dst, raw)
		return out, nil
	}
	size := dtypeSize[dt]
	for i := 0; i < n; i++ {
		cell := out.Index(i)
		p := unsafe.Pointer(&raw[i*size])
		var err *convError
		switch dt {
		case dtInt8:
			err = setInt(cell, int64(*(*int8)(p)))
		case dtInt16:
			err = setInt(cell, int64(*(*int16)(p)))
		case dtInt32:
			err = setInt(cell, int64(*(*int32)(p)))
		case dtInt64:
			err = setInt(cell, *(*int64)(p))
		case dtUint8:
			err = setUint(cell, uint64(*(*uint8)(p)))
		case dtUint16:
			err = setUint(cell, uint64(*(*uint16)(p)))
		case dtUint32:
			err = setUint(cell, uint64(*(*uint32)(p)))
		case dtUint64:
			err = setUint(cell, *(*uint64)(p))
		case dtFloat32, dtFloat64:
			var x float64
			if dt == dtFloat32 {
				x = float64(*(*float32)(p))
			} else {
				x = *(*float64)(p)
			}
			if k := cell.Kind(); k == reflect.Float32 || k == reflect.Float64 {
				err = setFloat(cell, x)
			} else if k == reflect.Complex64 || k == reflect.Complex128 {
				err = setComplex(cell, complex(x, 0))
			} else if k == reflect.Interface && cell.NumMethod() == 0 {
				cell.Set(reflect.ValueOf(x))
			} else {
				err = typeErr("expected %s, got float", describeExpected(cell.Type()))
			}
		case dtComplex64, dtComplex128:
			var c complex128
			if dt == dtComplex64 {
				c = complex128(*(*complex64)(p))
			} else {
				c = *(*complex128)(p)
			}
			if k := cell.Kind(); k == reflect.Complex64 || k == reflect.Complex128 {
				err = setComplex(cell, c)
			} else {
				err = typeErr("expected %s, got complex", describeExpected(cell.Type()))
			}
		case dtBool:
			if cell.Kind() == reflect.Bool {
				cell.SetBool(*(*byte)(p) != 0)
			} else {
				err = typeErr("expected %s, got bool", describeExpected(cell.Type()))
			}
		}
		if err != nil {
			return out, within(fmt.Sprintf("item %d", i), err)
		}
	}
	return out, nil
}

func dtypeOf(k reflect.Kind) byte {
	switch k {
	case reflect.Int8:
		return dtInt8
	case reflect.Int16:
		return dtInt16
	case reflect.Int32:
		return dtInt32
	case reflect.Int64, reflect.Int:
		return dtInt64
	case reflect.Uint8:
		return dtUint8
	case reflect.Uint16:
		return dtUint16
	case reflect.Uint32:
		return dtUint32
	case reflect.Uint64, reflect.Uint, reflect.Uintptr:
		return dtUint64
	case reflect.Float32:
		return dtFloat32
	case reflect.Float64:
		return dtFloat64
	case reflect.Complex64:
		return dtComplex64
	case reflect.Complex128:
		return dtComplex128
	case reflect.Bool:
		return dtBool
	}
	return 0
}

// fields fills a struct from n (name, value) pairs; unknown names are errors.
func (d *decoder) fields(out reflect.Value, n int) *convError {
	t := out.Type()
	for i := 0; i < n; i++ {
		if d.r.peek() != tagString {
			return typeErr("the keys for %s must be field names (strings)", TypeName(t))
		}
		d.r.byte()
		name := d.r.str()
		f, ok := t.FieldByName(name)
		if !ok || !f.IsExported() || len(f.Index) != 1 {
			d.skipValues(1)
			d.skipPairs(n - i - 1)
			return typeErr("%s has no exported field %q", TypeName(t), name)
		}
		v, err := d.value(f.Type)
		if err != nil {
			return within("field "+name, err)
		}
		out.Field(f.Index[0]).Set(v)
	}
	return nil
}

// natural decodes a value for an `any` target: int64, float64, string, []byte,
// []any, map[string]any (or map[any]any), a numeric slice, a struct as a map.
func (d *decoder) natural() (reflect.Value, *convError) {
	tag := d.r.peek()
	switch tag {
	case tagNil:
		d.r.byte()
		return reflect.Value{}, nil
	case tagFalse, tagTrue:
		return d.value(reflect.TypeFor[bool]())
	case tagInt:
		return d.value(reflect.TypeFor[int]())
	case tagUint:
		return d.value(reflect.TypeFor[uint64]())
	case tagFloat:
		return d.value(reflect.TypeFor[float64]())
	case tagComplex:
		return d.value(reflect.TypeFor[complex128]())
	case tagString:
		return d.value(reflect.TypeFor[string]())
	case tagBytes, tagBytesExtern:
		return d.value(reflect.TypeFor[[]byte]())
	case tagArray, tagArrayExtern:
		dt := d.r.buf[d.r.pos+1]
		return d.value(reflect.SliceOf(dtypeType(dt)))
	case tagList:
		return d.value(reflect.TypeFor[[]any]())
	case tagMap, tagStruct, tagMapColumns:
		return d.value(reflect.TypeFor[map[string]any]())
	}
	d.r.byte()
	return reflect.Value{}, typeErr("cannot bring a %s into an untyped Go value", tagNames[tag])
}

func dtypeType(dt byte) reflect.Type {
	switch dt {
	case dtInt8:
		return reflect.TypeFor[int8]()
	case dtInt16:
		return reflect.TypeFor[int16]()
	case dtInt32:
		return reflect.TypeFor[int32]()
	case dtInt64:
		return reflect.TypeFor[int64]()
	case dtUint8:
		return reflect.TypeFor[uint8]()
	case dtUint16:
		return reflect.TypeFor[uint16]()
	case dtUint32:
		return reflect.TypeFor[uint32]()
	case dtUint64:
		return reflect.TypeFor[uint64]()
	case dtFloat32:
		return reflect.TypeFor[float32]()
	case dtComplex64:
		return reflect.TypeFor[complex64]()
	case dtComplex128:
		return reflect.TypeFor[complex128]()
	case dtBool:
		return reflect.TypeFor[bool]()
	}
	return reflect.TypeFor[float64]()
}

// skip helpers keep the reader in step after an error deep inside a value.
func (d *decoder) skipValues(n int) {
	for i := 0; i < n; i++ {
		d.skip()
	}
}

func (d *decoder) skipPairs(n int) { d.skipValues(2 * n) }

func (d *decoder) skipFieldPairs(n int) { d.skipPairs(n) }

func (d *decoder) skip() {
	switch tag := d.r.byte(); tag {
	case tagInt, tagUint, tagFloat:
		d.r.u64()
	case tagFunc: // a callable no func value will own: Python may drop it
		released.add(int64(d.r.u64()))
	case tagComplex:
		d.r.u64()
		d.r.u64()
	case tagString, tagBytes, tagBigInt:
		d.r.bytes(int(d.r.u64()))
	case tagBytesExtern:
		d.r.u64()
		d.r.u64()
	case tagArray:
		dt := d.r.byte()
		n := int(d.r.u64())
		d.r.bytes(n * dtypeSize[dt])
	case tagArrayExtern:
		d.r.byte()
		d.r.u64()
		d.r.u64()
	case tagList:
		d.skipValues(int(d.r.u64()))
	case tagMap:
		d.skipPairs(int(d.r.u64()))
	case tagMapColumns:
		n := int(d.r.u64())
		d.column(n)
		d.column(n)
	case tagStruct:
		d.r.str()
		d.skipFieldPairs(int(d.r.u64()))
	}
}

// copiedSlice is a slice of type t (numeric elements, matching raw's layout)
// holding a copy of raw. append onto a nil []byte allocates without zeroing
// first (growslice), so the bulk copy is the only pass over the memory; a
// pointer-free allocation may hold any numeric element type.
func copiedSlice(t reflect.Type, n int, raw []byte) reflect.Value {
	buf := append([]byte(nil), raw...)
	out := reflect.New(t)
	*(*sliceHeader)(out.UnsafePointer()) = sliceHeader{unsafe.Pointer(unsafe.SliceData(buf)), n, n}
	return out.Elem()
}

type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}
