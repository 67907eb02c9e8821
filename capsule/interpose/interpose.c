/*
 * The first object of every capsule namespace.
 *
 * glibc makes the first object loaded into a namespace that namespace's global scope:
 * every later object, the namespace's own libc included, looks symbols up here first.
 * So defining the malloc and dl families here routes them for the whole namespace from
 * its very first allocation, before any constructor runs. This object has no
 * dependencies (not even libc), so nothing runs before the runtime fills `capsule_table`.
 *
 * Every function forwards through the table that the Rust runtime fills: the allocator
 * entries point at the program's allocator, the dl entries at the runtime's emulation
 * (which keeps dlopen inside the capsule and emulates RTLD_GLOBAL).
 */

typedef unsigned long size_t;

#define EXPORT __attribute__((visibility("default")))
#define TABLE_MAGIC 0x3156534c55535043UL /* "CPSULSV1" */

struct capsule_table {
    unsigned long magic;
    unsigned long size; /* sizeof(struct capsule_table), checked by the runtime */
    long lmid;
    /* The program's allocator. */
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    size_t (*malloc_usable_size)(void *);
    /* The runtime's dl emulation; `caller` is the return address of the call. */
    void *(*dlopen)(long lmid, const char *file, int mode, void *caller);
    void *(*dlmopen)(long lmid, long target, const char *file, int mode, void *caller);
    void *(*dlsym)(long lmid, void *handle, const char *name, void *caller);
    void *(*dlvsym)(long lmid, void *handle, const char *name, const char *version,
                    void *caller);
    int (*dlclose)(long lmid, void *handle);
    char *(*dlerror)(long lmid);
    /* The namespace's libc's per-thread ctype setup (GLIBC_PRIVATE), or 0 before libc is
     * loaded. Threads the program's libc created never ran it. */
    void (*ctype_init)(void);
    /* The namespace's libc's errno, or 0 before libc is loaded. */
    int *(*errno_location)(void);
    /* Routing statistics, counted only while `count` is non-zero (CAPSULE_DEBUG=alloc). */
    unsigned long count;
    unsigned long mallocs, frees, reallocs, aligned;
    /* Sharing the namespace between copies of the runtime (each shim links its own): the
     * canonical prefix it serves, and an entry into the copy that owns it, which loads a
     * library and returns its handle, or NULL with a message in `error`. */
    void *(*load)(long lmid, const char *library, char *error, size_t error_len);
    char prefix[4096];
};

EXPORT struct capsule_table capsule_table = {TABLE_MAGIC, sizeof(struct capsule_table)};

#define T capsule_table
#define COUNT(field)                                                                   \
    do {                                                                               \
        if (__builtin_expect(T.count != 0, 0))                                         \
            __atomic_fetch_add(&T.field, 1, __ATOMIC_RELAXED);                         \
    } while (0)

/* Per-thread setup of the namespace's libc, once per thread, on the first call that
 * enters through this object. */
static __thread int thread_ready __attribute__((tls_model("initial-exec")));

static inline void enter(void) {
    if (__builtin_expect(!thread_ready, 0) && T.ctype_init) {
        thread_ready = 1;
        T.ctype_init();
    }
}

EXPORT void *malloc(size_t n) { enter(); COUNT(mallocs); return T.malloc(n); }
EXPORT void free(void *p) { COUNT(frees); T.free(p); }
EXPORT void *calloc(size_t n, size_t size) { enter(); COUNT(mallocs); return T.calloc(n, size); }
EXPORT void *realloc(void *p, size_t n) { enter(); COUNT(reallocs); return T.realloc(p, n); }
EXPORT int posix_memalign(void **out, size_t align, size_t n) {
    COUNT(aligned);
    return T.posix_memalign(out, align, n);
}
EXPORT void *memalign(size_t align, size_t n) { COUNT(aligned); return T.memalign(align, n); }
EXPORT void *aligned_alloc(size_t align, size_t n) { COUNT(aligned); return T.aligned_alloc(align, n); }
EXPORT void *valloc(size_t n) { COUNT(aligned); return T.valloc(n); }
EXPORT void *pvalloc(size_t n) { COUNT(aligned); return T.pvalloc(n); }
EXPORT size_t malloc_usable_size(void *p) { return T.malloc_usable_size(p); }

/* glibc's own name for its allocator; libraries that call these directly must reach the
 * same allocator as everybody else. */
EXPORT void *__libc_malloc(size_t n) { return malloc(n); }
EXPORT void __libc_free(void *p) { free(p); }
EXPORT void *__libc_calloc(size_t n, size_t size) { return calloc(n, size); }
EXPORT void *__libc_realloc(void *p, size_t n) { return realloc(p, n); }
EXPORT void *__libc_memalign(size_t align, size_t n) { return memalign(align, n); }
EXPORT void *__libc_valloc(size_t n) { return valloc(n); }
EXPORT void *__libc_pvalloc(size_t n) { return pvalloc(n); }

/* glibc implements reallocarray inside libc without a slot, so it must be defined here. */
EXPORT void *reallocarray(void *p, size_t n, size_t size) {
    size_t bytes;
    if (__builtin_mul_overflow(n, size, &bytes)) {
        /* errno lives in the namespace's libc; ENOMEM is what glibc sets here. */
        if (T.errno_location)
            *T.errno_location() = 12;
        return 0;
    }
    return realloc(p, bytes);
}

EXPORT void *dlopen(const char *file, int mode) {
    enter();
    return T.dlopen(T.lmid, file, mode, __builtin_return_address(0));
}
EXPORT void *dlmopen(long target, const char *file, int mode) {
    enter();
    return T.dlmopen(T.lmid, target, file, mode, __builtin_return_address(0));
}
EXPORT void *dlsym(void *handle, const char *name) {
    return T.dlsym(T.lmid, handle, name, __builtin_return_address(0));
}
EXPORT void *dlvsym(void *handle, const char *name, const char *version) {
    return T.dlvsym(T.lmid, handle, name, version, __builtin_return_address(0));
}
EXPORT int dlclose(void *handle) { return T.dlclose(T.lmid, handle); }
EXPORT char *dlerror(void) { return T.dlerror(T.lmid); }
