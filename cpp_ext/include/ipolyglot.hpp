// ipolyglot's additions to pybind11, included (precompiled) by every binding unit.
//
// * Contiguous numeric std::vector / std::array cross in bulk: any object that
//   exports a C-contiguous buffer of the exact element type (numpy arrays,
//   array.array, memoryview, bytes for 8-bit types) is copied with one memcpy;
//   other buffers and sequences fall back to pybind11's element-wise caster.
//   Numeric vectors come back as numpy arrays (one allocation, one memcpy).
// * C++ enums become real Python enum.Enum / enum.IntEnum classes, converted
//   by value; nothing is registered globally, so redefining an enum in a later
//   build never clashes with the earlier one.
// * A readable repr for bound structs, and the per-call boundary profiler hook.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/complex.h>
#include <pybind11/functional.h>

#include <array>
#include <atomic>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cxxabi.h>
#include <deque>
#include <limits>
#include <list>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <complex>
#include <exception>
#include <memory>
#include <mutex>
#include <pthread.h>
#include <string>
#include <type_traits>
#include <vector>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace ipolyglot {
namespace py = pybind11;

// The struct-module format character(s) a buffer of T may carry.
template <typename T> bool format_matches(const char *fmt, Py_ssize_t itemsize) {
    if (itemsize != static_cast<Py_ssize_t>(sizeof(T)) || fmt == nullptr) return false;
    while (*fmt == '@' || *fmt == '=' || *fmt == '<' || *fmt == '!' || *fmt == '>') {
        if (*fmt == '>' || *fmt == '!') return false;  // big-endian: not a bit copy
        ++fmt;
    }
    char c = fmt[0];
    if (c == '\0' || fmt[1] != '\0') return false;
    if (std::is_same<T, bool>::value) return c == '?';
    if (std::is_floating_point<T>::value) return (sizeof(T) == 4 && c == 'f') || (sizeof(T) == 8 && c == 'd');
    if (std::is_signed<T>::value) return c == 'b' || c == 'h' || c == 'i' || c == 'l' || c == 'q' || c == 'n';
    return c == 'B' || c == 'H' || c == 'I' || c == 'L' || c == 'Q' || c == 'N' || (sizeof(T) == 1 && c == 'c');
}

template <typename T> const char *numpy_dtype() {
    if (std::is_same<T, bool>::value) return "bool";
    if (std::is_floating_point<T>::value) return sizeof(T) == 4 ? "float32" : "float64";
    switch (sizeof(T)) {
        case 1: return std::is_signed<T>::value ? "int8" : "uint8";
        case 2: return std::is_signed<T>::value ? "int16" : "uint16";
        case 4: return std::is_signed<T>::value ? "int32" : "uint32";
        default: return std::is_signed<T>::value ? "int64" : "uint64";
    }
}

// Hands a matching C-contiguous buffer's elements to `take(data, n)`; false if
// the object has no such buffer (the caller then falls back to element-wise).
template <typename T, typename Take> bool load_buffer(py::handle src, Take take) {
    if (!PyObject_CheckBuffer(src.ptr()) || PyUnicode_Check(src.ptr())) return false;
    Py_buffer view;
    if (PyObject_GetBuffer(src.ptr(), &view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) != 0) {
        PyErr_Clear();
        return false;
    }
    bool ok = view.ndim <= 1 && format_matches<T>(view.format, view.itemsize);
    if (ok) ok = take(static_cast<const T *>(view.buf), static_cast<std::size_t>(view.len / view.itemsize));
    PyBuffer_Release(&view);
    return ok;
}

// Large copies go to transparent huge pages where the kernel offers them (as
// numpy does for its own arrays): a fresh 80 MB vector otherwise spends most
// of its copy time in page faults.
template <typename T> void reserve_for_copy(std::vector<T> &v, std::size_t n) {
    v.reserve(n);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    constexpr std::size_t huge = std::size_t(1) << 21;
    std::size_t bytes = n * sizeof(T);
    if (bytes >= 2 * huge) {
        auto begin = (reinterpret_cast<std::uintptr_t>(v.data()) + huge - 1) & ~(huge - 1);
        auto end = (reinterpret_cast<std::uintptr_t>(v.data()) + bytes) & ~(huge - 1);
        if (end > begin) madvise(reinterpret_cast<void *>(begin), end - begin, MADV_HUGEPAGE);
    }
#endif
}

// A new 1-d numpy array holding a copy of n elements.
template <typename T> py::handle to_numpy(const T *data, std::size_t n) {
    static py::object empty = py::module_::import("numpy").attr("empty");
    py::object arr = empty(n, numpy_dtype<T>());
    Py_buffer view;
    if (PyObject_GetBuffer(arr.ptr(), &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) != 0) throw py::error_already_set();
    if (n) std::memcpy(view.buf, data, n * sizeof(T));
    PyBuffer_Release(&view);
    return arr.release();
}

// Converts a Python enum member to and from a C++ enum by value.
template <typename E> struct enum_class_holder {
    static PyObject *&type() { static PyObject *t = nullptr; return t; }
};

inline std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch()).count();
}

// When the current profiled call began converting its arguments (per thread).
inline std::int64_t &call_start() { thread_local std::int64_t t = 0; return t; }

// A profiled function's parameter: loads like T, and the first one notes the time.
template <typename T, int I> struct timed { pybind11::detail::make_caster<T> *caster; };

template <typename T, int I> decltype(auto) arg(timed<T, I> &t) {
    return pybind11::detail::cast_op<T>(std::move(*t.caster));
}

// Times the user's function alone: declared after the GIL release, so the
// release and the re-acquire are not part of it.
struct stopwatch {
    std::int64_t &ns;
    std::int64_t started = now_ns();
    explicit stopwatch(std::int64_t &into) : ns(into) {}
    ~stopwatch() { ns = now_ns() - started; }
};

// The phases the last profiled call of this thread measured inside pybind11's
// dispatcher. The whole call is timed from Python (PROFILER.timed_entry),
// which reads them after its own clock stopped, so reading costs the call nothing.
struct call_phases { std::int64_t copy_in = 0, native = 0, copy_out = 0; bool fresh = false; };
inline call_phases &last_phases() { thread_local call_phases p; return p; }

inline void note_phases(std::int64_t copy_in, std::int64_t native, std::int64_t copy_out) {
    last_phases() = {copy_in, native, copy_out, true};
}

// Objects kept for the life of the process are handles (never released at
// exit, when Python is already gone).
inline py::handle phase_reader() {
    static py::handle reader = py::cpp_function([]() -> py::object {
        call_phases &p = last_phases();
        if (!p.fresh) return py::none();
        p.fresh = false;
        return py::make_tuple(p.copy_in, p.native, p.copy_out);
    }).release();
    return reader;
}

// Before a profiled (re)definition: the plain function again, so pybind11 adds an overload to it.
inline void untime_entry(py::object scope, const char *pyname) {
    if (!py::hasattr(scope, pyname)) return;
    py::object current = scope.attr(pyname);
    if (py::hasattr(current, "_ipolyglot_timed")) py::setattr(scope, pyname, current.attr("__wrapped__"));
}

// After it: the name reaches the function through an entry point that times the whole call.
inline void time_entry(py::object scope, const char *pyname, const char *profile_name, bool is_static) {
    static py::handle wrap = py::object(py::module_::import("ipolyglot.kernel.core.profiling").attr("PROFILER").attr("timed_entry")).release();
    py::object entry = wrap(scope.attr(pyname), "cpp", profile_name, phase_reader());
    if (is_static) entry = py::reinterpret_steal<py::object>(PyStaticMethod_New(entry.ptr()));
    py::setattr(scope, pyname, entry);
}

// "Name(field=repr, ...)" from the object's public data members.
inline std::string repr_fields(py::handle self, const char *name, std::initializer_list<const char *> fields) {
    std::string out = name;
    out += "(";
    bool first = true;
    for (const char *f : fields) {
        if (!first) out += ", ";
        first = false;
        out += f;
        out += "=";
        out += py::repr(self.attr(f)).cast<std::string>();
    }
    return out + ")";
}

// Each build is a new module whose classes are module-local. pybind11 would
// still let another module load our instances by C++ type name, reading them
// with *its* idea of the layout; after a struct is redefined that is wrong, so
// our types are never offered to other modules. Instead, where a bound struct
// is expected, an instance of an earlier build's struct of the same name is
// copied field by field (values cross by copy anyway); fields it lacks keep
// their defaults.
inline PyObject *convert_same_named(PyObject *obj, PyTypeObject *type) {
    py::handle target(reinterpret_cast<PyObject *>(type));
    py::handle source(reinterpret_cast<PyObject *>(Py_TYPE(obj)));
    if (source.ptr() == target.ptr() || !py::hasattr(source, "_ipolyglot_fields")) return nullptr;
    try {
        if (!source.attr("__name__").equal(target.attr("__name__"))) return nullptr;
        py::dict kwargs;
        for (py::handle field : target.attr("_ipolyglot_fields"))
            if (py::hasattr(obj, field)) kwargs[field] = py::handle(obj).attr(field);
        return target(**kwargs).release().ptr();
    } catch (py::error_already_set &) {
        return nullptr;
    }
}

template <typename T> void finish_class(py::handle cls, std::initializer_list<const char *> fields, bool copy_fields) {
    py::tuple names(fields.size());
    std::size_t i = 0;
    for (const char *f : fields) names[i++] = py::str(f);
    cls.attr("_ipolyglot_fields") = names;
    if (py::hasattr(cls, PYBIND11_MODULE_LOCAL_ID)) py::delattr(cls, PYBIND11_MODULE_LOCAL_ID);
    if (copy_fields) pybind11::detail::get_type_info(typeid(T))->implicit_conversions.push_back(&convert_same_named);
}

// Makes a Python enum class (enum.Enum for `enum class`, enum.IntEnum otherwise).
inline py::object make_enum(py::handle scope, const char *name, bool scoped, py::list members) {
    py::object base = py::module_::import("enum").attr(scoped ? "Enum" : "IntEnum");
    py::object cls = base(name, members);
    cls.attr("__module__") = scope.attr("__name__");
    scope.attr(name) = cls;
    return cls;
}
}  // namespace ipolyglot

namespace pybind11 { namespace detail {

// A Python number outside float's range is an error (as in Go), not a silent inf.
template <> class type_caster<float> {
public:
    bool load(handle src, bool convert) {
        type_caster<double> wide;
        if (!wide.load(src, convert)) return false;
        double v = static_cast<double>(wide);
        if (std::isfinite(v) && (v > FLT_MAX || v < -FLT_MAX)) return false;
        value = static_cast<float>(v);
        return true;
    }
    static handle cast(float src, return_value_policy, handle) { return PyFloat_FromDouble(src); }
    PYBIND11_TYPE_CASTER(float, io_name("typing.SupportsFloat", "float"));
};

template <typename Vector, typename T> struct ipolyglot_numeric_vector_caster {
    using base = list_caster<Vector, T>;
    bool load(handle src, bool convert) {
        // One pass: construct the vector straight from the buffer (no zero-fill first).
        bool bulk = ipolyglot::load_buffer<T>(src, [this](const T *data, std::size_t n) {
            value.clear();
            ipolyglot::reserve_for_copy(value, n);
            value.assign(data, data + n);
            return true;
        });
        if (bulk) return true;
        if (PyErr_Occurred()) throw error_already_set();
        base fallback;
        if (!fallback.load(src, convert)) return false;
        value = std::move(static_cast<Vector &>(fallback));
        return true;
    }
    template <typename V> static handle cast(V &&src, return_value_policy, handle) {
        return ipolyglot::to_numpy<T>(src.data(), src.size());
    }
    PYBIND11_TYPE_CASTER(Vector, io_name("collections.abc.Buffer | collections.abc.Sequence[float]", "numpy.ndarray"));
};

template <typename T, std::size_t N> struct ipolyglot_numeric_array_caster {
    using Array = std::array<T, N>;
    using base = array_caster<Array, T, false, N>;
    bool load(handle src, bool convert) {
        bool size_ok = true;
        bool bulk = ipolyglot::load_buffer<T>(src, [this, &size_ok](const T *data, std::size_t n) {
            size_ok = n == N;
            if (size_ok && n) std::memcpy(value.data(), data, n * sizeof(T));
            return size_ok;
        });
        if (bulk) return true;
        if (!size_ok) return false;
        base fallback;
        if (!fallback.load(src, convert)) return false;
        value = static_cast<Array &>(fallback);
        return true;
    }
    template <typename A> static handle cast(A &&src, return_value_policy, handle) {
        return ipolyglot::to_numpy<T>(src.data(), N);
    }
    PYBIND11_TYPE_CASTER(Array, io_name("collections.abc.Buffer | collections.abc.Sequence[float]", "numpy.ndarray"));
};

#define IPOLYGLOT_NUMERIC_CASTERS(T)                                                                     \
    template <> struct type_caster<std::vector<T>> : ipolyglot_numeric_vector_caster<std::vector<T>, T> {}; \
    template <std::size_t N> struct type_caster<std::array<T, N>> : ipolyglot_numeric_array_caster<T, N> {};

IPOLYGLOT_NUMERIC_CASTERS(float)
IPOLYGLOT_NUMERIC_CASTERS(double)
IPOLYGLOT_NUMERIC_CASTERS(signed char)
IPOLYGLOT_NUMERIC_CASTERS(unsigned char)
IPOLYGLOT_NUMERIC_CASTERS(short)
IPOLYGLOT_NUMERIC_CASTERS(unsigned short)
IPOLYGLOT_NUMERIC_CASTERS(int)
IPOLYGLOT_NUMERIC_CASTERS(unsigned int)
IPOLYGLOT_NUMERIC_CASTERS(long)
IPOLYGLOT_NUMERIC_CASTERS(unsigned long)
IPOLYGLOT_NUMERIC_CASTERS(long long)
IPOLYGLOT_NUMERIC_CASTERS(unsigned long long)
#undef IPOLYGLOT_NUMERIC_CASTERS

// A C++ enum <-> the Python enum class made for it by ipolyglot::make_enum.
template <typename E> struct ipolyglot_enum_caster {
    using U = typename std::underlying_type<E>::type;
    bool load(handle src, bool) {
        PyObject *cls = ipolyglot::enum_class_holder<E>::type();
        if (cls == nullptr || !isinstance(src, handle(cls))) return false;
        value = static_cast<E>(src.attr("value").cast<U>());
        return true;
    }
    static handle cast(E src, return_value_policy, handle) {
        PyObject *cls = ipolyglot::enum_class_holder<E>::type();
        return handle(cls)(static_cast<U>(src)).release();
    }
    PYBIND11_TYPE_CASTER(E, const_name("enum.Enum"));
};

template <typename T, int I> class type_caster<ipolyglot::timed<T, I>> {
    make_caster<T> inner;

public:
    bool load(handle src, bool convert) {
        if (I == 0) ipolyglot::call_start() = ipolyglot::now_ns();
        return inner.load(src, convert);
    }
    static constexpr auto name = make_caster<T>::name;
    template <typename U> using cast_op_type = ipolyglot::timed<T, I>;
    operator ipolyglot::timed<T, I>() { return {&inner}; }
};
}}  // namespace pybind11::detail

#define IPOLYGLOT_ENUM_CASTER(E) \
    namespace pybind11 { namespace detail { template <> struct type_caster<E> : ipolyglot_enum_caster<E> {}; }}

// Calls that fit no signature: pybind11 tries a function's overloads in order,
// and this one is registered last, so it runs only when every real overload
// refused the arguments (a successful call never reaches it). It names the
// first parameter that does not fit, as Go cells do.
namespace ipolyglot {
struct param_info {
    const char *name;
    const char *cpp_type;  // as written in the cell
    const char *expected;  // the Python type it takes
    bool has_default;
};

[[noreturn]] inline void raise_error(PyObject *type, const std::string &message) {
    PyErr_Clear();
    PyErr_SetString(type, message.c_str());
    throw py::error_already_set();
}

// Why a value does not load as a C++ type: an OverflowError for a number of
// the right kind out of range, a TypeError otherwise, naming the item of a
// container that does not fit ("item 2: 300 is out of range for int8_t"), as
// Go cells do. `type` is null when there is nothing more precise to say.
struct misfit {
    PyObject *type = nullptr;
    std::string message;
};

template <typename T> struct is_char_type
    : std::integral_constant<bool, std::is_same<T, char>::value || std::is_same<T, wchar_t>::value ||
                                       std::is_same<T, char16_t>::value || std::is_same<T, char32_t>::value> {};

template <typename T> using numeric_t = std::integral_constant<bool, std::is_arithmetic<T>::value && !is_char_type<T>::value>;

inline bool is_integer_value(py::handle value) {
    PyObject *v = value.ptr();
    return !PyBool_Check(v) && !PyFloat_Check(v) && (PyLong_Check(v) || PyIndex_Check(v));
}

// Whether a value that did not load is a number of the right kind, only too large.
template <typename T> bool out_of_range(py::handle value) {
    using U = py::detail::intrinsic_t<T>;
    if (std::is_same<U, bool>::value || !numeric_t<U>::value) return false;
    if (std::is_integral<U>::value) return is_integer_value(value);
    return is_integer_value(value) || PyFloat_Check(value.ptr());
}

// A number as Python shows it (numpy scalars as plain numbers), shortened when huge.
inline std::string shown_number(py::handle value) {
    std::string shown;
    try {
        if (PyFloat_Check(value.ptr())) shown = py::repr(py::float_(PyFloat_AsDouble(value.ptr()))).cast<std::string>();
        else shown = py::repr(py::reinterpret_steal<py::object>(PyNumber_Index(value.ptr()))).cast<std::string>();
    } catch (py::error_already_set &) {
        shown = py::repr(value).cast<std::string>();
    }
    if (shown.size() > 40) shown = shown.substr(0, 20) + "..." + " (" + std::to_string(shown.size()) + " digits)";
    return shown;
}

template <typename T> std::string number_name() {
    if (std::is_same<T, bool>::value) return "bool";
    if (std::is_floating_point<T>::value) return sizeof(T) == sizeof(float) ? "float" : sizeof(T) == sizeof(double) ? "double" : "long double";
    std::string bits = std::to_string(8 * sizeof(T));
    std::string name = (std::is_signed<T>::value ? "int" : "uint") + bits + "_t";
    if (std::is_integral<T>::value && sizeof(T) <= 4) {
        name += " (" + std::to_string(static_cast<long long>(std::numeric_limits<T>::min())) + ".." +
                std::to_string(static_cast<unsigned long long>(std::numeric_limits<T>::max())) + ")";
    }
    return name;
}

// The Python type a C++ type crosses as, for messages about items.
template <typename T, typename SFINAE = void> struct python_name {
    static std::string get() {
        if (const py::detail::type_info *info = py::detail::get_type_info(typeid(T))) return info->type->tp_name;
        int status = 0;
        std::unique_ptr<char, void (*)(void *)> demangled(abi::__cxa_demangle(typeid(T).name(), nullptr, nullptr, &status), std::free);
        return std::string("C++ ") + (status == 0 && demangled ? demangled.get() : typeid(T).name());
    }
};
template <typename T> struct python_name<T, py::detail::enable_if_t<numeric_t<T>::value>> {
    static std::string get() { return std::is_same<T, bool>::value ? "bool" : std::is_integral<T>::value ? "int" : "float"; }
};
template <typename C, typename Tr, typename A> struct python_name<std::basic_string<C, Tr, A>> {
    static std::string get() { return "str"; }
};
template <typename T> struct python_name<std::complex<T>> {
    static std::string get() { return "complex"; }
};

inline misfit type_misfit(const std::string &expected, py::handle value) {
    return {PyExc_TypeError, "expected " + expected + ", got " + Py_TYPE(value.ptr())->tp_name};
}

template <typename T, typename SFINAE = void> struct why_not {
    static misfit of(py::handle) { return {}; }
};

template <typename T> misfit explain_misfit(py::handle value) {
    return why_not<py::detail::intrinsic_t<T>>::of(value);
}

// Why an item did not load (it did not: the container's caster said so).
template <typename T> misfit item_misfit(py::handle item) {
    misfit inner = explain_misfit<T>(item);
    if (inner.type) return inner;
    return type_misfit(python_name<py::detail::intrinsic_t<T>>::get(), item);
}

inline misfit within(const std::string &where, misfit inner) {
    inner.message = where + ": " + inner.message;
    return inner;
}

template <typename T> struct why_not<T, py::detail::enable_if_t<numeric_t<T>::value>> {
    static misfit of(py::handle value) {
        if (py::detail::make_caster<T>().load(value, true)) return {};
        if (out_of_range<T>(value)) return {PyExc_OverflowError, shown_number(value) + " is out of range for " + number_name<T>()};
        return type_misfit(python_name<T>::get(), value);
    }
};

// A str that is not UTF-8 text: it holds a lone surrogate (left by bytes decoded
// with errors="surrogateescape"), which pybind11's string casters cannot encode.
inline misfit text_misfit(py::handle value) {
    if (!PyUnicode_Check(value.ptr())) return {};
    Py_ssize_t length = PyUnicode_GET_LENGTH(value.ptr());
    for (Py_ssize_t i = 0; i < length; ++i) {
        Py_UCS4 c = PyUnicode_READ_CHAR(value.ptr(), i);
        if (c < 0xD800 || c > 0xDFFF) continue;
        char code[8];
        std::snprintf(code, sizeof code, "U+%04X", static_cast<unsigned>(c));
        return {PyExc_ValueError, std::string(code) + " at index " + std::to_string(i) +
                                      " is not a character (a lone surrogate, left by text that was not valid UTF-8): "
                                      "a C++ string takes UTF-8 text or bytes"};
    }
    return {};
}

template <typename C, typename Tr, typename A> struct why_not<std::basic_string<C, Tr, A>> {
    static misfit of(py::handle value) { return text_misfit(value); }
};
#if defined(PYBIND11_HAS_STRING_VIEW)
template <typename C, typename Tr> struct why_not<std::basic_string_view<C, Tr>> {
    static misfit of(py::handle value) { return text_misfit(value); }
};
#endif

inline bool is_text(py::handle value) {
    return PyUnicode_Check(value.ptr()) || PyBytes_Check(value.ptr()) || PyByteArray_Check(value.ptr());
}

// The first item of a sequence (or set) that does not load as Item.
template <typename Item> misfit sequence_misfit(py::handle value, std::size_t expected_size = 0) {
    if (is_text(value) || !(PySequence_Check(value.ptr()) || PyAnySet_Check(value.ptr()))) return {};
    std::size_t i = 0;
    try {
        for (py::handle item : py::reinterpret_borrow<py::iterable>(value)) {
            if (!py::detail::make_caster<Item>().load(item, true)) return within("item " + std::to_string(i), item_misfit<Item>(item));
            ++i;
        }
    } catch (py::error_already_set &) {
        return {};
    }
    if (expected_size && i != expected_size)
        return {PyExc_TypeError, "expected " + std::to_string(expected_size) + " items, got " + std::to_string(i)};
    return {};
}

template <typename T, typename A> struct why_not<std::vector<T, A>> {
    static misfit of(py::handle value) { return sequence_misfit<T>(value); }
};
template <typename T, typename A> struct why_not<std::deque<T, A>> {
    static misfit of(py::handle value) { return sequence_misfit<T>(value); }
};
template <typename T, typename A> struct why_not<std::list<T, A>> {
    static misfit of(py::handle value) { return sequence_misfit<T>(value); }
};
template <typename T, std::size_t N> struct why_not<std::array<T, N>> {
    static misfit of(py::handle value) { return sequence_misfit<T>(value, N); }
};
template <typename T, typename C, typename A> struct why_not<std::set<T, C, A>> {
    static misfit of(py::handle value) { return sequence_misfit<T>(value); }
};
template <typename T, typename H, typename E, typename A> struct why_not<std::unordered_set<T, H, E, A>> {
    static misfit of(py::handle value) { return sequence_misfit<T>(value); }
};

template <typename K, typename V> misfit mapping_misfit(py::handle value) {
    if (!PyDict_Check(value.ptr())) return {};
    for (auto item : py::reinterpret_borrow<py::dict>(value)) {
        if (!py::detail::make_caster<K>().load(item.first, true)) return within("a key", item_misfit<K>(item.first));
        if (!py::detail::make_caster<V>().load(item.second, true))
            return within("key " + py::repr(item.first).cast<std::string>(), item_misfit<V>(item.second));
    }
    return {};
}

template <typename K, typename V, typename C, typename A> struct why_not<std::map<K, V, C, A>> {
    static misfit of(py::handle value) { return mapping_misfit<K, V>(value); }
};
template <typename K, typename V, typename H, typename E, typename A> struct why_not<std::unordered_map<K, V, H, E, A>> {
    static misfit of(py::handle value) { return mapping_misfit<K, V>(value); }
};

template <typename A, typename B> struct why_not<std::pair<A, B>> {
    static misfit of(py::handle value) {
        if (!PyTuple_Check(value.ptr()) && !PyList_Check(value.ptr())) return {};
        py::sequence items = py::reinterpret_borrow<py::sequence>(value);
        if (items.size() != 2) return {PyExc_TypeError, "expected 2 items, got " + std::to_string(items.size())};
        if (!py::detail::make_caster<A>().load(items[0], true)) return within("item 0", item_misfit<A>(items[0]));
        if (!py::detail::make_caster<B>().load(items[1], true)) return within("item 1", item_misfit<B>(items[1]));
        return {};
    }
};

#if defined(PYBIND11_HAS_OPTIONAL)
template <typename T> struct why_not<std::optional<T>> {
    static misfit of(py::handle value) {
        if (value.is_none()) return {};
        misfit inner = explain_misfit<T>(value);
        if (inner.type == PyExc_TypeError && inner.message.rfind("expected ", 0) == 0) return {};  // said as "T | None"
        return inner;
    }
};
template <typename T> struct python_name<std::optional<T>> {
    static std::string get() { return python_name<py::detail::intrinsic_t<T>>::get() + " | None"; }
};
#endif

// `where` is "f() parameter x (C++ type int): " or "Point.x (C++ type int): ".
template <typename T> [[noreturn]] void raise_misfit(const std::string &where, const char *expected, py::handle value) {
    if (out_of_range<T>(value)) raise_error(PyExc_OverflowError, where + shown_number(value) + " is out of range");
    misfit inner = explain_misfit<T>(value);
    if (inner.type && !numeric_t<py::detail::intrinsic_t<T>>::value) raise_error(inner.type, where + inner.message);
    raise_error(PyExc_TypeError, where + "expected " + expected + ", got " + Py_TYPE(value.ptr())->tp_name);
}

template <typename T> void check_argument(const char *fn, const param_info &param, py::handle value) {
    if (!value) return;
    py::detail::make_caster<T> caster;
    if (caster.load(value, true)) return;
    raise_misfit<T>(std::string(fn) + "() parameter " + param.name + " (C++ type " + param.cpp_type + "): ", param.expected, value);
}

// A public data member whose setter says why a value does not fit (pybind11's
// def_readwrite would say "(): incompatible function arguments").
template <typename Class, typename D, typename Scope>
void def_field(Scope &cls, const char *name, D Class::*member, const char *where, const char *cpp_type, const char *expected) {
    py::cpp_function get([member](const Class &self) -> const D & { return self.*member; }, py::is_method(cls));
    py::cpp_function set([member, where, cpp_type, expected](Class &self, py::handle value) {
        py::detail::make_caster<D> caster;
        if (!caster.load(value, true)) raise_misfit<D>(std::string(where) + " (C++ type " + cpp_type + "): ", expected, value);
        self.*member = py::detail::cast_op<const D &>(caster);
    }, py::is_method(cls));
    cls.def_property(name, get, set, py::return_value_policy::reference_internal);
}

template <std::size_t N> std::array<py::handle, N> match_arguments(const char *fn, const std::array<param_info, N> &params, const py::args &args, const py::kwargs &kwargs) {
    std::array<py::handle, N> given{};
    if (args.size() > N)
        raise_error(PyExc_TypeError, std::string(fn) + "() takes " + std::to_string(N) + " argument" + (N == 1 ? "" : "s") + " (" + std::to_string(args.size()) + " given)");
    for (std::size_t i = 0; i < args.size(); ++i) given[i] = args[i];
    for (auto item : kwargs) {
        std::string key = py::str(item.first);
        std::size_t i = 0;
        while (i < N && key != params[i].name) ++i;
        if (i == N) raise_error(PyExc_TypeError, std::string(fn) + "() got an unexpected keyword argument '" + key + "'");
        if (given[i]) raise_error(PyExc_TypeError, std::string(fn) + "() got multiple values for argument '" + key + "'");
        given[i] = item.second;
    }
    for (std::size_t i = 0; i < N; ++i)
        if (!given[i] && !params[i].has_default) raise_error(PyExc_TypeError, std::string(fn) + "() missing argument '" + params[i].name + "'");
    return given;
}

template <typename... Ts, std::size_t... I>
void check_arguments(const char *fn, const std::array<param_info, sizeof...(Ts)> &params, const std::array<py::handle, sizeof...(Ts)> &given, std::index_sequence<I...>) {
    (void)params;
    (void)given;
    int expand[] = {0, (check_argument<Ts>(fn, params[I], given[I]), 0)...};
    (void)expand;
}

template <typename... Ts>
[[noreturn]] void call_error(const char *fn, const std::array<param_info, sizeof...(Ts)> &params, const py::args &args, const py::kwargs &kwargs) {
    auto given = match_arguments(fn, params, args, kwargs);
    check_arguments<Ts...>(fn, params, given, std::index_sequence_for<Ts...>{});
    raise_error(PyExc_TypeError, std::string(fn) + "(): the arguments do not fit its C++ signature");
}

// pybind11 tries every overload without conversions first, so the last-resort
// overload is also reached by calls that only need one (an int for a double, an
// earlier build's struct): it calls the real overloads again, with conversions,
// and explains only when they refuse too.
template <typename Explain> py::object call_or_explain(const py::object &real, const py::args &args, const py::kwargs &kwargs, Explain explain) {
    try {
        return real(*args, **kwargs);
    } catch (py::error_already_set &e) {
        if (!e.matches(PyExc_TypeError) || std::string(e.what()).find("incompatible function arguments") == std::string::npos) throw;
    }
    explain();
    return py::none();
}

inline bool incompatible_arguments(const py::error_already_set &e) {
    return e.matches(PyExc_TypeError) && std::string(e.what()).find("incompatible") != std::string::npos;
}

// Methods and constructors: their last-resort overload calls the same overloads
// again (the public chain itself, not a private copy, to keep the binding unit
// small); reaching itself again then means "try the next overload", so the
// re-call goes on to the conversion pass and explains only when that refuses too.
inline PyObject *&retrying_now() {
    static thread_local PyObject *retrying = nullptr;
    return retrying;
}

template <typename Explain> py::object retry_or_explain(const py::object &real, const py::args &args, const py::kwargs &kwargs, Explain explain) {
    PyObject *&retrying = retrying_now();
    if (retrying == real.ptr()) {
        retrying = nullptr;
        throw py::reference_cast_error();  // pybind11: try the next overload
    }
    struct restore {
        PyObject *&slot;
        PyObject *outer;
        ~restore() { slot = outer; }
    } guard{retrying, retrying};
    retrying = real.ptr();
    try {
        return real(*args, **kwargs);
    } catch (py::error_already_set &e) {
        if (!incompatible_arguments(e)) throw;
    }
    retrying = guard.outer;
    explain();
    return py::none();
}

inline py::args without_self(const py::args &all) {
    return py::reinterpret_steal<py::args>(PyTuple_GetSlice(all.ptr(), 1, PY_SSIZE_T_MAX));
}

inline py::args with_self(py::detail::value_and_holder &self, const py::args &args) {
    py::tuple all(args.size() + 1);
    all[0] = py::handle(reinterpret_cast<PyObject *>(self.inst));
    for (std::size_t i = 0; i < args.size(); ++i) all[i + 1] = args[i];
    return py::reinterpret_steal<py::args>(all.release());
}

// A cell's own `ipolyglot_bind` registers into a scratch module whose names are
// then copied over: pybind11 would add a same-named function as an overload
// tried after the earlier one; here a later cell's definition replaces it.
inline void add_custom_bindings(py::module_ &m, const char *scratch_name, void (*bind)(py::module_ &)) {
    py::module_ scratch = m.def_submodule(scratch_name);
    bind(scratch);
    for (auto item : scratch.attr("__dict__").cast<py::dict>()) {
        std::string key = py::str(item.first);
        if (key.rfind("__", 0) != 0) m.attr(item.first) = item.second;
    }
    py::delattr(m, scratch_name);
}

[[noreturn]] inline void no_overload(const char *fn, const char *signatures, const py::args &args, const py::kwargs &kwargs) {
    std::string got;
    for (auto a : args) got += std::string(got.empty() ? "" : ", ") + Py_TYPE(a.ptr())->tp_name;
    for (auto item : kwargs) got += std::string(got.empty() ? "" : ", ") + py::str(item.first).cast<std::string>() + "=" + Py_TYPE(item.second.ptr())->tp_name;
    raise_error(PyExc_TypeError, std::string(fn) + "(): no overload takes (" + got + "); it has:\n" + signatures);
}
}  // namespace ipolyglot

// Python exceptions raised by a Python callable that C++ called on a thread of
// its own (a std::thread, say). On the thread that called into C++ they are
// ordinary C++ exceptions pybind11 turns back into Python ones. On a thread of
// C++'s own they are ordinary C++ exceptions too, which the thread may catch (a
// try block, std::async's future); but when nothing there catches one, C++
// would call std::terminate and end the process (the kernel, in-process).
// Instead that thread ends (its destructors run, as when a goroutine panics),
// and the exception is raised by the call into C++ that is running, or by the
// next one, when it returns to Python.
namespace ipolyglot {
struct thread_error_slot {
    std::mutex lock;
    std::unique_ptr<py::error_already_set> error;  // the first one not raised yet
    std::atomic<bool> pending{false};
};

// Never destroyed: a thread may still end after the interpreter has gone.
inline thread_error_slot &thread_errors() {
    static thread_error_slot *slot = new thread_error_slot();
    return *slot;
}

inline void keep_thread_error(const py::error_already_set &error) {
    thread_error_slot &slot = thread_errors();
    std::lock_guard<std::mutex> hold(slot.lock);
    if (!slot.error) slot.error.reset(new py::error_already_set(error));
    slot.pending.store(true, std::memory_order_release);
}

// With the GIL held: raises the exception a thread of C++'s own left, if any.
inline void raise_thread_error() {
    thread_error_slot &slot = thread_errors();
    if (!slot.pending.load(std::memory_order_acquire)) return;
    std::unique_ptr<py::error_already_set> error;
    {
        std::lock_guard<std::mutex> hold(slot.lock);
        error.swap(slot.error);
        slot.pending.store(false, std::memory_order_relaxed);
    }
    if (!error) return;
    py::error_already_set raised = *error;
    error.reset();
    if (py::hasattr(raised.value(), "add_note")) {
        try {
            raised.value().attr("add_note")("(raised by a Python callable that C++ called on a thread of its own; "
                                            "nothing there caught it, so that thread was ended)");
        } catch (py::error_already_set &) {
        }
    }
    throw raised;
}

inline bool unwinding() {
#if defined(__cpp_lib_uncaught_exceptions)
    return std::uncaught_exceptions() > 0;
#else
    return std::uncaught_exception();
#endif
}

// A pybind11::call_guard of every bound function (outside the GIL release, so
// it ends with the GIL held): the call raises what a thread of C++'s own left.
struct thread_errors_check {
    ~thread_errors_check() noexcept(false) {
        if (thread_errors().pending.load(std::memory_order_relaxed) && !unwinding()) raise_thread_error();
    }
};

#ifdef PYBIND11_HAS_TYPE_CASTER_STD_FUNCTION_SPECIALIZATIONS
namespace callbacks = py::detail::type_caster_std_function_specializations;

// Where std::terminate returns to when a callback's exception finds no handler.
struct thread_escape {
    std::jmp_buf env;
    thread_escape *outer;
};

inline thread_escape *&armed_escape() {
    static thread_local thread_escape *escape = nullptr;
    return escape;
}

inline std::terminate_handler &previous_terminate() {
    static std::terminate_handler handler = nullptr;
    return handler;
}

// std::terminate's handler: back to the callback when its exception is what
// found no handler (the stack is not unwound then); otherwise the usual one.
[[noreturn]] inline void escape_or_terminate() {
    if (thread_escape *escape = armed_escape()) std::longjmp(escape->env, 1);
    if (std::terminate_handler previous = previous_terminate()) previous();
    std::abort();
}

inline void install_escape() {
    static bool installed = [] {
        previous_terminate() = std::set_terminate(&escape_or_terminate);
        return true;
    }();
    (void)installed;
}

// Throws `error` on a thread of C++'s own; when nothing there catches it, keeps
// it for the call into C++ and ends the thread.
[[noreturn]] inline void throw_or_end_thread(const py::error_already_set &error) {
    install_escape();
    thread_escape escape;
    escape.outer = armed_escape();
    if (setjmp(escape.env) == 0) {
        armed_escape() = &escape;
        // Disarmed when a handler was found and the stack unwinds past this frame.
        struct disarm {
            thread_escape *outer;
            ~disarm() { armed_escape() = outer; }
        } unarm{escape.outer};
        throw error;
    }
    // std::terminate came back here: the throw found no handler, nothing was
    // unwound, and the thrown copy counts as caught; this releases it.
    armed_escape() = escape.outer;
    abi::__cxa_end_catch();
    keep_thread_error(error);
    pthread_exit(nullptr);  // unwinds this thread, running its destructors
}

// The C++ type a message names: as demangled, std::string as written.
template <typename T> std::string cpp_type_name() {
    if (std::is_same<T, std::string>::value) return "std::string";
    int status = 0;
    std::unique_ptr<char, void (*)(void *)> demangled(abi::__cxa_demangle(typeid(T).name(), nullptr, nullptr, &status), std::free);
    return status == 0 && demangled ? demangled.get() : typeid(T).name();
}

// A Python callback's result as the C++ type its std::function returns; one
// that does not convert is a TypeError (or OverflowError) named as a
// parameter's is: "callback result (C++ type int): expected int, got str".
template <typename Return> struct callback_result {
    static Return of(py::object result) {
        using Plain = py::detail::intrinsic_t<Return>;
        py::detail::make_caster<Return> caster;
        if (!caster.load(result, true)) {
            raise_misfit<Return>("callback result (C++ type " + cpp_type_name<Plain>() + "): ", python_name<Plain>::get().c_str(), result);
        }
        return py::detail::cast_op<Return>(std::move(caster));
    }
};
template <> struct callback_result<void> {
    static void of(py::object) {}
};

// What a Python callable becomes as a std::function (pybind11's, plus the above).
template <typename Return, typename... Args> struct callback : callbacks::func_wrapper_base {
    explicit callback(callbacks::func_handle &&hf) noexcept : callbacks::func_wrapper_base(std::move(hf)) {}
    Return operator()(Args... args) const {
        if (PyGILState_GetThisThreadState() != nullptr) {  // a thread Python knows
            py::gil_scoped_acquire acquire;
            return callback_result<Return>::of(hfunc.f(std::forward<Args>(args)...));
        }
        std::unique_ptr<py::error_already_set> error;
        {
            py::gil_scoped_acquire acquire;
            try {
                return callback_result<Return>::of(hfunc.f(std::forward<Args>(args)...));
            } catch (py::error_already_set &e) {
                error.reset(new py::error_already_set(e));
            } catch (py::builtin_exception &e) {  // the result did not convert
                e.set_error();
                error.reset(new py::error_already_set());
            }
        }
        throw_or_end_thread(*error);  // without the GIL
    }
};
#endif
}  // namespace ipolyglot

// The std::function types of a module's signatures get ipolyglot::callback.
#ifdef PYBIND11_HAS_TYPE_CASTER_STD_FUNCTION_SPECIALIZATIONS
#define IPOLYGLOT_CALLBACK(...)                                                                            \
    namespace pybind11 { namespace detail { namespace type_caster_std_function_specializations {          \
    template <> struct func_wrapper<__VA_ARGS__> : ::ipolyglot::callback<__VA_ARGS__> {                   \
        explicit func_wrapper(func_handle &&hf) noexcept : ::ipolyglot::callback<__VA_ARGS__>(std::move(hf)) {} \
    };                                                                                                       \
    }}}
#else
#define IPOLYGLOT_CALLBACK(...)
#endif
