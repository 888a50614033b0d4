// See bridge.h. Everything here is plain C: no Go pointer is ever stored.
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include "bridge.h"

// How many panics (in calls or user goroutines) Python has not raised yet,
// plus the released callables it has not dropped (ipg_released_pending).
// Python reads it after every call; it is 0 almost always.
int32_t ipg_pending;

// How many Python callables Go has let go of that Python has not dropped yet (handles.go).
int32_t ipg_released_pending;

static ipg_dispatch_fn dispatch;

// A panic recovered in a scalar fast-path call, kept for the calling thread.
static __thread char *thread_panic;
static __thread size_t thread_panic_len;

void ipg_set_dispatch(ipg_dispatch_fn fn) { dispatch = fn; }

int ipg_call_python(int64_t handle, const char *in, size_t n, char **out, size_t *outn) {
    if (!dispatch) return -1;
    dispatch(handle, in, n, out, outn);
    return 0;
}

void ipg_set_thread_panic(char *buf, size_t n) {
    free(thread_panic);
    thread_panic = buf;
    thread_panic_len = n;
}

char *ipg_take_thread_panic(size_t *n) {
    char *p = thread_panic;
    *n = thread_panic_len;
    thread_panic = NULL;
    thread_panic_len = 0;
    return p;
}

void ipg_free(void *p) { free(p); }

void *ipg_malloc(size_t n) { return malloc(n ? n : 1); }

// Ask for transparent huge pages over a large block (whole pages inside it),
// as numpy does for its own large arrays: far fewer page faults when filled.
void ipg_advise_bulk(void *p, size_t n) {
#ifdef MADV_HUGEPAGE
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = ((uintptr_t)p + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)p + n) & ~(page - 1);
    if (n >= (4u << 20) && end > start) madvise((void *)start, end - start, MADV_HUGEPAGE);
#endif
}

// The SIGPROF handler this runtime installed the first time it profiled.
// Signal handlers are per process: with several Go runtimes loaded, the last
// one to start profiling would otherwise receive every profiling signal.
static struct sigaction own_sigprof;
static int have_own_sigprof;

void ipg_claim_sigprof(void) {
    if (!have_own_sigprof) {
        sigaction(SIGPROF, NULL, &own_sigprof);
        have_own_sigprof = 1;
    } else {
        sigaction(SIGPROF, &own_sigprof, NULL);
    }
}
