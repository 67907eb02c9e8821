/*
 * LD_PRELOAD helper for the demo: print how many objects each secondary link-map namespace
 * holds, one line per namespace on stderr, when the program calls eglTerminate (while the
 * driver is still loaded: eglTerminate unloads it) or else when it exits:
 *     namespace-report: namespace 1: 48 objects (swrast_dri.so: yes)
 * and, for every namespace (the program's own, 0, included), each zlib it holds and the
 * version that copy reports, to show which side got which libz.so.1:
 *     namespace-report: namespace 1: libz 1.2.13 (/usr/lib/x86_64-linux-gnu/libz.so.1.2.13)
 * The game stays capsule-agnostic; this reads glibc's own lists, so it counts what a
 * capsule really loaded (dlopened drivers included), whoever loaded it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* glibc gives at most 16 namespaces (DL_NNS); 0 is the program's own. */
enum { NAMESPACES = 16 };

static int is_zlib(const char *path) {
    const char *base = strrchr(path, '/');
    return strncmp(base ? base + 1 : path, "libz.so.", 8) == 0;
}

/* The copy's own zlibVersion, asked through a handle on that very file in that namespace,
 * so the answer cannot come from another copy. */
static void report_zlib(Lmid_t lmid, const char *path) {
    const char *version = "no zlibVersion";
    void *zlib = dlmopen(lmid, path, RTLD_LAZY | RTLD_NOLOAD);
    const char *(*zlib_version)(void) = zlib ? (const char *(*)(void))dlsym(zlib, "zlibVersion")
                                             : NULL;
    if (zlib_version)
        version = zlib_version();
    fprintf(stderr, "namespace-report: namespace %ld: libz %s (%s)\n", (long)lmid, version,
            path);
    if (zlib)
        dlclose(zlib);
}

static void report_namespace(Lmid_t lmid) {
    /* Every namespace holds a libc; RTLD_NOLOAD finds it without loading anything. */
    void *libc = dlmopen(lmid, "libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    if (!libc)
        return;
    struct link_map *first = NULL;
    if (dlinfo(libc, RTLD_DI_LINKMAP, &first) != 0 || !first) {
        dlclose(libc);
        return;
    }
    while (first->l_prev)
        first = first->l_prev;
    int objects = 0, swrast = 0;
    for (struct link_map *map = first; map; map = map->l_next) {
        objects++;
        if (map->l_name && strstr(map->l_name, "/swrast_dri.so"))
            swrast = 1;
    }
    /* The program's own namespace is no capsule: only its zlib is of interest. */
    if (lmid != LM_ID_BASE)
        fprintf(stderr, "namespace-report: namespace %ld: %d objects (swrast_dri.so: %s)\n",
                (long)lmid, objects, swrast ? "yes" : "no");
    for (struct link_map *map = first; map; map = map->l_next)
        if (map->l_name && is_zlib(map->l_name))
            report_zlib(lmid, map->l_name);
    dlclose(libc);
}

static void report(void) {
    static int done;
    if (done)
        return;
    done = 1;
    for (Lmid_t lmid = LM_ID_BASE; lmid < NAMESPACES; lmid++)
        report_namespace(lmid);
}

/* An atexit handler registered from a library constructor would run after _dl_fini, which
 * finalizes the secondary namespaces first: too late. So wrap the program's main, and
 * register the report there, after libc registered _dl_fini. */
typedef int (*main_fn)(int, char **, char **);
typedef int (*start_fn)(main_fn, int, char **, void (*)(void), void (*)(void), void (*)(void),
                        void *);
static main_fn program_main;

static int main_with_report(int argc, char **argv, char **envp) {
    if (atexit(report) != 0)
        fprintf(stderr, "namespace-report: atexit failed\n");
    return program_main(argc, argv, envp);
}

int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void),
                      void (*fini)(void), void (*rtld_fini)(void), void *stack_end) {
    start_fn start = (start_fn)dlsym(RTLD_NEXT, "__libc_start_main");
    if (!start) {
        fprintf(stderr, "namespace-report: no __libc_start_main after this object\n");
        abort();
    }
    program_main = main;
    return start(main_with_report, argc, argv, init, fini, rtld_fini, stack_end);
}

typedef unsigned (*terminate_fn)(void *);

unsigned eglTerminate(void *display) {
    report();
    terminate_fn terminate = (terminate_fn)dlsym(RTLD_NEXT, "eglTerminate");
    if (!terminate) {
        fprintf(stderr, "namespace-report: no eglTerminate after this object\n");
        abort();
    }
    return terminate(display);
}
