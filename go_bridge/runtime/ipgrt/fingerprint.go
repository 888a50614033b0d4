package ipgrt

import "C"

import (
	"math"
	"reflect"
	"unsafe"
)

// A variable whose value a rebuild cannot carry (a sync.Mutex, a channel, an
// interface, ...) starts from its initializer in the new runtime. Python warns
// about that only when it loses something: when the variable's value differs
// from the one this runtime started with (after its initializers and init
// functions). Register takes a fingerprint of each such variable, and
// ipg_var_changed compares the variable's fingerprint now with it.
//
// The fingerprint covers the variable's own value: numbers, strings, struct
// fields (unexported ones too), array, slice and map elements, an interface's
// dynamic type and value; a pointer, channel or func counts by identity (and
// a channel by its length too). Pointers are not followed: what they reach may
// belong to goroutines still running (a server's connections), and is not
// read while they may write it.

const fnvPrime = 1099511628211

type fingerprint struct{ h uint64 }

func fingerprintOf(v reflect.Value) uint64 {
	f := fingerprint{h: 14695981039346656037}
	f.value(v)
	return f.h
}

func (f *fingerprint) word(x uint64) {
	f.h ^= x
	f.h *= fnvPrime
}

func (f *fingerprint) value(v reflect.Value) {
	f.word(uint64(v.Kind()))
	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			f.word(1)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		f.word(uint64(v.Int()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		f.word(v.Uint())
	case reflect.Float32, reflect.Float64:
		f.word(math.Float64bits(v.Float()))
	case reflect.Complex64, reflect.Complex128:
		c := v.Complex()
		f.word(math.Float64bits(real(c)))
		f.word(math.Float64bits(imag(c)))
	case reflect.String:
		s := v.String()
		f.word(uint64(len(s)))
		for i := 0; i < len(s); i++ {
			f.word(uint64(s[i]))
		}
	case reflect.Pointer, reflect.UnsafePointer:
		f.word(uint64(uintptr(v.UnsafePointer())))
	case reflect.Chan:
		f.word(uint64(uintptr(v.UnsafePointer())))
		if !v.IsNil() {
			f.word(uint64(v.Len()))
		}
	case reflect.Func:
		f.word(funcIdentity(v))
	case reflect.Interface:
		if v.IsNil() {
			return
		}
		e := v.Elem()
		f.value(reflect.ValueOf(e.Type().String()))
		f.value(e)
	case reflect.Slice:
		if v.IsNil() {
			return
		}
		f.word(uint64(v.Len()) + 1)
		for i := 0; i < v.Len(); i++ {
			f.value(v.Index(i))
		}
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			f.value(v.Index(i))
		}
	case reflect.Map:
		if v.IsNil() {
			return
		}
		f.word(uint64(v.Len()) + 1)
		var sum uint64 // entries in any order
		for it := v.MapRange(); it.Next(); {
			entry := fingerprint{h: 14695981039346656037}
			entry.value(it.Key())
			entry.value(it.Value())
			sum += entry.h
		}
		f.word(sum)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			f.value(v.Field(i))
		}
	}
}

// funcIdentity tells func values apart: the closure itself when the func is
// stored where it has an address, else its code.
func funcIdentity(v reflect.Value) uint64 {
	if v.IsNil() {
		return 0
	}
	if v.CanAddr() {
		return uint64(*(*uintptr)(unsafe.Pointer(v.UnsafeAddr())))
	}
	return uint64(v.Pointer())
}

// ipg_var_changed says whether a variable a rebuild cannot carry (named by
// its getter's id) holds something else than when this runtime started: 1 if
// it does, 0 if not, -1 for no such variable.
//
//export ipg_var_changed
func ipg_var_changed(get C.int) C.int {
	for _, v := range vars {
		if v.get != int(get) {
			continue
		}
		if !v.fingerprinted || fingerprintOf(reflect.ValueOf(v.Ptr).Elem()) != v.initial {
			return 1
		}
		return 0
	}
	return -1
}
