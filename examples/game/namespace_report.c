/*
 * LD_PRELOAD helper for the demo: when the program exits, print how many objects each
 * secondary link-map namespace holds, one line per namespace on stderr:
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
    for (Lmid_t lmid = 1; lmid < NAMESPACES; lmid++)
        report_namespace(lmid);
}

/* Registered from a constructor, so it runs after main returns, before any library's
 * destructor. */
__attribute__((constructor)) static void register_report(void) {
    if (atexit(report) != 0)
        fprintf(stderr, "namespace-report: atexit failed\n");
}
