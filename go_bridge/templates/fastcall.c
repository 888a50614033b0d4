// The compiled caller of scalar Go functions (go_bridge/fastcall.py builds it
// once per machine and Python). A FastCall object is one bound Go function
// whose parameters and result are predeclared scalars: called with exactly
// its positional arguments of the exact Python types, it converts them to
// uint64 slots, calls the library's `ipg_slots_N` entry point with the GIL
// released, and boxes the result. cffi's ABI mode (libffi, a Python wrapper
// function) costs more than the cgo crossing itself.
//
// Any other call (keywords, a missing or extra argument, a value of another
// type, an int out of the parameter's range) goes to `generic`, the Python
// function that takes the generic entry point, whose errors name the
// parameter and its Go type. After a call, a nonzero `*pending` (a panic
// kept for this thread, a Retry, released callables) calls `check`, which
// raises what Go kept, or returns True when the call must be made again
// through the generic entry point.
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MAX_PARAMS 16  // fastcall.py's MAX_PARAMS

typedef uint64_t (*slots_fn)(uint64_t *slots);

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *dict;
    slots_fn fn;
    volatile int32_t *pending;
    PyObject *generic;
    PyObject *check;
    Py_ssize_t nparams;
    char params[MAX_PARAMS];  // one code per parameter (see fastcall.py's CODES)
    char result;              // the result's code, 'v' for none
} FastCall;

// The slot of an int parameter in [low, high]; 0 when `value` is no exact int in range.
static int int_slot(PyObject *value, long long low, long long high, uint64_t *slot) {
    if (!PyLong_CheckExact(value)) return 0;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || v < low || v > high) return 0;
    *slot = (uint64_t)v;
    return 1;
}

static int uint_slot(PyObject *value, unsigned long long high, uint64_t *slot) {
    if (!PyLong_CheckExact(value)) return 0;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow > 0) {
        unsigned long long u = PyLong_AsUnsignedLongLong(value);
        if (u == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        if (u > high) return 0;
        *slot = u;
        return 1;
    }
    if (overflow < 0 || v < 0 || (unsigned long long)v > high) return 0;
    *slot = (uint64_t)v;
    return 1;
}

static int float_slot(PyObject *value, int single, uint64_t *slot) {
    double d;
    if (PyFloat_CheckExact(value)) {
        d = PyFloat_AS_DOUBLE(value);
    } else if (PyLong_CheckExact(value)) {
        // Exactly representable ints only: one rounding, as Go's own conversion does.
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow || v > (1LL << 53) || v < -(1LL << 53)) return 0;
        d = (double)v;
    } else {
        return 0;
    }
    if (single && isfinite(d) && fabs(d) > FLT_MAX) return 0;  // Go's range check says why
    memcpy(slot, &d, sizeof d);
    return 1;
}

// One argument into its slot; 0 (no Python error set) when the generic path must take the call.
static int to_slot(char code, PyObject *value, uint64_t *slot) {
    switch (code) {
    case 'd': return float_slot(value, 0, slot);
    case 'f': return float_slot(value, 1, slot);
    case 'b': return int_slot(value, INT8_MIN, INT8_MAX, slot);
    case 'h': return int_slot(value, INT16_MIN, INT16_MAX, slot);
    case 'i': return int_slot(value, INT32_MIN, INT32_MAX, slot);
    case 'q': return int_slot(value, INT64_MIN, INT64_MAX, slot);
    case 'B': return uint_slot(value, UINT8_MAX, slot);
    case 'H': return uint_slot(value, UINT16_MAX, slot);
    case 'I': return uint_slot(value, UINT32_MAX, slot);
    case 'Q': return uint_slot(value, UINT64_MAX, slot);
    case '?':
        if (value != Py_True && value != Py_False) return 0;
        *slot = value == Py_True;
        return 1;
    }
    return 0;
}

static PyObject *from_slot(char code, uint64_t slot) {
    double d;
    switch (code) {
    case 'd':
    case 'f':
        memcpy(&d, &slot, sizeof d);
        return PyFloat_FromDouble(d);
    case 'b':
    case 'h':
    case 'i':
    case 'q':
        return PyLong_FromLongLong((long long)slot);
    case 'B':
    case 'H':
    case 'I':
    case 'Q':
        return PyLong_FromUnsignedLongLong(slot);
    case '?':
        return PyBool_FromLong(slot != 0);
    }
    Py_RETURN_NONE;
}

static PyObject *fast_call(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    FastCall *self = (FastCall *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    uint64_t slots[MAX_PARAMS];
    if (kwnames != NULL || nargs != self->nparams) goto generic;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        if (!to_slot(self->params[i], args[i], &slots[i])) goto generic;
    }
    uint64_t result;
    Py_BEGIN_ALLOW_THREADS
    result = self->fn(slots);
    Py_END_ALLOW_THREADS
    if (*self->pending) {
        PyObject *retry = PyObject_CallNoArgs(self->check);
        if (retry == NULL) return NULL;
        int again = PyObject_IsTrue(retry);
        Py_DECREF(retry);
        if (again < 0) return NULL;
        if (again) goto generic;
    }
    return from_slot(self->result, result);
generic:
    return PyObject_Vectorcall(self->generic, args, nargsf, kwnames);
}

static PyObject *fast_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    unsigned long long fn, pending;
    const char *params, *result;
    PyObject *generic, *check;
    static char *names[] = {"entry", "params", "result", "pending", "generic", "check", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "KssKOO:FastCall", names, &fn, &params, &result, &pending, &generic, &check))
        return NULL;
    size_t n = strlen(params);
    if (n > MAX_PARAMS || strlen(result) != 1 || !fn || !pending) {
        PyErr_SetString(PyExc_ValueError, "FastCall: bad entry point, codes or pending counter");
        return NULL;
    }
    FastCall *self = (FastCall *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->vectorcall = fast_call;
    self->fn = (slots_fn)(uintptr_t)fn;
    self->pending = (volatile int32_t *)(uintptr_t)pending;
    self->nparams = (Py_ssize_t)n;
    memcpy(self->params, params, n);
    self->result = result[0];
    Py_INCREF(generic);
    self->generic = generic;
    Py_INCREF(check);
    self->check = check;
    return (PyObject *)self;
}

static int fast_traverse(FastCall *self, visitproc visit, void *arg) {
    Py_VISIT(self->dict);
    Py_VISIT(self->generic);
    Py_VISIT(self->check);
    return 0;
}

static int fast_clear(FastCall *self) {
    Py_CLEAR(self->dict);
    Py_CLEAR(self->generic);
    Py_CLEAR(self->check);
    return 0;
}

static void fast_dealloc(FastCall *self) {
    PyObject_GC_UnTrack(self);
    fast_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *fast_generic(FastCall *self, void *closure) {
    (void)closure;
    Py_INCREF(self->generic);
    return self->generic;
}

static PyGetSetDef fast_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {"generic", (getter)fast_generic, NULL, "the Python function of the generic entry point", NULL},
    {NULL},
};

static PyTypeObject FastCallType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ipolyglot_fastcall.FastCall",
    .tp_doc = "A scalar Go function called through its slot entry point.",
    .tp_basicsize = sizeof(FastCall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = fast_new,
    .tp_dealloc = (destructor)fast_dealloc,
    .tp_traverse = (traverseproc)fast_traverse,
    .tp_clear = (inquiry)fast_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(FastCall, vectorcall),
    .tp_dictoffset = offsetof(FastCall, dict),
    .tp_getset = fast_getset,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, .m_name = "ipolyglot_fastcall", .m_size = -1};

PyMODINIT_FUNC PyInit_ipolyglot_fastcall(void) {
    if (PyType_Ready(&FastCallType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&FastCallType);
    if (PyModule_AddObject(m, "FastCall", (PyObject *)&FastCallType) < 0) {
        Py_DECREF(&FastCallType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
