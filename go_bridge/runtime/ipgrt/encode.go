package ipgrt

// Encoding Go values into the wire format for Python.

import (
	"fmt"
	"reflect"
	"unsafe"
)

var errorType = reflect.TypeFor[error]()

func (w *writer) value(v reflect.Value, depth int) {
	if depth > 10000 {
		panic(fmt.Sprintf("value nested too deeply (a cycle of pointers?) at %s", TypeName(v.Type())))
	}
	switch v.Kind() {
	case reflect.Invalid:
		w.byte(tagNil)
	case reflect.Bool:
		if v.Bool() {
			w.byte(tagTrue)
		} else {
			w.byte(tagFalse)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		w.byte(tagInt)
		w.u64(uint64(v.Int()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if x := v.Uint(); x>>63 == 0 {
			w.byte(tagInt)
			w.u64(x)
		} else {
			w.byte(tagUint)
			w.u64(x)
		}
	case reflect.Float32, reflect.Float64:
		w.byte(tagFloat)
		w.f64(v.Float())
	case reflect.Complex64, reflect.Complex128:
		c := v.Complex()
		w.byte(tagComplex)
		w.f64(real(c))
		w.f64(imag(c))
	case reflect.String:
		w.byte(tagString)
		w.str(v.String())
	case reflect.Slice:
		elem := v.Type().Elem()
		if elem.Kind() == reflect.Uint8 {
			w.byte(tagBytes)
			w.u64(uint64(v.Len()))
			w.raw(v.Bytes())
			return
		}
		if dt := dtypeOf(elem.Kind()); dt != 0 && dt != dtBool {
			w.numericSlice(v, dt)
			return
		}
		w.list(v, depth)
	case reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			w.byte(tagBytes)
			w.u64(uint64(v.Len()))
			for i := 0; i < v.Len(); i++ {
				w.byte(byte(v.Index(i).Uint()))
			}
			return
		}
		w.list(v, depth)
	case reflect.Map:
		if w.encodeColumns(v) {
			return
		}
		w.byte(tagMap)
		w.u64(uint64(v.Len()))
		it := v.MapRange()
		for it.Next() {
			w.value(it.Key(), depth+1)
			w.value(it.Value(), depth+1)
		}
	case reflect.Struct:
		t := v.Type()
		w.byte(tagStruct)
		w.str(t.Name())
		count := 0
		for i := 0; i < t.NumField(); i++ {
			if t.Field(i).IsExported() {
				count++
			}
		}
		w.u64(uint64(count))
		for i := 0; i < t.NumField(); i++ {
			if f := t.Field(i); f.IsExported() {
				w.byte(tagString)
				w.str(f.Name)
				w.value(v.Field(i), depth+1)
			}
		}
	case reflect.Pointer:
		if v.IsNil() {
			w.byte(tagNil)
			return
		}
		w.value(v.Elem(), depth+1)
	case reflect.Interface:
		if v.IsNil() {
			w.byte(tagNil)
			return
		}
		if v.Type().Implements(errorType) && v.Elem().Type().Kind() != reflect.String {
			if err, ok := v.Interface().(error); ok {
				w.byte(tagString)
				w.str(err.Error())
				return
			}
		}
		w.value(v.Elem(), depth+1)
	default:
		panic(fmt.Sprintf("a %s cannot cross to Python", TypeName(v.Type())))
	}
}

// numericSlice writes a slice of numbers in bulk: inline, or as a C block of
// its own for Python's numpy to own (ownBulk, from bulkThreshold bytes on).
func (w *writer) numericSlice(v reflect.Value, dt byte) {
	var data []byte
	if v.Len() > 0 {
		data = unsafe.Slice((*byte)(v.Index(0).Addr().UnsafePointer()), v.Len()*dtypeSize[dt])
	}
	if w.ownBulk && len(data) >= bulkThreshold {
		w.byte(tagArrayOwned)
		w.byte(dt)
		w.u64(uint64(v.Len()))
		w.ownedRaw(data)
		return
	}
	w.byte(tagArray)
	w.byte(dt)
	w.u64(uint64(v.Len()))
	w.raw(data)
}

func (w *writer) list(v reflect.Value, depth int) {
	w.byte(tagList)
	w.u64(uint64(v.Len()))
	for i := 0; i < v.Len(); i++ {
		w.value(v.Index(i), depth+1)
	}
}
