// C half of the ipolyglot Go bridge: memory and call-back plumbing that Go
// cannot express itself (calling a C function pointer, C thread-locals).
#include <stddef.h>
#include <stdint.h>

typedef void (*ipg_dispatch_fn)(int64_t handle, const char *in, size_t n, char **out, size_t *outn);

void ipg_set_dispatch(ipg_dispatch_fn fn);
int ipg_call_python(int64_t handle, const char *in, size_t n, char **out, size_t *outn);
void ipg_set_thread_panic(char *buf, size_t n);
char *ipg_take_thread_panic(size_t *n);
void ipg_free(void *p);
void *ipg_malloc(size_t n);
void ipg_advise_bulk(void *p, size_t n);
void ipg_claim_sigprof(void);
extern int32_t ipg_pending;
extern int32_t ipg_released_pending;
