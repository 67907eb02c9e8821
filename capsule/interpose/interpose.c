/*
 * The first object of every capsule namespace.
 *
 * glibc makes the first object loaded into a namespace that namespace's global scope:
 * every later object looks symbols up here first. So defining the dl family here keeps
 * `dlopen`/`dlsym` inside the capsule for the whole namespace, and (for prefixes other
 * than `/`) the environment overlay and the data-file functions below point the host's
 * driver stack at the host's files. This object has no dependencies (not even libc), so
 * nothing runs before the runtime fills `capsule_table`.
 *
 * Everything else of libc is the program's own: the namespace's libc.so.6 is a forwarder
 * to it (see the runtime's forwarder module), so malloc, errno, stdio and the environment
 * are one per process. The table's libc entries are the program's functions.
 */

typedef unsigned long size_t;

#define EXPORT __attribute__((visibility("default")))
/* "CPSULSV5", cut to the low half where unsigned long is 32 bits (the runtime does too). */
#define TABLE_MAGIC ((unsigned long)0x3556534c55535043ULL)
#define FILE_FUNCTIONS_CAPACITY 48

struct capsule_table {
    unsigned long magic;
    unsigned long size; /* sizeof(struct capsule_table), checked by the runtime */
    long lmid;
    /* The runtime's dl emulation; `caller` is the return address of the call. */
    void *(*dlopen)(long lmid, const char *file, int mode, void *caller);
    void *(*dlmopen)(long lmid, long target, const char *file, int mode, void *caller);
    void *(*dlsym)(long lmid, void *handle, const char *name, void *caller);
    void *(*dlvsym)(long lmid, void *handle, const char *name, const char *version,
                    void *caller);
    int (*dlclose)(long lmid, void *handle);
    char *(*dlerror)(long lmid);
    /* The program's libc (the only one in the process). */
    int *(*errno_location)(void);
    char *(*getenv)(const char *);
    char *(*secure_getenv)(const char *);
    /* The environment overlay: variables whose value inside the capsule differs from the
     * program's (the host's loader directories inside the prefix). Each entry is
     * "NAME=VALUE" (set) or "NAME" (unset), NUL-terminated, back to back, ended by an
     * empty one; NULL: no overlay. `secure`: the process runs in secure-execution mode
     * (AT_SECURE), where secure_getenv answers NULL. */
    const char *env_overrides;
    unsigned long secure;
    /* The runtime's activation of the forwarder being loaded into this namespace (see
     * capsule_forwarder_init). */
    void (*forwarder_init)(long lmid);
    /* Sharing the namespace between copies of the runtime (each shim links its own): the
     * canonical prefix it serves, and an entry into the copy that owns it, which loads a
     * library and returns its handle, or NULL with a message in `error`. */
    void *(*load)(long lmid, const char *library, char *error, size_t error_len);
    /* An entry into the owner that wires a later shim up in its stead, taken by copies of
     * the runtime whose `shim_abi` (a hash of their shim code) is the owner's. */
    unsigned long shim_abi;
    int (*shim_init)(const void *shim);
    /* Strings are pointers, not arrays, so that the whole writable part of this object
     * (table, GOT, dynamic section) fits one page: one copy-on-write fault per namespace,
     * and no RELRO page to protect (see build.rs). Their storage, the runtime's, lives as
     * long as the process. The canonical prefix, NUL-terminated: */
    const char *prefix;
    /* Data files: paths of the host tree (directories or single files, absolute, without
     * a trailing slash) whose files the capsule reads from the prefix, each NUL-terminated,
     * back to back, ended by an empty string. NULL for the prefix `/`: then nothing is
     * rewritten. */
    const char *data_dirs;
    /* strlen(prefix), set with data_dirs. */
    unsigned long prefix_len;
    /* Non-zero: print each rewritten path on stderr (CAPSULE_DEBUG=files). */
    unsigned long trace_files;
    /* The names of the namespace libc's functions that the wrappers below forward to,
     * NUL-terminated, back to back, ended by an empty string, in the order of
     * `enum file_function` (a `@VERSION` suffix: the version to ask for when the name has
     * no default version). Written here, read by the runtime. */
    const char *file_function_names;
    /* Those functions of the namespace's libc, in the same order, or 0 before libc is
     * loaded (or where that libc lacks one). */
    void *libc_file[FILE_FUNCTIONS_CAPACITY];
};

/* The versions glibc's old __xstat family has on this architecture (no default version
 * since glibc 2.33), the version argument it wants (_STAT_VER), and the open flags whose
 * values differ between architectures. */
#if defined(__x86_64__)
#define XSTAT_VERSION "GLIBC_2.2.5"
#define XSTAT64_VERSION "GLIBC_2.2.5"
#define FXSTATAT_VERSION "GLIBC_2.4"
#define STAT_VER 1
#define O_DIRECTORY_ 0200000
#define O_NOFOLLOW_ 0400000
#elif defined(__i386__)
#define XSTAT_VERSION "GLIBC_2.0"
#define XSTAT64_VERSION "GLIBC_2.2"
#define FXSTATAT_VERSION "GLIBC_2.4"
#define STAT_VER 3
#define O_DIRECTORY_ 0200000
#define O_NOFOLLOW_ 0400000
#elif defined(__aarch64__)
/* glibc's port began at 2.17: every old function has that version; the kernel's struct
 * stat is the generic one (_STAT_VER_KERNEL, 0). */
#define XSTAT_VERSION "GLIBC_2.17"
#define XSTAT64_VERSION "GLIBC_2.17"
#define FXSTATAT_VERSION "GLIBC_2.17"
#define STAT_VER 0
#define O_DIRECTORY_ 040000
#define O_NOFOLLOW_ 0100000
#else
#error "interpose.c: add this architecture's __xstat versions and system calls"
#endif

/* The namespace libc functions behind the data-file wrappers (end of this file). */
#define FILE_FUNCTIONS(X)                                                              \
    X(F_OPEN, "open")                                                                  \
    X(F_OPEN64, "open64")                                                              \
    X(F_OPENAT, "openat")                                                              \
    X(F_OPENAT64, "openat64")                                                          \
    X(F_OPEN_2, "__open_2")                                                            \
    X(F_OPEN64_2, "__open64_2")                                                        \
    X(F_OPENAT_2, "__openat_2")                                                        \
    X(F_OPENAT64_2, "__openat64_2")                                                    \
    X(F_FOPEN, "fopen")                                                                \
    X(F_FOPEN64, "fopen64")                                                            \
    X(F_OPENDIR, "opendir")                                                            \
    X(F_SCANDIR, "scandir")                                                            \
    X(F_SCANDIR64, "scandir64")                                                        \
    X(F_ACCESS, "access")                                                              \
    X(F_FACCESSAT, "faccessat")                                                        \
    X(F_EACCESS, "eaccess")                                                            \
    X(F_EUIDACCESS, "euidaccess")                                                      \
    X(F_STAT, "stat")                                                                  \
    X(F_STAT64, "stat64")                                                              \
    X(F_LSTAT, "lstat")                                                                \
    X(F_LSTAT64, "lstat64")                                                            \
    X(F_FSTATAT, "fstatat")                                                            \
    X(F_FSTATAT64, "fstatat64")                                                        \
    X(F_STATX, "statx")                                                                \
    X(F_XSTAT, "__xstat@" XSTAT_VERSION)                                               \
    X(F_XSTAT64, "__xstat64@" XSTAT64_VERSION)                                         \
    X(F_LXSTAT, "__lxstat@" XSTAT_VERSION)                                             \
    X(F_LXSTAT64, "__lxstat64@" XSTAT64_VERSION)                                       \
    X(F_FXSTATAT, "__fxstatat@" FXSTATAT_VERSION)                                      \
    X(F_FXSTATAT64, "__fxstatat64@" FXSTATAT_VERSION)                                  \
    X(F_REALPATH, "realpath")

#define FILE_ENUM(id, name) id,
#define FILE_NAME(id, name) name "\0"
enum file_function { FILE_FUNCTIONS(FILE_ENUM) FILE_FUNCTION_COUNT };
_Static_assert(FILE_FUNCTION_COUNT <= FILE_FUNCTIONS_CAPACITY, "libc_file is too small");

EXPORT struct capsule_table capsule_table = {
    .magic = TABLE_MAGIC,
    .size = sizeof(struct capsule_table),
    .file_function_names = FILE_FUNCTIONS(FILE_NAME),
};

/* The table as this object itself reads it: PC-relative, never through the GOT. */
extern struct capsule_table capsule_table_here
    __attribute__((alias("capsule_table"), visibility("hidden")));

#define T capsule_table_here
/* Every forwarder's constructor (its DT_INIT_ARRAY, relocated against this symbol, which
 * the namespace's global scope defines). It runs inside the forwarder's dlmopen, under
 * ld.so's lock, so the forwarder is activated before any other load can bind to it. */
EXPORT void capsule_forwarder_init(void) {
    if (T.forwarder_init)
        T.forwarder_init(T.lmid);
}

EXPORT void *dlopen(const char *file, int mode) {
    return T.dlopen(T.lmid, file, mode, __builtin_return_address(0));
}
EXPORT void *dlmopen(long target, const char *file, int mode) {
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

#ifndef CAPSULE_ROOT_PREFIX
/* (The image for the prefix `/`, built with CAPSULE_ROOT_PREFIX, has nothing to map and
 * leaves these functions to libc: no wrapper, no cost.) */

/* ---- Data files ------------------------------------------------------------------------
 *
 * The host's driver stack reads data files at fixed paths (Mesa's /usr/share/drirc.d and
 * /etc/drirc, the Vulkan loader's /etc/vulkan, libdrm's /usr/share/libdrm/amdgpu.ids,
 * ...). With a prefix other than `/`, a path under one of the table's `data_dirs` is
 * rewritten to the same path inside the prefix before the namespace's libc sees it, so
 * the capsule reads the host's files while the program (another namespace, another libc)
 * keeps reading its own. No fallback: a data file the host lacks is missing for the
 * capsule, even when the program's tree has one.
 *
 * Only absolute paths are rewritten (a relative one, or one relative to a directory
 * descriptor, is left alone: a directory opened through these wrappers is already the
 * host's). Matching follows path components: `/etc/vulkanfoo` is not under `/etc/vulkan`,
 * and repeated slashes count as one. The rewritten path is built in a PATH_MAX buffer on
 * the stack (no malloc); when it would not fit, the call fails with ENAMETOOLONG, which is
 * what the kernel answers for the rewritten path, rather than reading the program's file.
 * The wrappers of async-signal-safe functions (open, stat, access, ...) stay so: they read
 * the table, which is written once before the namespace is used, and trace with the raw
 * `writev` system call.
 *
 * libc's internal calls (fopen's own open, scandir's own opendir) do not come through
 * here, which is why every entry point is wrapped, not only `open`. */

#define PATH_CAPACITY 4096 /* PATH_MAX, the terminating NUL included */
#define E_NAMETOOLONG 36
#define E_NOSYS 38
#define O_CREAT_ 0100
#define O_TMPFILE_ (020000000 | O_DIRECTORY_)

static void set_errno(int e) {
    if (T.errno_location)
        *T.errno_location() = e;
}

static size_t length(const char *s) {
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

/* ---- Environment overlay ---------------------------------------------------------------
 *
 * The host's loaders find their files through variables (libglvnd's
 * __EGL_VENDOR_LIBRARY_DIRS, the Vulkan loader's XDG_DATA_DIRS, ...): inside the capsule
 * they read the overlay's values, which point into the prefix, while the program keeps
 * its own. Every other variable is the program's, live (setenv after the load is seen). */

/* The overlay's entry for `name`: its value, or 0 with *found set for an unset one. */
static const char *overlay(const char *name, int *found) {
    *found = 0;
    for (const char *e = T.env_overrides; e && *e; e += length(e) + 1) {
        size_t i = 0;
        while (name[i] && e[i] == name[i])
            i++;
        if (name[i] == 0 && (e[i] == '=' || e[i] == 0)) {
            *found = 1;
            return e[i] == '=' ? e + i + 1 : 0;
        }
    }
    return 0;
}

EXPORT char *getenv(const char *name) {
    int found;
    const char *value = overlay(name, &found);
    return found ? (char *)value : T.getenv(name);
}

EXPORT char *secure_getenv(const char *name) {
    int found;
    const char *value = overlay(name, &found);
    if (!found)
        return T.secure_getenv(name);
    return T.secure ? 0 : (char *)value;
}

/* Raw system calls (no libc here, no errno): the result, or -errno. */
#if defined(__x86_64__)
#define SYS_writev_ 20
#define SYS_close_ 3
#define SYS_readlinkat_ 267
#define SYS_openat_ 257
static long sys4(long n, long a, long b, long c, long d) {
    long ret;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__i386__)
#define SYS_writev_ 146
#define SYS_close_ 6
#define SYS_readlinkat_ 305
#define SYS_openat_ 295
/* int $0x80 (the vDSO's faster entry would need the auxiliary vector): arguments in ebx,
 * ecx, edx, esi. ebx is the PIC register, which GCC lets an asm operand take. */
static long sys4(long n, long a, long b, long c, long d) {
    long ret;
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(n), "b"(a), "c"(b), "d"(c), "S"(d)
                     : "memory");
    return ret;
}
#elif defined(__aarch64__)
/* The generic system call table. */
#define SYS_writev_ 66
#define SYS_close_ 57
#define SYS_openat_ 56
#define SYS_readlinkat_ 78
static long sys4(long n, long a, long b, long c, long d) {
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
    return x0;
}
#endif
#define SYS_openat2_ 437 /* the same number on every architecture */

/* writev(2) with the raw system call: no libc, no errno, async-signal-safe. */
struct iovec_ {
    const void *base;
    size_t len;
};
static void write_stderr(const struct iovec_ *iov, long count) {
    (void)sys4(SYS_writev_, 2, (long)iov, count, 0);
}

#define IOV(s) {(s), length(s)}
static void trace(const char *what, const char *path, const char *mapped) {
    if (mapped) {
        struct iovec_ iov[] = {IOV("capsule: data file "), IOV(path), IOV(" -> "),
                               IOV(mapped), IOV(" ("), IOV(what), IOV(")\n")};
        write_stderr(iov, sizeof iov / sizeof iov[0]);
    } else {
        struct iovec_ iov[] = {IOV("capsule: data file "), IOV(path),
                               IOV(": longer than PATH_MAX inside prefix "), IOV(T.prefix),
                               IOV(" ("), IOV(what), IOV("): ENAMETOOLONG\n")};
        write_stderr(iov, sizeof iov / sizeof iov[0]);
    }
}

/* Whether the absolute `path` is `dir` or lies under it, component by component. */
static int under(const char *path, const char *dir) {
    while (*dir) {
        if (*dir == '/') {
            if (*path != '/')
                return 0;
            while (*path == '/')
                path++;
        } else if (*path++ != *dir) {
            return 0;
        }
        dir++;
    }
    return *path == 0 || *path == '/';
}

static int is_data_path(const char *path) {
    for (const char *dir = T.data_dirs; dir && *dir; dir += length(dir) + 1)
        if (under(path, dir))
            return 1;
    return 0;
}

#define AT_FDCWD_ (-100)
#define O_PATH_ 010000000
#define O_CLOEXEC_ 02000000
#define AT_SYMLINK_NOFOLLOW_ 0x100
#define RESOLVE_NO_MAGICLINKS_ 0x02
#define RESOLVE_IN_ROOT_ 0x10
struct open_how_ {
    unsigned long long flags, mode, resolve;
};

/* The host-tree path `inside` (absolute), resolved inside the prefix into `out`, as the
 * host's own kernel would resolve it: an absolute symlink (Debian's alternatives:
 * /usr/share/vulkan/icd.d/x.json -> /etc/alternatives/... -> /usr/lib/...) restarts at
 * the prefix, not at the runtime's root. Returns 0 when it cannot (missing file, no
 * openat2 or /proc): the caller keeps the plain rewrite, for which the kernel answers. */
static int resolve_inside(const char *inside, char *out) {
    long root = sys4(SYS_openat_, AT_FDCWD_, (long)T.prefix, O_PATH_ | O_DIRECTORY_ | O_CLOEXEC_, 0);
    if (root < 0)
        return 0;
    struct open_how_ how = {O_PATH_ | O_CLOEXEC_, 0, RESOLVE_IN_ROOT_ | RESOLVE_NO_MAGICLINKS_};
    const char *relative = inside[1] ? inside + 1 : ".";
    long fd = sys4(SYS_openat2_, root, (long)relative, (long)&how, sizeof how);
    sys4(SYS_close_, root, 0, 0, 0);
    if (fd < 0)
        return 0;
    char proc[32] = "/proc/self/fd/";
    size_t at = length(proc), digits = 1;
    for (long v = fd; v >= 10; v /= 10)
        digits++;
    for (long v = fd, i = (long)digits - 1; i >= 0; v /= 10, i--)
        proc[at + i] = (char)('0' + v % 10);
    proc[at + digits] = 0;
    long len = sys4(SYS_readlinkat_, AT_FDCWD_, (long)proc, (long)out, PATH_CAPACITY - 1);
    sys4(SYS_close_, fd, 0, 0, 0);
    if (len <= 0 || len >= PATH_CAPACITY - 1)
        return 0;
    out[len] = 0;
    /* The kernel names the file by its path on this machine: under the prefix. */
    return under(out, T.prefix);
}

/* The path to hand to libc for `path`: itself, or, under a data directory, the same path
 * inside the prefix, written to `buf`, symlinks followed inside the prefix (all of them
 * when `follow`, else all but the last component's, for lstat and O_NOFOLLOW). NULL
 * (errno ENAMETOOLONG) when that is too long. */
static const char *map(const char *path, char *buf, const char *what, int follow) {
    if (__builtin_expect(T.data_dirs == 0, 1) || !path || path[0] != '/' ||
        !is_data_path(path))
        return path;
    size_t n = T.prefix_len, len = length(path);
    if (n + len >= PATH_CAPACITY) {
        if (T.trace_files)
            trace(what, path, 0);
        set_errno(E_NAMETOOLONG);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        buf[i] = T.prefix[i];
    for (size_t i = 0; i <= len; i++)
        buf[n + i] = path[i];
    char real[PATH_CAPACITY];
    if (follow && resolve_inside(path, real)) {
        for (size_t i = 0; i <= length(real); i++)
            buf[i] = real[i];
    } else {
        /* The directory resolved inside the prefix, the last component kept as it is. */
        size_t slash = len;
        while (slash > 0 && path[slash] != '/')
            slash--;
        char dir[PATH_CAPACITY];
        for (size_t i = 0; i < slash; i++)
            dir[i] = path[i];
        dir[slash] = 0;
        if (slash > 0 && resolve_inside(dir, real) && length(real) + len - slash < PATH_CAPACITY) {
            size_t r = length(real);
            for (size_t i = 0; i < r; i++)
                buf[i] = real[i];
            for (size_t i = slash; i <= len; i++)
                buf[r + i - slash] = path[i];
        }
    }
    if (T.trace_files)
        trace(what, path, buf);
    return buf;
}

#define REAL(id, type) ((type)T.libc_file[id])

/* Map `path` into `p` (declared here), or fail the call with `fail` as libc would. */
#define MAP_OR_FAIL(path, what, follow, fail)                                          \
    char buf_[PATH_CAPACITY];                                                          \
    const char *p = map(path, buf_, what, follow);                                     \
    if (!p)                                                                            \
        return fail;

/* Forward to libc's function `id`, or fail with ENOSYS if that libc lacks it. */
#define FORWARD(id, type, fail, ...)                                                   \
    do {                                                                               \
        type real_ = REAL(id, type);                                                   \
        if (!real_) {                                                                  \
            set_errno(E_NOSYS);                                                        \
            return fail;                                                               \
        }                                                                              \
        return real_(__VA_ARGS__);                                                     \
    } while (0)

typedef unsigned int mode_t_;
typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef int (*open2_fn)(const char *, int);
typedef int (*openat2_fn)(int, const char *, int);
typedef void *(*fopen_fn)(const char *, const char *);
typedef void *(*opendir_fn)(const char *);
typedef int (*scandir_fn)(const char *, void *, void *, void *);
typedef int (*access_fn)(const char *, int);
typedef int (*faccessat_fn)(int, const char *, int, int);
typedef int (*stat_fn)(const char *, void *);
typedef int (*fstatat_fn)(int, const char *, void *, int);
typedef int (*statx_fn)(int, const char *, int, unsigned int, void *);
typedef int (*xstat_fn)(int, const char *, void *);
typedef int (*fxstatat_fn)(int, int, const char *, void *, int);
typedef char *(*realpath_fn)(const char *, char *);

/* open's mode argument is there only with O_CREAT or O_TMPFILE (glibc reads it the same). */
#define MODE_ARG(flags, mode)                                                          \
    mode_t_ mode = 0;                                                                  \
    if ((flags & O_CREAT_) || (flags & O_TMPFILE_) == O_TMPFILE_) {                    \
        __builtin_va_list ap;                                                          \
        __builtin_va_start(ap, flags);                                                 \
        mode = __builtin_va_arg(ap, mode_t_);                                          \
        __builtin_va_end(ap);                                                          \
    }

EXPORT int open(const char *path, int flags, ...) {
    MODE_ARG(flags, mode);
    MAP_OR_FAIL(path, "open", !(flags & O_NOFOLLOW_), -1);
    FORWARD(F_OPEN, open_fn, -1, p, flags, mode);
}
EXPORT int open64(const char *path, int flags, ...) {
    MODE_ARG(flags, mode);
    MAP_OR_FAIL(path, "open64", !(flags & O_NOFOLLOW_), -1);
    FORWARD(F_OPEN64, open_fn, -1, p, flags, mode);
}
EXPORT int openat(int dirfd, const char *path, int flags, ...) {
    MODE_ARG(flags, mode);
    MAP_OR_FAIL(path, "openat", !(flags & O_NOFOLLOW_), -1);
    FORWARD(F_OPENAT, openat_fn, -1, dirfd, p, flags, mode);
}
EXPORT int openat64(int dirfd, const char *path, int flags, ...) {
    MODE_ARG(flags, mode);
    MAP_OR_FAIL(path, "openat64", !(flags & O_NOFOLLOW_), -1);
    FORWARD(F_OPENAT64, openat_fn, -1, dirfd, p, flags, mode);
}
/* _FORTIFY_SOURCE's checked variants: libc does its own checks (O_CREAT without a mode
 * aborts there, as it would without the capsule). */
EXPORT int __open_2(const char *path, int flags) {
    MAP_OR_FAIL(path, "__open_2", !(flags & O_NOFOLLOW_), -1);
    FORWARD(F_OPEN_2, open2_fn, -1, p, flags);
}
EXPORT int __open64_2(const char *path, int flags) {
    MAP_OR_FAIL(path, "__open64_2", !(flags & O_NOFOLLOW_), -1);
    FORWARD(F_OPEN64_2, open2_fn, -1, p, flags);
}
EXPORT int __openat_2(int dirfd, const char *path, int flags) {
    MAP_OR_FAIL(path, "__openat_2", !(flags & O_NOFOLLOW_), -1);
    FORWARD(F_OPENAT_2, openat2_fn, -1, dirfd, p, flags);
}
EXPORT int __openat64_2(int dirfd, const char *path, int flags) {
    MAP_OR_FAIL(path, "__openat64_2", !(flags & O_NOFOLLOW_), -1);
    FORWARD(F_OPENAT64_2, openat2_fn, -1, dirfd, p, flags);
}
EXPORT void *fopen(const char *path, const char *mode) {
    MAP_OR_FAIL(path, "fopen", 1, 0);
    FORWARD(F_FOPEN, fopen_fn, 0, p, mode);
}
EXPORT void *fopen64(const char *path, const char *mode) {
    MAP_OR_FAIL(path, "fopen64", 1, 0);
    FORWARD(F_FOPEN64, fopen_fn, 0, p, mode);
}
EXPORT void *opendir(const char *path) {
    MAP_OR_FAIL(path, "opendir", 1, 0);
    FORWARD(F_OPENDIR, opendir_fn, 0, p);
}
EXPORT int scandir(const char *path, void *list, void *filter, void *compare) {
    MAP_OR_FAIL(path, "scandir", 1, -1);
    FORWARD(F_SCANDIR, scandir_fn, -1, p, list, filter, compare);
}
EXPORT int scandir64(const char *path, void *list, void *filter, void *compare) {
    MAP_OR_FAIL(path, "scandir64", 1, -1);
    FORWARD(F_SCANDIR64, scandir_fn, -1, p, list, filter, compare);
}
EXPORT int access(const char *path, int how) {
    MAP_OR_FAIL(path, "access", 1, -1);
    FORWARD(F_ACCESS, access_fn, -1, p, how);
}
EXPORT int faccessat(int dirfd, const char *path, int how, int flags) {
    MAP_OR_FAIL(path, "faccessat", !(flags & AT_SYMLINK_NOFOLLOW_), -1);
    FORWARD(F_FACCESSAT, faccessat_fn, -1, dirfd, p, how, flags);
}
EXPORT int eaccess(const char *path, int how) {
    MAP_OR_FAIL(path, "eaccess", 1, -1);
    FORWARD(F_EACCESS, access_fn, -1, p, how);
}
EXPORT int euidaccess(const char *path, int how) {
    MAP_OR_FAIL(path, "euidaccess", 1, -1);
    FORWARD(F_EUIDACCESS, access_fn, -1, p, how);
}

/* stat, lstat and fstatat are functions of libc since glibc 2.33; an older libc has only
 * the __xstat family (version argument STAT_VER, above), which objects built against it
 * call. */
#define STAT_LIKE(name, id, xid, follow)                                               \
    EXPORT int name(const char *path, void *st) {                                      \
        MAP_OR_FAIL(path, #name, follow, -1);                                          \
        if (!T.libc_file[id] && T.libc_file[xid])                                      \
            return REAL(xid, xstat_fn)(STAT_VER, p, st);                               \
        FORWARD(id, stat_fn, -1, p, st);                                               \
    }
STAT_LIKE(stat, F_STAT, F_XSTAT, 1)
STAT_LIKE(stat64, F_STAT64, F_XSTAT64, 1)
STAT_LIKE(lstat, F_LSTAT, F_LXSTAT, 0)
STAT_LIKE(lstat64, F_LSTAT64, F_LXSTAT64, 0)

#define FSTATAT_LIKE(name, id, xid)                                                    \
    EXPORT int name(int dirfd, const char *path, void *st, int flags) {                \
        MAP_OR_FAIL(path, #name, !(flags & AT_SYMLINK_NOFOLLOW_), -1);                 \
        if (!T.libc_file[id] && T.libc_file[xid])                                      \
            return REAL(xid, fxstatat_fn)(STAT_VER, dirfd, p, st, flags);              \
        FORWARD(id, fstatat_fn, -1, dirfd, p, st, flags);                              \
    }
FSTATAT_LIKE(fstatat, F_FSTATAT, F_FXSTATAT)
FSTATAT_LIKE(fstatat64, F_FSTATAT64, F_FXSTATAT64)

EXPORT int statx(int dirfd, const char *path, int flags, unsigned int mask, void *st) {
    MAP_OR_FAIL(path, "statx", !(flags & AT_SYMLINK_NOFOLLOW_), -1);
    FORWARD(F_STATX, statx_fn, -1, dirfd, p, flags, mask, st);
}

#define XSTAT_LIKE(name, id, follow)                                                   \
    EXPORT int name(int ver, const char *path, void *st) {                             \
        MAP_OR_FAIL(path, #name, follow, -1);                                          \
        FORWARD(id, xstat_fn, -1, ver, p, st);                                         \
    }
XSTAT_LIKE(__xstat, F_XSTAT, 1)
XSTAT_LIKE(__xstat64, F_XSTAT64, 1)
XSTAT_LIKE(__lxstat, F_LXSTAT, 0)
XSTAT_LIKE(__lxstat64, F_LXSTAT64, 0)

#define FXSTATAT_LIKE(name, id)                                                        \
    EXPORT int name(int ver, int dirfd, const char *path, void *st, int flags) {       \
        MAP_OR_FAIL(path, #name, !(flags & AT_SYMLINK_NOFOLLOW_), -1);                 \
        FORWARD(id, fxstatat_fn, -1, ver, dirfd, p, st, flags);                        \
    }
FXSTATAT_LIKE(__fxstatat, F_FXSTATAT)
FXSTATAT_LIKE(__fxstatat64, F_FXSTATAT64)

/* The result names the file inside the prefix (/run/host/usr/share/...): a path that is
 * not rewritten again, and that names the host's file to whoever opens it. */
EXPORT char *realpath(const char *path, char *resolved) {
    MAP_OR_FAIL(path, "realpath", 1, 0);
    FORWARD(F_REALPATH, realpath_fn, 0, p, resolved);
}

#endif /* CAPSULE_ROOT_PREFIX */
