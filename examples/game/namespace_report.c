/*
 * LD_PRELOAD helper for the demo: print how many objects each secondary link-map namespace
 * holds, one line per namespace on stderr, when the program calls eglTerminate (while the
 * driver is still loaded: eglTerminate unloads it) or else when it exits:
 *     namespace-report: namespace 1: 48 objects (swrast_dri.so: yes)
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

static void report_namespace(Lmid_t lmid) {
    /* Every namespace holds a libc; RTLD_NOLOAD finds it without loading anything. */
    void *libc = dlmopen(lmid, "libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    if (!libc)
        return;
    struct link_map *map = NULL;
    if (dlinfo(libc, RTLD_DI_LINKMAP, &map) != 0 || !map) {
        dlclose(libc);
        return;
    }
    while (map->l_prev)
        map = map->l_prev;
    int objects = 0, swrast = 0;
    for (; map; map = map->l_next) {
        objects++;
        if (map->l_name && strstr(map->l_name, "/swrast_dri.so"))
            swrast = 1;
    }
    fprintf(stderr, "namespace-report: namespace %ld: %d objects (swrast_dri.so: %s)\n",
            (long)lmid, objects, swrast ? "yes" : "no");
    dlclose(libc);
}

static void report(void) {
    static int done;
    if (done)
        return;
    done = 1;
    for (Lmid_t lmid = 1; lmid < NAMESPACES; lmid++)
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
