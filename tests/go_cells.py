"""Go cell texts shared by the Go tests (identical text -> one build per run)."""

import os

# The Go side of the tests runs with the strictest cgo pointer checks.
GO_TEST_ENV = {"GOEXPERIMENT": os.environ.get("IPOLYGLOT_TEST_GOEXPERIMENT", "cgocheck2")}

TYPES_CELL = r'''%%go
import (
	"errors"
	"fmt"
	"sync"
	"time"
)

type Point struct {
	X, Y  float64
	Label string
}

type Shape struct {
	Name   string
	Points []Point
	Tags   map[string]int
	Origin *Point
}

func EchoBool(v bool) bool                                  { return v }
func EchoInt(v int) int                                     { return v }
func EchoInt8(v int8) int8                                  { return v }
func EchoInt16(v int16) int16                               { return v }
func EchoInt32(v int32) int32                               { return v }
func EchoInt64(v int64) int64                               { return v }
func EchoUint(v uint) uint                                  { return v }
func EchoUint8(v uint8) uint8                               { return v }
func EchoUint16(v uint16) uint16                            { return v }
func EchoUint32(v uint32) uint32                            { return v }
func EchoUint64(v uint64) uint64                            { return v }
func EchoFloat32(v float32) float32                         { return v }
func EchoFloat64(v float64) float64                         { return v }
func EchoComplex(v complex128) complex128                   { return v }
func EchoString(v string) string                            { return v }
func EchoBytes(v []byte) []byte                             { return v }
func EchoFloats(v []float64) []float64                      { return v }
func EchoInt32s(v []int32) []int32                          { return v }
func EchoUint8s(v []uint16) []uint16                        { return v }
func EchoComplexes(v []complex128) []complex128             { return v }
func EchoBools(v []bool) []bool                             { return v }
func EchoStrings(v []string) []string                       { return v }
func EchoArray(v [3]int) [3]int                             { return v }
func EchoMap(v map[string]int) map[string]int               { return v }
func EchoIntKeys(v map[int]string) map[int]string           { return v }
func EchoNested(v map[string][]float64) map[string][]float64 { return v }
func EchoGrid(v [][]int64) [][]int64                        { return v }
func EchoPoints(v []Point) []Point                          { return v }
func EchoShape(v Shape) Shape                               { return v }
func EchoPointPtr(p *Point) *Point                          { return p }
func EchoAny(v any) any                                     { return v }
func EchoInts(xs ...int) []int                              { return xs }
func EchoFloatMap(v map[string]float64) map[string]float64   { return v }
func EchoFloat32Map(v map[string]float32) map[string]float32 { return v }
func EchoFlags(v map[int32]bool) map[int32]bool             { return v }
func EchoInt64Map(v map[int64]int64) map[int64]int64         { return v }

func OddKeys(n int, nul bool) map[string]int {
	m := map[string]int{}
	for i := 0; i < n; i++ {
		if nul {
			m[fmt.Sprintf("k\x00%d", i)] = i
		} else {
			m[fmt.Sprintf("\xff%d", i)] = -i
		}
	}
	return m
}

func Scale(p Point, k float64) Point { return Point{p.X * k, p.Y * k, p.Label} }
func Split(s string) (string, int, bool) { return s + "!", len(s), s == "" }
func Norm2(p *Point) float64 {
	if p == nil {
		return -1
	}
	return p.X*p.X + p.Y*p.Y
}

func Div(a, b float64) (float64, error) {
	if b == 0 {
		return 0, errors.New("division by zero")
	}
	return a / b, nil
}

func Check(ok bool) error {
	if !ok {
		return fmt.Errorf("check failed: %v", ok)
	}
	return nil
}

func Boom(n int) int {
	var m map[string]int
	if n > 2 {
		m["x"] = n
	}
	return n
}

func BoomSlow(xs []float64) float64 {
	return xs[len(xs)]
}

func PanicInGoroutine() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		panic("goroutine exploded")
	}()
	wg.Wait()
}

func Apply(f func(float64) float64, xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

func ApplyConcurrently(f func(int) int, n int) int {
	results := make([]int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = f(i)
		}()
	}
	wg.Wait()
	total := 0
	for _, r := range results {
		total += r
	}
	return total
}

func Combine(name string, f func(string, int) (string, error)) (string, error) {
	return f(name, len(name))
}

func Mutate(xs []float64, m map[string]int, p *Point) {
	xs[0] = 99
	m["new"] = 1
	p.X = 99
}

func Window(ms int) (int64, int64) {
	start := time.Now()
	for time.Since(start) < time.Duration(ms)*time.Millisecond {
	}
	return start.UnixNano(), time.Now().UnixNano()
}

func Greet(name string) {
	fmt.Println("hello from Go,", name)
}

func Channel(c chan int) {}
'''
