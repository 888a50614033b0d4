package ipgrt

// The slot entry points of scalar-only functions (templates/slot_export.go.tmpl):
// every argument and the result cross as one uint64 each (a float as its
// bits, an integer sign- or zero-extended, a bool as 0 or 1), so that one
// compiled caller on Python's side (go_bridge/templates/fastcall.c) calls any
// of them through the same C signature, without libffi.

import (
	"math"
	"unsafe"
)

// Slots views the caller's argument array (C memory, valid during the call).
func Slots(p unsafe.Pointer, n int) []uint64 {
	return unsafe.Slice((*uint64)(p), n)
}

// SlotFloat is the float64 whose bits a slot holds.
func SlotFloat(s uint64) float64 { return math.Float64frombits(s) }

// SlotBool is the bool a slot holds.
func SlotBool(s uint64) bool { return s != 0 }

// FloatSlot holds a float64's bits.
func FloatSlot(f float64) uint64 { return math.Float64bits(f) }

// BoolSlot holds a bool as 0 or 1.
func BoolSlot(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
