// The generic caller: compiled once per compiler and flags (cpp_ext/build.py),
// linked into every build whose bound functions take and return plain numbers.
// It makes the module from the build's table of C-ABI thunks
// (ipolyglot_abi.hpp), converting values with pybind11's own casters and
// explaining a call that does not fit with the messages the pybind11 bindings
// give (ipolyglot.hpp), so both paths behave alike; a new cell then compiles no
// pybind11 code at all.
#include <ipolyglot.hpp>
#include <ipolyglot_abi.hpp>

#include <cstring>
#include <vector>

namespace {
namespace py = pybind11;

using ipolyglot_abi::function;
using ipolyglot_abi::parameter;
using ipolyglot_abi::value_kind;

// Storage for one argument or result, whatever its kind.
union value_slot {
    bool b;
    short s;
    unsigned short us;
    int i;
    unsigned int ui;
    long l;
    unsigned long ul;
    long long ll;
    unsigned long long ull;
    float f;
    double d;
};

template <typename T> bool load_as(py::handle source, T &target) {
    py::detail::make_caster<T> caster;
    if (!caster.load(source, true)) return false;
    target = py::detail::cast_op<T>(caster);
    return true;
}

bool load(value_kind kind, py::handle source, value_slot &slot) {
    switch (kind) {
    case ipolyglot_abi::kind_bool: return load_as(source, slot.b);
    case ipolyglot_abi::kind_short: return load_as(source, slot.s);
    case ipolyglot_abi::kind_ushort: return load_as(source, slot.us);
    case ipolyglot_abi::kind_int: return load_as(source, slot.i);
    case ipolyglot_abi::kind_uint: return load_as(source, slot.ui);
    case ipolyglot_abi::kind_long: return load_as(source, slot.l);
    case ipolyglot_abi::kind_ulong: return load_as(source, slot.ul);
    case ipolyglot_abi::kind_longlong: return load_as(source, slot.ll);
    case ipolyglot_abi::kind_ulonglong: return load_as(source, slot.ull);
    case ipolyglot_abi::kind_float: return load_as(source, slot.f);
    case ipolyglot_abi::kind_double: return load_as(source, slot.d);
    case ipolyglot_abi::kind_void: break;
    }
    return false;
}

template <typename T> PyObject *cast_out(const T &value) {
    return py::detail::make_caster<T>::cast(value, py::return_value_policy::move, nullptr).ptr();
}

PyObject *result_object(value_kind kind, const value_slot &slot) {
    switch (kind) {
    case ipolyglot_abi::kind_void: Py_RETURN_NONE;
    case ipolyglot_abi::kind_bool: return cast_out(slot.b);
    case ipolyglot_abi::kind_short: return cast_out(slot.s);
    case ipolyglot_abi::kind_ushort: return cast_out(slot.us);
    case ipolyglot_abi::kind_int: return cast_out(slot.i);
    case ipolyglot_abi::kind_uint: return cast_out(slot.ui);
    case ipolyglot_abi::kind_long: return cast_out(slot.l);
    case ipolyglot_abi::kind_ulong: return cast_out(slot.ul);
    case ipolyglot_abi::kind_longlong: return cast_out(slot.ll);
    case ipolyglot_abi::kind_ulonglong: return cast_out(slot.ull);
    case ipolyglot_abi::kind_float: return cast_out(slot.f);
    case ipolyglot_abi::kind_double: return cast_out(slot.d);
    }
    Py_RETURN_NONE;
}

template <typename T> void check_as(const char *fn, const ipolyglot::param_info &info, py::handle value) {
    ipolyglot::check_argument<T>(fn, info, value);
}

void check(const char *fn, const parameter &param, py::handle value) {
    const ipolyglot::param_info info{param.name, param.cpp_type, param.expected, false};
    switch (param.kind) {
    case ipolyglot_abi::kind_bool: return check_as<bool>(fn, info, value);
    case ipolyglot_abi::kind_short: return check_as<short>(fn, info, value);
    case ipolyglot_abi::kind_ushort: return check_as<unsigned short>(fn, info, value);
    case ipolyglot_abi::kind_int: return check_as<int>(fn, info, value);
    case ipolyglot_abi::kind_uint: return check_as<unsigned int>(fn, info, value);
    case ipolyglot_abi::kind_long: return check_as<long>(fn, info, value);
    case ipolyglot_abi::kind_ulong: return check_as<unsigned long>(fn, info, value);
    case ipolyglot_abi::kind_longlong: return check_as<long long>(fn, info, value);
    case ipolyglot_abi::kind_ulonglong: return check_as<unsigned long long>(fn, info, value);
    case ipolyglot_abi::kind_float: return check_as<float>(fn, info, value);
    case ipolyglot_abi::kind_double: return check_as<double>(fn, info, value);
    case ipolyglot_abi::kind_void: return;
    }
}

// The arguments by parameter: positional ones, then keywords by name. A call
// that does not match raises what the pybind11 bindings' match_arguments says.
std::vector<PyObject *> matched(const function &fn, PyObject *const *args, std::size_t nargs, PyObject *kwnames) {
    const std::size_t arity = static_cast<std::size_t>(fn.arity);
    std::vector<PyObject *> given(arity, nullptr);
    if (nargs > arity)
        ipolyglot::raise_error(PyExc_TypeError, std::string(fn.name) + "() takes " + std::to_string(arity) + " argument" + (arity == 1 ? "" : "s") + " (" + std::to_string(nargs) + " given)");
    for (std::size_t i = 0; i < nargs; ++i) given[i] = args[i];
    const std::size_t nkw = kwnames ? static_cast<std::size_t>(PyTuple_GET_SIZE(kwnames)) : 0;
    for (std::size_t k = 0; k < nkw; ++k) {
        const char *key = PyUnicode_AsUTF8(PyTuple_GET_ITEM(kwnames, k));
        if (key == nullptr) throw py::error_already_set();
        std::size_t i = 0;
        while (i < arity && std::strcmp(key, fn.params[i].name) != 0) ++i;
        if (i == arity) ipolyglot::raise_error(PyExc_TypeError, std::string(fn.name) + "() got an unexpected keyword argument '" + key + "'");
        if (given[i]) ipolyglot::raise_error(PyExc_TypeError, std::string(fn.name) + "() got multiple values for argument '" + key + "'");
        given[i] = args[nargs + k];
    }
    for (std::size_t i = 0; i < arity; ++i)
        if (!given[i]) ipolyglot::raise_error(PyExc_TypeError, std::string(fn.name) + "() missing argument '" + fn.params[i].name + "'");
    return given;
}

[[noreturn]] void explain(const function &fn, const std::vector<PyObject *> &given) {
    for (int i = 0; i < fn.arity; ++i) check(fn.name, fn.params[i], given[static_cast<std::size_t>(i)]);
    ipolyglot::raise_error(PyExc_TypeError, std::string(fn.name) + "(): the arguments do not fit its C++ signature");
}

constexpr int most_parameters = 16;

PyObject *call_with(const function &fn, PyObject *const *args, std::size_t nargs, PyObject *kwnames) {
    value_slot slots[most_parameters];
    void *pointers[most_parameters];
    PyObject *const *ordered = args;
    std::vector<PyObject *> by_name;
    if (kwnames != nullptr || nargs != static_cast<std::size_t>(fn.arity)) {
        by_name = matched(fn, args, nargs, kwnames);
        ordered = by_name.data();
    }
    for (int i = 0; i < fn.arity; ++i) {
        if (!load(fn.params[i].kind, ordered[i], slots[i]))
            explain(fn, std::vector<PyObject *>(ordered, ordered + fn.arity));
        pointers[i] = &slots[i];
    }
    value_slot result{};
    std::exception_ptr error;
    if (fn.release_gil) {
        py::gil_scoped_release release;
        fn.call(pointers, &result, &error);
    } else {
        fn.call(pointers, &result, &error);
    }
    if (error) std::rethrow_exception(error);
    ipolyglot::raise_thread_error();
    return result_object(fn.result, result);
}

PyObject *call(PyObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames) {
    const auto &fn = *static_cast<const function *>(PyCapsule_GetPointer(self, nullptr));
    try {
        return call_with(fn, args, static_cast<std::size_t>(PyVectorcall_NARGS(nargsf)), kwnames);
    } catch (py::error_already_set &e) {
        e.restore();
    } catch (...) {
        py::detail::try_translate_exceptions();
    }
    return nullptr;
}

int add_functions(PyObject *module) {
    try {
        py::object name = py::reinterpret_borrow<py::object>(module).attr("__name__");
        const ipolyglot_abi::function_table &table = ipolyglot_generic_functions;
        for (int i = 0; i < table.count; ++i) {
            const function &fn = table.functions[i];
            // Never freed: a module's functions live as long as the process.
            auto *method = new PyMethodDef{fn.name, reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&call)), METH_FASTCALL | METH_KEYWORDS, fn.doc};
            py::object capsule = py::reinterpret_steal<py::object>(PyCapsule_New(const_cast<function *>(&fn), nullptr, nullptr));
            if (!capsule) throw py::error_already_set();
            py::object callable = py::reinterpret_steal<py::object>(PyCFunction_NewEx(method, capsule.ptr(), name.ptr()));
            if (!callable) throw py::error_already_set();
            if (PyModule_AddObjectRef(module, fn.name, callable.ptr()) != 0) throw py::error_already_set();
        }
        return 0;
    } catch (py::error_already_set &e) {
        e.restore();
    } catch (...) {
        py::detail::try_translate_exceptions();
    }
    return -1;
}

PyModuleDef_Slot module_slots[] = {{Py_mod_exec, reinterpret_cast<void *>(&add_functions)}, {0, nullptr}};
PyModuleDef module_definition = {PyModuleDef_HEAD_INIT, "ipolyglot_bind", nullptr, 0, nullptr, module_slots, nullptr, nullptr, nullptr};

}  // namespace

// The module's PyInit (the link names it PyInit_<module name>).
extern "C" __attribute__((visibility("default"))) PyObject *ipolyglot_generic_init() {
    return PyModuleDef_Init(&module_definition);
}
