/* A host library that reads data files at the paths its caller names, with each libc
   family a driver stack uses, and reports what it saw: the bytes read, the sorted names
   listed, the size or access found, the resolved path, or the errno's name
   ("open: ENOENT"). Loaded into a capsule by tests/tests/data_files.rs. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* _FORTIFY_SOURCE's variants, called directly so the test does not depend on how the
   compiler expands open(). */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

/* The stat ABI of binaries built against glibc < 2.33, bound as they bind it. */
int old_xstat(int ver, const char *path, struct stat *st);
int old_xstat64(int ver, const char *path, struct stat64 *st);
int old_lxstat(int ver, const char *path, struct stat *st);
int old_lxstat64(int ver, const char *path, struct stat64 *st);
int old_fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags);
int old_fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st, int flags);
#if defined(__x86_64__)
#define XSTAT_VERSION "GLIBC_2.2.5"
#define XSTAT64_VERSION "GLIBC_2.2.5"
#define STAT_VER 1 /* _STAT_VER_LINUX */
#elif defined(__i386__)
#define XSTAT_VERSION "GLIBC_2.0"
#define XSTAT64_VERSION "GLIBC_2.2"
#define STAT_VER 3 /* _STAT_VER_LINUX */
#elif defined(__aarch64__)
#define XSTAT_VERSION "GLIBC_2.17" /* the port's first version */
#define XSTAT64_VERSION "GLIBC_2.17"
#define FXSTATAT_VERSION "GLIBC_2.17"
#define STAT_VER 0 /* _STAT_VER_KERNEL: the generic struct stat */
#endif
#ifndef FXSTATAT_VERSION
#define FXSTATAT_VERSION "GLIBC_2.4"
#endif
__asm__(".symver old_xstat, __xstat@" XSTAT_VERSION);
__asm__(".symver old_xstat64, __xstat64@" XSTAT64_VERSION);
__asm__(".symver old_lxstat, __lxstat@" XSTAT_VERSION);
__asm__(".symver old_lxstat64, __lxstat64@" XSTAT64_VERSION);
__asm__(".symver old_fxstatat, __fxstatat@" FXSTATAT_VERSION);
__asm__(".symver old_fxstatat64, __fxstatat64@" FXSTATAT_VERSION);

static char out[8192];

static const char *fail(const char *what) {
    snprintf(out, sizeof out, "%s: %s", what, strerrorname_np(errno));
    return out;
}

static const char *from_fd(int fd, const char *what) {
    if (fd < 0)
        return fail(what);
    ssize_t n = read(fd, out, sizeof out - 1);
    close(fd);
    if (n < 0)
        return fail("read");
    out[n] = 0;
    return out;
}

static const char *from_file(FILE *f, const char *what) {
    if (!f)
        return fail(what);
    size_t n = fread(out, 1, sizeof out - 1, f);
    fclose(f);
    out[n] = 0;
    return out;
}

static const char *size_of(int rc, long long size, const char *what) {
    if (rc != 0)
        return fail(what);
    snprintf(out, sizeof out, "size=%lld", size);
    return out;
}

static const char *access_of(int rc, const char *what) {
    if (rc != 0)
        return fail(what);
    return "readable";
}

/* Read a file: `how` names the function. */
const char *read_with(const char *how, const char *path) {
    if (!strcmp(how, "open"))
        return from_fd(open(path, O_RDONLY), how);
    if (!strcmp(how, "open64"))
        return from_fd(open64(path, O_RDONLY), how);
    if (!strcmp(how, "openat"))
        return from_fd(openat(AT_FDCWD, path, O_RDONLY), how);
    if (!strcmp(how, "openat64"))
        return from_fd(openat64(AT_FDCWD, path, O_RDONLY), how);
    if (!strcmp(how, "__open_2"))
        return from_fd(__open_2(path, O_RDONLY), how);
    if (!strcmp(how, "__open64_2"))
        return from_fd(__open64_2(path, O_RDONLY), how);
    if (!strcmp(how, "__openat_2"))
        return from_fd(__openat_2(AT_FDCWD, path, O_RDONLY), how);
    if (!strcmp(how, "__openat64_2"))
        return from_fd(__openat64_2(AT_FDCWD, path, O_RDONLY), how);
    if (!strcmp(how, "fopen"))
        return from_file(fopen(path, "r"), how);
    if (!strcmp(how, "fopen64"))
        return from_file(fopen64(path, "r"), how);
    return "unknown function";
}

/* The size of a file: `how` names the function. */
const char *size_with(const char *how, const char *path) {
    struct stat st = {0};
    struct stat64 st64 = {0};
    struct statx stx = {0};
/* The call first, then its result (argument evaluation order is unspecified). */
#define SIZE(call, size)                                                               \
    do {                                                                               \
        int rc_ = (call);                                                              \
        return size_of(rc_, (long long)(size), how);                                   \
    } while (0)
    if (!strcmp(how, "stat"))
        SIZE(stat(path, &st), st.st_size);
    if (!strcmp(how, "stat64"))
        SIZE(stat64(path, &st64), st64.st_size);
    if (!strcmp(how, "lstat"))
        SIZE(lstat(path, &st), st.st_size);
    if (!strcmp(how, "lstat64"))
        SIZE(lstat64(path, &st64), st64.st_size);
    if (!strcmp(how, "fstatat"))
        SIZE(fstatat(AT_FDCWD, path, &st, 0), st.st_size);
    if (!strcmp(how, "fstatat64"))
        SIZE(fstatat64(AT_FDCWD, path, &st64, 0), st64.st_size);
    if (!strcmp(how, "statx"))
        SIZE(statx(AT_FDCWD, path, 0, STATX_SIZE, &stx), stx.stx_size);
    if (!strcmp(how, "__xstat"))
        SIZE(old_xstat(STAT_VER, path, &st), st.st_size);
    if (!strcmp(how, "__xstat64"))
        SIZE(old_xstat64(STAT_VER, path, &st64), st64.st_size);
    if (!strcmp(how, "__lxstat"))
        SIZE(old_lxstat(STAT_VER, path, &st), st.st_size);
    if (!strcmp(how, "__lxstat64"))
        SIZE(old_lxstat64(STAT_VER, path, &st64), st64.st_size);
    if (!strcmp(how, "__fxstatat"))
        SIZE(old_fxstatat(STAT_VER, AT_FDCWD, path, &st, 0), st.st_size);
    if (!strcmp(how, "__fxstatat64"))
        SIZE(old_fxstatat64(STAT_VER, AT_FDCWD, path, &st64, 0), st64.st_size);
#undef SIZE
    return "unknown function";
}

/* Whether a file is readable: `how` names the function. */
const char *access_with(const char *how, const char *path) {
    if (!strcmp(how, "access"))
        return access_of(access(path, R_OK), how);
    if (!strcmp(how, "faccessat"))
        return access_of(faccessat(AT_FDCWD, path, R_OK, 0), how);
    if (!strcmp(how, "eaccess"))
        return access_of(eaccess(path, R_OK), how);
    if (!strcmp(how, "euidaccess"))
        return access_of(euidaccess(path, R_OK), how);
    return "unknown function";
}

static int not_dots(const struct dirent *e) {
    return strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
}

static int not_dots64(const struct dirent64 *e) {
    return strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory's entries (but . and ..), sorted, separated by spaces: `how` names the
   function ("opendir" with readdir, "scandir", "scandir64"). */
const char *list_with(const char *how, const char *path) {
    char *names[256];
    int n = 0;
    if (!strcmp(how, "opendir")) {
        DIR *d = opendir(path);
        if (!d)
            return fail(how);
        struct dirent *e;
        while ((e = readdir(d)) && n < 256)
            if (not_dots(e))
                names[n++] = strdup(e->d_name);
        closedir(d);
    } else if (!strcmp(how, "scandir")) {
        struct dirent **list;
        int count = scandir(path, &list, not_dots, alphasort);
        if (count < 0)
            return fail(how);
        for (int i = 0; i < count; i++) {
            if (n < 256)
                names[n++] = strdup(list[i]->d_name);
            free(list[i]);
        }
        free(list);
    } else if (!strcmp(how, "scandir64")) {
        struct dirent64 **list;
        int count = scandir64(path, &list, not_dots64, alphasort64);
        if (count < 0)
            return fail(how);
        for (int i = 0; i < count; i++) {
            if (n < 256)
                names[n++] = strdup(list[i]->d_name);
            free(list[i]);
        }
        free(list);
    } else {
        return "unknown function";
    }
    qsort(names, n, sizeof names[0], by_name);
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        if (i)
            strncat(out, " ", sizeof out - strlen(out) - 1);
        strncat(out, names[i], sizeof out - strlen(out) - 1);
        free(names[i]);
    }
    return out;
}

/* realpath (`how` is unused: every entry takes the same arguments). */
const char *resolve(const char *how, const char *path) {
    (void)how;
    char *r = realpath(path, NULL);
    if (!r)
        return fail("realpath");
    snprintf(out, sizeof out, "%s", r);
    free(r);
    return out;
}
