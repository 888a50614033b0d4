// The shared-memory lane of a worker's main connection (kernel/fast_channel.py builds it
// once per machine and Python). Both processes map one page; a scalar call (float, int and
// bool arguments) is posted there by the kernel and answered there by the worker while both
// spin, so a call in a loop costs no system call and no wake-up of a sleeping CPU. A wake-up
// is what a pipe round trip pays, and on a virtual machine whose idle vCPUs halt it costs tens
// of microseconds whenever the two processes sit on different CPUs.
//
// Spinning is bounded: the worker spins for the next call for `spin_ns` after each reply, the
// kernel for a reply as long; then each goes back to the pipe, which stays the connection
// proper (its end of stream is how the kernel learns of the worker's death). The lane only
// carries what both sides agree on through two words, each changed by compare-and-swap:
//
//   worker_state: BLOCKED (the worker reads the pipe), SPINNING, POSTED (a call is in the
//                 page), BUSY (the worker runs it), IN_PYTHON (the worker's Python code
//                 finishes it), LEAVE (the kernel wrote a request on the pipe: go read it)
//   reply_state:  PENDING, IN_PAGE (the result is in the page), ON_PIPE (the reply comes on
//                 the pipe: the kernel gave up spinning, or the worker needed the pipe)
//
// Everything that is not a scalar call answered by a scalar result (an exception, another
// result, a profiled function, a callback the call makes to the kernel, an interrupt) leaves
// the lane for the pipe and the general protocol (kernel/worker_protocol.py).
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGUMENTS 16
#define PAGE_BYTES 4096
#define STDERR_PENDING 1u

enum { BLOCKED, SPINNING, POSTED, BUSY, IN_PYTHON, LEAVE };
enum { PENDING, IN_PAGE, ON_PIPE };
enum { FLOAT_VALUE, INT_VALUE, BOOL_VALUE, NONE_VALUE };

typedef struct {
    _Atomic uint32_t worker_state;
    uint32_t count;
    uint64_t request_id;
    uint64_t handle;
    uint8_t kinds[MAX_ARGUMENTS];
    uint64_t slots[MAX_ARGUMENTS];
    char request_end[0] __attribute__((aligned(64)));
    _Atomic uint32_t reply_state;
    uint32_t reply_kind;
    uint32_t reply_flags;
    uint64_t reply_value;
} Page;

_Static_assert(sizeof(Page) <= PAGE_BYTES, "the lane fits one page");

static inline uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline int swap(_Atomic uint32_t *word, uint32_t from, uint32_t to) {
    return atomic_compare_exchange_strong_explicit(word, &from, to, memory_order_acq_rel, memory_order_acquire);
}

// ---------------------------------------------------------------------------------------------
// Lane: one mapped page, seen by the kernel (callers) or by the worker (serve).

typedef struct {
    PyObject_HEAD
    Page *page;
    uint64_t spin_ns;
    unsigned long main_thread;  // the kernel's main thread: only its calls use the lane
    uint64_t next_id;
    uint64_t answered;  // kernel: calls answered in the page
    int closed;
    PyObject *finish;     // kernel: finish(proxy, request_id, mark, interrupted, started_ns) on the pipe
    PyObject *released;   // kernel: the codec's list of released handles (sent with the next pipe request)
    PyObject *stderr_tee; // kernel: the tee of the worker's stderr (total, lock, dump.held, settle())
} Lane;

static PyObject *str_total, *str_lock, *str_locked, *str_dump, *str_held, *str_settle;

static int Lane_init(Lane *self, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"fd", "spin_ns", "main_thread", NULL};
    int fd;
    unsigned long long spin_ns;
    unsigned long main_thread = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iK|k", names, &fd, &spin_ns, &main_thread)) return -1;
    void *mapped = mmap(NULL, PAGE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mapped == MAP_FAILED) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    self->page = (Page *)mapped;
    self->spin_ns = spin_ns;
    self->main_thread = main_thread;
    self->next_id = 0;
    return 0;
}

static int Lane_traverse(Lane *self, visitproc visit, void *arg) {
    Py_VISIT(self->finish);
    Py_VISIT(self->released);
    Py_VISIT(self->stderr_tee);
    return 0;
}

static int Lane_clear(Lane *self) {
    Py_CLEAR(self->finish);
    Py_CLEAR(self->released);
    Py_CLEAR(self->stderr_tee);
    return 0;
}

static void Lane_dealloc(Lane *self) {
    PyObject_GC_UnTrack(self);
    Lane_clear(self);
    if (self->page) munmap(self->page, PAGE_BYTES);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Lane_attach(Lane *self, PyObject *args) {
    PyObject *finish, *released, *tee;
    if (!PyArg_ParseTuple(args, "OOO", &finish, &released, &tee)) return NULL;
    Py_XSETREF(self->finish, Py_NewRef(finish));
    Py_XSETREF(self->released, Py_NewRef(released));
    Py_XSETREF(self->stderr_tee, Py_NewRef(tee));
    Py_RETURN_NONE;
}

static PyObject *Lane_close(Lane *self, PyObject *unused) {
    self->closed = 1;
    Py_RETURN_NONE;
}

// Kernel: a request was written on the pipe; a spinning worker goes to read it.
static PyObject *Lane_ring(Lane *self, PyObject *unused) {
    uint32_t spinning = SPINNING;
    if (!self->closed)
        atomic_compare_exchange_strong_explicit(&self->page->worker_state, &spinning, LEAVE, memory_order_seq_cst, memory_order_seq_cst);
    Py_RETURN_NONE;
}

// ---------------------------------------------------------------------------------------------
// The kernel's side: a Caller is one function of the worker, called through the lane when it can.

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    Lane *lane;
    uint64_t handle;
    PyObject *proxy;  // the function's proxy: every call the lane does not take goes to it
} Caller;

static PyObject *fall_back(Caller *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    return PyObject_Vectorcall(self->proxy, args, nargsf, kwnames);
}

// The slot and kind of one argument; 0 when it is not a float, an int within int64 or a bool.
static int encode(PyObject *value, uint64_t *slot, uint8_t *kind) {
    if (PyFloat_CheckExact(value)) {
        double d = PyFloat_AS_DOUBLE(value);
        memcpy(slot, &d, sizeof d);
        *kind = FLOAT_VALUE;
        return 1;
    }
    if (PyBool_Check(value)) {
        *slot = value == Py_True;
        *kind = BOOL_VALUE;
        return 1;
    }
    if (PyLong_CheckExact(value)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow || (v == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return 0;
        }
        *slot = (uint64_t)v;
        *kind = INT_VALUE;
        return 1;
    }
    return 0;
}

static PyObject *decode(uint32_t kind, uint64_t slot) {
    switch (kind) {
    case FLOAT_VALUE: {
        double d;
        memcpy(&d, &slot, sizeof d);
        return PyFloat_FromDouble(d);
    }
    case INT_VALUE: return PyLong_FromLongLong((long long)slot);
    case BOOL_VALUE: return PyBool_FromLong(slot != 0);
    default: Py_RETURN_NONE;
    }
}

// Whether the kernel's stderr tee holds text the call wrote that has not been shown yet.
static int stderr_unsettled(PyObject *tee, uint32_t flags) {
    if (flags & STDERR_PENDING) return 1;
    PyObject *lock = PyObject_GetAttr(tee, str_lock);
    if (!lock) return -1;
    PyObject *locked = PyObject_CallMethodNoArgs(lock, str_locked);
    Py_DECREF(lock);
    if (!locked) return -1;
    int busy = PyObject_IsTrue(locked);
    Py_DECREF(locked);
    if (busy) return busy;
    PyObject *dump = PyObject_GetAttr(tee, str_dump);
    if (!dump) return -1;
    PyObject *held = PyObject_GetAttr(dump, str_held);
    Py_DECREF(dump);
    if (!held) return -1;
    int holding = PyObject_IsTrue(held);
    Py_DECREF(held);
    return holding;
}

static PyObject *Caller_vectorcall(Caller *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Lane *lane = self->lane;
    Py_ssize_t count = PyVectorcall_NARGS(nargsf);
    if (kwnames || count > MAX_ARGUMENTS || lane->closed || lane->spin_ns == 0 || !lane->finish
        || PyThread_get_thread_ident() != lane->main_thread
        || (lane->released && PyList_GET_SIZE(lane->released) > 0))
        return fall_back(self, args, nargsf, kwnames);
    Page *page = lane->page;
    uint64_t slots[MAX_ARGUMENTS];
    uint8_t kinds[MAX_ARGUMENTS];
    for (Py_ssize_t i = 0; i < count; i++)
        if (!encode(args[i], &slots[i], &kinds[i])) return fall_back(self, args, nargsf, kwnames);
    if (atomic_load_explicit(&page->worker_state, memory_order_acquire) != SPINNING)
        return fall_back(self, args, nargsf, kwnames);

    PyObject *tee = lane->stderr_tee;
    PyObject *mark = tee != Py_None ? PyObject_GetAttr(tee, str_total) : PyLong_FromLong(0);
    if (!mark) return NULL;
    uint64_t started = now_ns();
    uint64_t request_id = (1ull << 62) | ++lane->next_id;  // apart from the pipe's ids
    page->count = (uint32_t)count;
    page->request_id = request_id;
    page->handle = self->handle;
    memcpy(page->kinds, kinds, (size_t)count);
    memcpy(page->slots, slots, sizeof(uint64_t) * (size_t)count);
    atomic_store_explicit(&page->reply_state, PENDING, memory_order_relaxed);
    if (!swap(&page->worker_state, SPINNING, POSTED)) {  // the worker stopped spinning meanwhile
        Py_DECREF(mark);
        return fall_back(self, args, nargsf, kwnames);
    }

    uint32_t state;
    uint64_t deadline = started + lane->spin_ns;
    Py_BEGIN_ALLOW_THREADS
    for (unsigned spins = 1;; spins++) {
        state = atomic_load_explicit(&page->reply_state, memory_order_acquire);
        if (state != PENDING) break;
        if (spins % 16 == 0) {
            if (now_ns() >= deadline) {
                if (swap(&page->reply_state, PENDING, ON_PIPE)) state = ON_PIPE;
                else state = atomic_load_explicit(&page->reply_state, memory_order_acquire);
                break;
            }
            sched_yield();  // the worker may be waiting for this CPU
        } else {
            relax();
        }
    }
    Py_END_ALLOW_THREADS

    // Here the reply is in the page or comes on the pipe (never PENDING: the deadline swapped it).
    int interrupted = 0;
    if (PyErr_CheckSignals() < 0) {  // Ctrl-C while spinning: the pipe path asks the worker to stop
        PyErr_Clear();
        interrupted = 1;
    }
    if (state == IN_PAGE && !interrupted) {
        lane->answered++;
        PyObject *value = decode(page->reply_kind, page->reply_value);
        uint32_t flags = page->reply_flags;
        Py_DECREF(mark);
        if (!value || tee == Py_None) return value;
        int unsettled = stderr_unsettled(tee, flags);
        if (unsettled != 0) {
            PyObject *settled = unsettled > 0 ? PyObject_CallMethodNoArgs(tee, str_settle) : NULL;
            if (!settled) {
                Py_DECREF(value);
                return NULL;
            }
            Py_DECREF(settled);
        }
        return value;
    }
    if (state == IN_PAGE) {  // answered, and interrupted meanwhile: the answer stands, the interrupt too
        PyObject *value = decode(page->reply_kind, page->reply_value);
        Py_DECREF(mark);
        if (value) {
            Py_DECREF(value);
            PyErr_SetNone(PyExc_KeyboardInterrupt);
        }
        return NULL;
    }
    return PyObject_CallFunction(lane->finish, "OKNiK", self->proxy, (unsigned long long)request_id, mark,
                                 interrupted, (unsigned long long)started);
}

static PyObject *Lane_caller(Lane *self, PyObject *args);

static int Caller_traverse(Caller *self, visitproc visit, void *arg) {
    Py_VISIT(self->lane);
    Py_VISIT(self->proxy);
    return 0;
}

static int Caller_clear(Caller *self) {
    Py_CLEAR(self->lane);
    Py_CLEAR(self->proxy);
    return 0;
}

static void Caller_dealloc(Caller *self) {
    PyObject_GC_UnTrack(self);
    Caller_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Caller_get_proxy(Caller *self, void *unused) { return Py_NewRef(self->proxy); }

static PyGetSetDef Caller_getset[] = {
    {"proxy", (getter)Caller_get_proxy, NULL, "the function's proxy, which every other call goes to", NULL},
    {NULL},
};

static PyTypeObject CallerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ipolyglot_fast_channel.Caller",
    .tp_doc = "A worker's function, called through the shared-memory lane when it can, else through its proxy.",
    .tp_basicsize = sizeof(Caller),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Caller, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_traverse = (traverseproc)Caller_traverse,
    .tp_clear = (inquiry)Caller_clear,
    .tp_dealloc = (destructor)Caller_dealloc,
    .tp_getset = Caller_getset,
};

static PyObject *Lane_caller(Lane *self, PyObject *args) {
    unsigned long long handle;
    PyObject *proxy;
    if (!PyArg_ParseTuple(args, "KO", &handle, &proxy)) return NULL;
    Caller *caller = PyObject_GC_New(Caller, &CallerType);
    if (!caller) return NULL;
    caller->vectorcall = (vectorcallfunc)Caller_vectorcall;
    caller->lane = (Lane *)Py_NewRef(self);
    caller->handle = handle;
    caller->proxy = Py_NewRef(proxy);
    PyObject_GC_Track(caller);
    return (PyObject *)caller;
}

// ---------------------------------------------------------------------------------------------
// The worker's side.

// Serve calls posted in the page until the kernel stops posting: returns None when the worker
// should read the pipe (it spun `spin_ns` with nothing posted, or the kernel rang), or a tuple
// for the worker's Python code to finish and answer on the pipe:
//   ("call", request_id, handle, args)   no function of that handle here (Python says why)
//   ("failed", request_id, exception)    the function raised
//   ("reply", request_id, value)         a result that is no scalar, or the kernel stopped spinning
//   ("profiled", request_id, value, phases)
static PyObject *Lane_serve(Lane *self, PyObject *args) {
    PyObject *handles, *take_last;
    int pipe_fd;
    if (!PyArg_ParseTuple(args, "O!Oi", &PyDict_Type, &handles, &take_last, &pipe_fd)) return NULL;
    Page *page = self->page;
    if (self->spin_ns == 0) Py_RETURN_NONE;
    // The kernel rings after it writes a request on the pipe, so a request written before this
    // store is seen by the poll below, and one written after it finds the worker spinning.
    atomic_store_explicit(&page->worker_state, SPINNING, memory_order_seq_cst);
    struct pollfd waiting = {.fd = pipe_fd, .events = POLLIN};
    if (poll(&waiting, 1, 0) != 0) {
        atomic_store_explicit(&page->worker_state, BLOCKED, memory_order_release);
        Py_RETURN_NONE;
    }
    for (;;) {
        uint32_t state;
        uint64_t deadline = now_ns() + self->spin_ns;
        Py_BEGIN_ALLOW_THREADS
        for (unsigned spins = 1;; spins++) {
            state = atomic_load_explicit(&page->worker_state, memory_order_acquire);
            if (state != SPINNING) break;
            if (spins % 16 == 0) {
                if (now_ns() >= deadline && swap(&page->worker_state, SPINNING, BLOCKED)) {
                    state = BLOCKED;
                    break;
                }
                sched_yield();
            } else {
                relax();
            }
        }
        Py_END_ALLOW_THREADS
        if (state != POSTED) {
            atomic_store_explicit(&page->worker_state, BLOCKED, memory_order_release);
            Py_RETURN_NONE;
        }
        atomic_store_explicit(&page->worker_state, BUSY, memory_order_relaxed);
        uint64_t request_id = page->request_id;
        Py_ssize_t count = page->count;
        PyObject *values[MAX_ARGUMENTS];
        for (Py_ssize_t i = 0; i < count; i++) {
            values[i] = decode(page->kinds[i], page->slots[i]);
            if (!values[i]) {
                while (i--) Py_DECREF(values[i]);
                atomic_store_explicit(&page->worker_state, IN_PYTHON, memory_order_release);
                return NULL;
            }
        }
        PyObject *key = PyLong_FromUnsignedLongLong(page->handle);
        PyObject *function = key ? Py_XNewRef(PyDict_GetItemWithError(handles, key)) : NULL;  // released meanwhile: kept alive
        PyObject *outcome = NULL;
        if (!function) {
            PyObject *arguments = PyTuple_New(count);
            for (Py_ssize_t i = 0; arguments && i < count; i++) PyTuple_SET_ITEM(arguments, i, Py_NewRef(values[i]));
            if (!PyErr_Occurred() && arguments && key)
                outcome = Py_BuildValue("(sKOO)", "call", (unsigned long long)request_id, key, arguments);
            Py_XDECREF(arguments);
        } else {
            PyObject *result = PyObject_Vectorcall(function, values, (size_t)count, NULL);
            Py_DECREF(function);
            if (!result) {
                PyObject *type, *error, *traceback;
                PyErr_Fetch(&type, &error, &traceback);
                PyErr_NormalizeException(&type, &error, &traceback);
                if (traceback) PyException_SetTraceback(error, traceback);
                outcome = Py_BuildValue("(sKO)", "failed", (unsigned long long)request_id, error ? error : Py_None);
                Py_XDECREF(type);
                Py_XDECREF(error);
                Py_XDECREF(traceback);
            } else {
                PyObject *phases = PyObject_CallNoArgs(take_last);
                if (phases && phases != Py_None) {
                    outcome = Py_BuildValue("(sKOO)", "profiled", (unsigned long long)request_id, result, phases);
                } else if (phases) {
                    uint8_t kind = NONE_VALUE;
                    uint64_t slot = 0;
                    int scalar = result == Py_None || encode(result, &slot, &kind);
                    if (scalar) {
                        fflush(NULL);
                        int unread = 0;
                        page->reply_flags = ioctl(2, FIONREAD, &unread) == 0 && unread > 0 ? STDERR_PENDING : 0;
                        page->reply_kind = kind;
                        page->reply_value = slot;
                        if (!swap(&page->reply_state, PENDING, IN_PAGE)) scalar = 0;  // the kernel reads the pipe now
                    }
                    if (scalar) {
                        Py_DECREF(phases);
                        Py_DECREF(result);
                        Py_DECREF(key);
                        for (Py_ssize_t i = 0; i < count; i++) Py_DECREF(values[i]);
                        atomic_store_explicit(&page->worker_state, SPINNING, memory_order_release);
                        continue;
                    }
                    outcome = Py_BuildValue("(sKO)", "reply", (unsigned long long)request_id, result);
                }
                Py_XDECREF(phases);
                Py_DECREF(result);
            }
        }
        Py_XDECREF(key);
        for (Py_ssize_t i = 0; i < count; i++) Py_DECREF(values[i]);
        atomic_store_explicit(&page->worker_state, IN_PYTHON, memory_order_release);
        return outcome;
    }
}

// Worker: the call in the page will be answered on the pipe. True when a call is running
// whose reply the kernel will now read there (a thread of the call may then send its own
// requests on the pipe first); False when none runs or its reply is already in the page.
static PyObject *Lane_divert(Lane *self, PyObject *unused) {
    Page *page = self->page;
    uint32_t worker = atomic_load_explicit(&page->worker_state, memory_order_acquire);
    if (worker != BUSY && worker != IN_PYTHON) Py_RETURN_FALSE;
    if (swap(&page->reply_state, PENDING, ON_PIPE)) Py_RETURN_TRUE;
    return PyBool_FromLong(atomic_load_explicit(&page->reply_state, memory_order_acquire) == ON_PIPE);
}

// Worker: the diverted call's reply went out on the pipe; nothing may be sent for it after.
static PyObject *Lane_replied(Lane *self, PyObject *unused) {
    swap(&self->page->worker_state, IN_PYTHON, BLOCKED);
    swap(&self->page->worker_state, BUSY, BLOCKED);
    Py_RETURN_NONE;
}

static PyObject *Lane_get_request_id(Lane *self, void *unused) {
    return PyLong_FromUnsignedLongLong(self->page->request_id);
}

static PyObject *Lane_get_state(Lane *self, void *unused) {
    static const char *names[] = {"blocked", "spinning", "posted", "busy", "in-python", "leave"};
    uint32_t state = atomic_load_explicit(&self->page->worker_state, memory_order_acquire);
    return PyUnicode_FromString(state <= LEAVE ? names[state] : "?");
}

static PyMethodDef Lane_methods[] = {
    {"attach", (PyCFunction)Lane_attach, METH_VARARGS, "attach(finish, released, stderr_tee): the kernel's side of the lane"},
    {"caller", (PyCFunction)Lane_caller, METH_VARARGS, "caller(handle, proxy): a callable that calls the worker's function"},
    {"close", (PyCFunction)Lane_close, METH_NOARGS, "no call takes the lane from now on (its worker ended)"},
    {"ring", (PyCFunction)Lane_ring, METH_NOARGS, "a request was written on the pipe: a spinning worker goes to read it"},
    {"serve", (PyCFunction)Lane_serve, METH_VARARGS, "serve(handles, take_last, pipe_fd): the worker's loop (see the source)"},
    {"divert", (PyCFunction)Lane_divert, METH_NOARGS, "the running call answers on the pipe: True when one runs"},
    {"replied", (PyCFunction)Lane_replied, METH_NOARGS, "the diverted call's reply was sent on the pipe"},
    {NULL},
};

static PyObject *Lane_get_answered(Lane *self, void *unused) { return PyLong_FromUnsignedLongLong(self->answered); }

static PyObject *Lane_get_spin_ns(Lane *self, void *unused) { return PyLong_FromUnsignedLongLong(self->spin_ns); }

static PyGetSetDef Lane_getset[] = {
    {"answered", (getter)Lane_get_answered, NULL, "kernel: how many calls were answered in the page", NULL},
    {"spin_ns", (getter)Lane_get_spin_ns, NULL, "how long each side spins before it reads the pipe", NULL},
    {"request_id", (getter)Lane_get_request_id, NULL, "the id of the call last posted", NULL},
    {"state", (getter)Lane_get_state, NULL, "the worker's state, in words", NULL},
    {NULL},
};

static PyTypeObject LaneType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ipolyglot_fast_channel.Lane",
    .tp_doc = "Lane(fd, spin_ns, main_thread=0): the shared page of one worker's main connection.",
    .tp_basicsize = sizeof(Lane),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Lane_init,
    .tp_traverse = (traverseproc)Lane_traverse,
    .tp_clear = (inquiry)Lane_clear,
    .tp_dealloc = (destructor)Lane_dealloc,
    .tp_methods = Lane_methods,
    .tp_getset = Lane_getset,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "ipolyglot_fast_channel", NULL, -1, NULL};

PyMODINIT_FUNC PyInit_ipolyglot_fast_channel(void) {
    if (PyType_Ready(&LaneType) < 0 || PyType_Ready(&CallerType) < 0) return NULL;
    str_total = PyUnicode_InternFromString("total");
    str_lock = PyUnicode_InternFromString("lock");
    str_locked = PyUnicode_InternFromString("locked");
    str_dump = PyUnicode_InternFromString("dump");
    str_held = PyUnicode_InternFromString("held");
    str_settle = PyUnicode_InternFromString("settle");
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddIntConstant(m, "PAGE_BYTES", PAGE_BYTES) < 0
        || PyModule_AddObjectRef(m, "Lane", (PyObject *)&LaneType) < 0
        || PyModule_AddObjectRef(m, "Caller", (PyObject *)&CallerType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
