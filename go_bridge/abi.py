"""The C interface every Go library built here exports (runtime/ipgrt/bridge.h and call.go's
exports), declared once for cffi; marshal.py and library.py both use it."""

from cffi import FFI

ffi = FFI()
ffi.cdef(
    """
    void ipg_call(int id, char *in, size_t n, int own_bulk, char **out, size_t *outn);
    void ipg_call_profiled(int id, char *in, size_t n, int own_bulk, char **out, size_t *outn, int64_t *copy_out_ns);
    void ipg_call_wait(uint64_t token, char **out, size_t *outn, int64_t *copy_out_ns);
    void ipg_call_abandon(uint64_t token);
    void ipg_describe(char **out, size_t *outn);
    int ipg_take_goroutine_panic(char **out, size_t *outn);
    void ipg_thread_panic_taken(void);
    char *ipg_take_thread_panic(size_t *n);
    void ipg_set_dispatch(void (*fn)(int64_t, char *, size_t, char **, size_t *));
    void ipg_free(void *p);
    void *ipg_malloc(size_t n);
    extern int32_t ipg_pending;
    extern int32_t ipg_released_pending;
    void ipg_take_released(char **out, size_t *outn);
    void ipg_collect(void);
    void ipg_chan_receive(int64_t id, char **out, size_t *outn);
    void ipg_chan_release(int64_t id);
    int ipg_pprof_start(int heap, int memRate, char **out, size_t *outn);
    void ipg_pprof_stop(char **out, size_t *outn);
    void ipg_runtime_stats(char **out, size_t *outn);
    void ipg_set_cell_labels(char *in, size_t n);
    int ipg_var_changed(int get);
    void free(void *p);
    """
)

# The process's C library: its `free` releases the blocks Go hands over with a result
# (malloc'd by the same C library) once the numpy array owning one is collected.
C_LIBRARY = ffi.dlopen(None)
