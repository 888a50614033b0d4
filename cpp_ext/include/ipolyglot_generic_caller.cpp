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
#include <memory>
#include <string>
#include <vector>

namespace {
namespace py = pybind11;

using ipolyglot_abi::function;
using ipolyglot_abi::parameter;
using ipolyglot_abi::value_kind;

template <typename T> struct tag {
    using type = T;
};

// Calls visit(tag<T>{}) with the C++ type T of a kind (never kind_void).
template <typename Visit> decltype(auto) with_type(value_kind kind, Visit &&visit) {
    switch (kind) {
    case ipolyglot_abi::kind_bool: return visit(tag<bool>{});
    case ipolyglot_abi::kind_short: return visit(tag<short>{});
    case ipolyglot_abi::kind_ushort: return visit(tag<unsigned short>{});
    case ipolyglot_abi::kind_int: return visit(tag<int>{});
    case ipolyglot_abi::kind_uint: return visit(tag<unsigned int>{});
    case ipolyglot_abi::kind_long: return visit(tag<long>{});
    case ipolyglot_abi::kind_ulong: return visit(tag<unsigned long>{});
    case ipolyglot_abi::kind_longlong: return visit(tag<long long>{});
    case ipolyglot_abi::kind_ulonglong: return visit(tag<unsigned long long>{});
    case ipolyglot_abi::kind_float: return visit(tag<float>{});
    case ipolyglot_abi::kind_string: return visit(tag<std::string>{});
    case ipolyglot_abi::kind_vector_int: return visit(tag<std::vector<int>>{});
    case ipolyglot_abi::kind_vector_uint: return visit(tag<std::vector<unsigned int>>{});
    case ipolyglot_abi::kind_vector_long: return visit(tag<std::vector<long>>{});
    case ipolyglot_abi::kind_vector_ulong: return visit(tag<std::vector<unsigned long>>{});
    case ipolyglot_abi::kind_vector_longlong: return visit(tag<std::vector<long long>>{});
    case ipolyglot_abi::kind_vector_float: return visit(tag<std::vector<float>>{});
    case ipolyglot_abi::kind_vector_double: return visit(tag<std::vector<double>>{});
    case ipolyglot_abi::kind_double:
    case ipolyglot_abi::kind_void: break;
    }
    return visit(tag<double>{});
}

// Storage for one number, whatever its kind (functions of numbers only).
union number_slot {
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

// Storage for one value of any kind (functions with strings or vectors).
struct boxed {
    virtual ~boxed() = default;
    virtual void *get() = 0;
};

template <typename T> struct box final : boxed {
    T value{};
    void *get() override { return &value; }
};

std::unique_ptr<boxed> new_box(value_kind kind) {
    return with_type(kind, [](auto t) -> std::unique_ptr<boxed> { return std::unique_ptr<boxed>(new box<typename decltype(t)::type>()); });
}

// Loads a Python value into *target, a T of the kind, with pybind11's casters (as its bindings would).
bool load(value_kind kind, py::handle source, void *target) {
    return with_type(kind, [&](auto t) {
        using T = typename decltype(t)::type;
        py::detail::make_caster<T> caster;
        if (!caster.load(source, true)) return false;
        *static_cast<T *>(target) = py::detail::cast_op<T &&>(std::move(caster));
        return true;
    });
}

PyObject *result_object(value_kind kind, void *result) {
    if (kind == ipolyglot_abi::kind_void) Py_RETURN_NONE;
    return with_type(kind, [&](auto t) {
        using T = typename decltype(t)::type;
        return py::detail::make_caster<T>::cast(std::move(*static_cast<T *>(result)), py::return_value_policy::move, nullptr).ptr();
    });
}

void check(const char *fn, const parameter &param, py::handle value) {
    const ipolyglot::param_info info{param.name, param.cpp_type, param.expected, false};
    with_type(param.kind, [&](auto t) { ipolyglot::check_argument<typename decltype(t)::type>(fn, info, value); });
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

// The arguments in parameter order (positional ones as they came, when that is all there is).
struct ordered_arguments {
    PyObject *const *values;
    std::vector<PyObject *> by_name;
};

ordered_arguments in_order(const function &fn, PyObject *const *args, std::size_t nargs, PyObject *kwnames) {
    ordered_arguments ordered{args, {}};
    if (kwnames != nullptr || nargs != static_cast<std::size_t>(fn.arity)) {
        ordered.by_name = matched(fn, args, nargs, kwnames);
        ordered.values = ordered.by_name.data();
    }
    return ordered;
}

PyObject *run(const function &fn, void *const *pointers, void *result) {
    std::exception_ptr error;
    if (fn.release_gil) {
        py::gil_scoped_release release;
        fn.call(pointers, result, &error);
    } else {
        fn.call(pointers, result, &error);
    }
    if (error) std::rethrow_exception(error);
    ipolyglot::raise_thread_error();
    return result_object(fn.result, result);
}

// A function of numbers only: every value on the stack.
PyObject *call_with_numbers(const function &fn, PyObject *const *values) {
    number_slot slots[most_parameters];
    void *pointers[most_parameters];
    for (int i = 0; i < fn.arity; ++i) {
        if (!load(fn.params[i].kind, values[i], &slots[i])) explain(fn, std::vector<PyObject *>(values, values + fn.arity));
        pointers[i] = &slots[i];
    }
    number_slot result{};
    return run(fn, pointers, &result);
}

// A function with strings or vectors: each value in a box of its type.
PyObject *call_with_boxes(const function &fn, PyObject *const *values) {
    std::unique_ptr<boxed> boxes[most_parameters];
    void *pointers[most_parameters];
    for (int i = 0; i < fn.arity; ++i) {
        boxes[i] = new_box(fn.params[i].kind);
        if (!load(fn.params[i].kind, values[i], boxes[i]->get())) explain(fn, std::vector<PyObject *>(values, values + fn.arity));
        pointers[i] = boxes[i]->get();
    }
    std::unique_ptr<boxed> result = fn.result == ipolyglot_abi::kind_void ? nullptr : new_box(fn.result);
    return run(fn, pointers, result ? result->get() : nullptr);
}

PyObject *call_with(const function &fn, PyObject *const *args, std::size_t nargs, PyObject *kwnames) {
    ordered_arguments ordered = in_order(fn, args, nargs, kwnames);
    return fn.numbers_only ? call_with_numbers(fn, ordered.values) : call_with_boxes(fn, ordered.values);
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
