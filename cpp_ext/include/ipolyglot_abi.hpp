// What a build's generic binding unit and the precompiled generic caller
// (ipolyglot_generic_caller.cpp) agree on. Free of pybind11 and Python, so a
// unit that includes it compiles in a fraction of a second: a function whose
// parameters and result are numbers, strings or vectors of numbers is reached
// through a C-ABI thunk described by a table, and only the generic caller,
// compiled once, knows Python.
#pragma once
#include <exception>
#include <string>
#include <vector>

namespace ipolyglot_abi {

// The types a generic function's parameters and result may have (by value or const reference).
enum value_kind : int {
    kind_void, kind_bool, kind_short, kind_ushort, kind_int, kind_uint, kind_long, kind_ulong,
    kind_longlong, kind_ulonglong, kind_float, kind_double,
    kind_string, kind_vector_int, kind_vector_uint, kind_vector_long, kind_vector_ulong,
    kind_vector_longlong, kind_vector_float, kind_vector_double,
};

// Calls the function with its arguments (args[i] points at a value of parameter i's
// kind, which the function may move from) and assigns its result; what it throws is left in `error` for the caller to raise.
using thunk = void (*)(void *const *args, void *result, std::exception_ptr *error) noexcept;

struct parameter {
    const char *name;
    value_kind kind;
    const char *cpp_type;  // as written in the cell (for messages)
    const char *expected;  // the Python type it takes (for messages)
};

struct function {
    const char *name;
    const char *doc;  // starts with the text signature, as pybind11's docstrings do here
    thunk call;
    value_kind result;
    int arity;
    const parameter *params;
    bool release_gil;
    bool numbers_only;  // every parameter and the result are numbers (or void): no allocation per call
};

struct function_table {
    int count;
    const function *functions;
};

}  // namespace ipolyglot_abi

// Defined by the generic binding unit of each build.
extern "C" const ipolyglot_abi::function_table ipolyglot_generic_functions;
