//! One allocator for both sides: memory crosses the capsule's border both ways.
//!
//! Each test runs in a child process with glibc's malloc checks on
//! (`GLIBC_TUNABLES=glibc.malloc.check=3`, `libc_malloc_debug.so.0` preloaded), so a
//! pointer freed by the wrong allocator aborts instead of passing silently.

use capsule::Capsule;
use capsule_tests::{build_lib, func, is_child, private_allocator_bytes, rerun_self, Lib, Tree};
use std::ffi::{c_char, c_int, c_void, CStr};

const KEEPER: &str = r#"
#define _GNU_SOURCE
#include <dirent.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Buffers kept by the constructor, i.e. allocated while the capsule was loading. */
static void *kept[4];
__attribute__((constructor)) static void init(void) {
    kept[0] = malloc(100);
    memset(kept[0], 'a', 100);
    kept[1] = calloc(10, 10);
    kept[2] = strdup("constructor");
    if (posix_memalign(&kept[3], 64, 256) != 0) abort();
}
void *kept_get(int i) { void *p = kept[i]; kept[i] = 0; return p; }
void *kept_peek(int i) { return kept[i]; }
void kept_free(int i) { free(kept[i]); kept[i] = 0; }
void *kept_realloc(int i, size_t n) { return kept[i] = realloc(kept[i], n); }

/* libc-internal allocations made inside the capsule. */
char *c_strdup(const char *s) { return strdup(s); }
char *c_asprintf(int v) { char *o = 0; if (asprintf(&o, "value=%d", v) < 0) return 0; return o; }
char *c_getline(const char *path) {
    FILE *f = fopen(path, "r"); if (!f) return 0;
    char *line = 0; size_t n = 0;
    if (getline(&line, &n, f) < 0) { free(line); line = 0; }
    fclose(f); return line;
}
char *c_memstream(void) {
    char *buf = 0; size_t len = 0;
    FILE *f = open_memstream(&buf, &len); if (!f) return 0;
    fprintf(f, "memstream %d", 7); fclose(f); return buf;
}
int c_scandir(const char *dir, struct dirent ***out) { return scandir(dir, out, 0, alphasort); }

/* The program's allocations, freed or resized inside. */
void c_free(void *p) { free(p); }
void *c_realloc(void *p, size_t n) { return realloc(p, n); }
void *c_malloc(size_t n) { return malloc(n); }
void *c_calloc(size_t a, size_t b) { return calloc(a, b); }
void *c_memalign(size_t a, size_t n) { return memalign(a, n); }
void *c_aligned_alloc(size_t a, size_t n) { return aligned_alloc(a, n); }
void *c_valloc(size_t n) { return valloc(n); }
void *c_pvalloc(size_t n) { return pvalloc(n); }
int c_posix_memalign(void **p, size_t a, size_t n) { return posix_memalign(p, a, n); }
void *c_reallocarray(void *p, size_t n, size_t m) { return reallocarray(p, n, m); }
size_t c_usable(void *p) { return malloc_usable_size(p); }
"#;

fn host() -> Tree {
    let host = Tree::new();
    build_lib(
        &Lib {
            source: KEEPER,
            soname: Some("libkeeper.so.1"),
            args: &[],
        },
        &host.path("usr/lib/libkeeper.so.1"),
    );
    host
}

/// Run test `name` in children with glibc's malloc checks and the fixture prefix: once
/// with the allocator slots routed straight to the program's allocator (the default), once
/// with `CAPSULE_DEBUG=alloc`, where they stay on the interposer so calls are counted.
fn run_checked(name: &str) {
    let host = host();
    for debug in ["", "alloc"] {
        let out = rerun_self(
            name,
            &[
                ("CAPSULE_TEST_HOST", host.root().to_str().unwrap()),
                ("GLIBC_TUNABLES", "glibc.malloc.check=3"),
                ("LD_PRELOAD", "libc_malloc_debug.so.0"),
                ("CAPSULE_DEBUG", debug),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "child {name} (CAPSULE_DEBUG={debug:?}) failed: {}\n{stderr}",
            out.status
        );
        assert_eq!(
            stderr.contains("routed to the program's allocator"),
            debug == "alloc",
            "{stderr}"
        );
    }
}

/// Whether this child counts allocator calls (they are only counted through the interposer).
fn counting() -> bool {
    std::env::var("CAPSULE_DEBUG").is_ok_and(|d| d.contains("alloc"))
}

fn keeper() -> Capsule {
    let host = std::env::var("CAPSULE_TEST_HOST").expect("CAPSULE_TEST_HOST");
    Capsule::load("libkeeper.so.1", host.as_ref()).expect("load libkeeper")
}

#[test]
fn constructor_allocations_cross_the_border() {
    const NAME: &str = "constructor_allocations_cross_the_border";
    if !is_child(NAME) {
        return run_checked(NAME);
    }
    let k = keeper();
    // SAFETY: the fixture's functions are called with the C signatures they have, on pointers they or the program allocated, each freed once.
    unsafe {
        let get: extern "C" fn(c_int) -> *mut c_void = func(&k, "kept_get");
        let peek: extern "C" fn(c_int) -> *mut c_void = func(&k, "kept_peek");
        let kfree: extern "C" fn(c_int) = func(&k, "kept_free");
        let krealloc: extern "C" fn(c_int, usize) -> *mut c_void = func(&k, "kept_realloc");
        // Freed inside the capsule, and realloc'd inside then freed by the program.
        kfree(1);
        let grown = krealloc(0, 100_000) as *mut u8;
        assert_eq!(*grown.add(99), b'a', "realloc kept the constructor's bytes");
        libc::free(get(0));
        // Freed by the program.
        let s = get(2);
        assert_eq!(
            CStr::from_ptr(s as *const c_char).to_str().unwrap(),
            "constructor"
        );
        libc::free(s);
        let aligned = peek(3);
        assert_eq!(aligned as usize % 64, 0);
        libc::free(get(3));
    }
    let stats = k.alloc_stats();
    if counting() {
        assert!(stats.mallocs >= 3 && stats.frees >= 1, "{stats:?}");
    } else {
        assert_eq!(
            stats.mallocs, 0,
            "calls were counted although counting is off"
        );
    }
    assert_eq!(
        private_allocator_bytes(&k),
        0,
        "the namespace's own malloc was used"
    );
}

#[test]
fn libc_internal_allocations_cross_the_border() {
    const NAME: &str = "libc_internal_allocations_cross_the_border";
    if !is_child(NAME) {
        return run_checked(NAME);
    }
    let k = keeper();
    // SAFETY: the fixture's functions are called with the C signatures they have, on pointers they or the program allocated, each freed once.
    unsafe {
        let strdup: extern "C" fn(*const c_char) -> *mut c_char = func(&k, "c_strdup");
        let asprintf: extern "C" fn(c_int) -> *mut c_char = func(&k, "c_asprintf");
        let getline: extern "C" fn(*const c_char) -> *mut c_char = func(&k, "c_getline");
        let memstream: extern "C" fn() -> *mut c_char = func(&k, "c_memstream");
        let scandir: extern "C" fn(*const c_char, *mut *mut *mut libc::dirent) -> c_int =
            func(&k, "c_scandir");

        let text = |p: *mut c_char| CStr::from_ptr(p).to_string_lossy().into_owned();
        let p = strdup(c"crossing".as_ptr());
        assert_eq!(text(p), "crossing");
        libc::free(p as *mut c_void);
        let p = asprintf(42);
        assert_eq!(text(p), "value=42");
        libc::free(p as *mut c_void);
        let p = getline(c"/proc/self/status".as_ptr());
        assert!(text(p).starts_with("Name:"), "{}", text(p));
        libc::free(p as *mut c_void);
        let p = memstream();
        assert_eq!(text(p), "memstream 7");
        libc::free(p as *mut c_void);

        let mut list: *mut *mut libc::dirent = std::ptr::null_mut();
        let n = scandir(c"/proc/self".as_ptr(), &mut list);
        assert!(n > 5, "scandir returned {n}");
        let mut names = Vec::new();
        for i in 0..n as usize {
            let entry = *list.add(i);
            names.push(
                CStr::from_ptr((*entry).d_name.as_ptr())
                    .to_string_lossy()
                    .into_owned(),
            );
            libc::free(entry as *mut c_void);
        }
        libc::free(list as *mut c_void);
        assert!(names.iter().any(|n| n == "maps"), "{names:?}");
    }
    assert_eq!(
        private_allocator_bytes(&k),
        0,
        "the namespace's own malloc was used"
    );
}

#[test]
fn program_allocations_and_the_aligned_family_on_both_sides() {
    const NAME: &str = "program_allocations_and_the_aligned_family_on_both_sides";
    if !is_child(NAME) {
        return run_checked(NAME);
    }
    let k = keeper();
    // SAFETY: the fixture's functions are called with the C signatures they have, on pointers they or the program allocated, each freed once.
    unsafe {
        let cfree: extern "C" fn(*mut c_void) = func(&k, "c_free");
        let crealloc: extern "C" fn(*mut c_void, usize) -> *mut c_void = func(&k, "c_realloc");
        let cmalloc: extern "C" fn(usize) -> *mut c_void = func(&k, "c_malloc");
        let ccalloc: extern "C" fn(usize, usize) -> *mut c_void = func(&k, "c_calloc");
        let memalign: extern "C" fn(usize, usize) -> *mut c_void = func(&k, "c_memalign");
        let aligned_alloc: extern "C" fn(usize, usize) -> *mut c_void = func(&k, "c_aligned_alloc");
        let valloc: extern "C" fn(usize) -> *mut c_void = func(&k, "c_valloc");
        let pvalloc: extern "C" fn(usize) -> *mut c_void = func(&k, "c_pvalloc");
        let posix_memalign: extern "C" fn(*mut *mut c_void, usize, usize) -> c_int =
            func(&k, "c_posix_memalign");
        let reallocarray: extern "C" fn(*mut c_void, usize, usize) -> *mut c_void =
            func(&k, "c_reallocarray");
        let usable: extern "C" fn(*mut c_void) -> usize = func(&k, "c_usable");

        // Program -> capsule: freed and resized inside.
        let p = libc::malloc(64);
        cfree(p);
        let p = libc::malloc(16) as *mut u8;
        *p = 7;
        let p = crealloc(p as *mut c_void, 1 << 20) as *mut u8;
        assert_eq!(*p, 7);
        assert!(usable(p as *mut c_void) >= 1 << 20);
        libc::free(p as *mut c_void);

        // Capsule -> program, every allocation function.
        let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
        for (p, align) in [
            (cmalloc(10), 8),
            (ccalloc(3, 7), 8),
            (memalign(256, 100), 256),
            (aligned_alloc(128, 256), 128),
            (valloc(10), page),
            (pvalloc(10), page),
        ] {
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0);
            assert!(libc::malloc_usable_size(p) >= 10);
            assert_eq!(usable(p), libc::malloc_usable_size(p));
            libc::free(p);
        }
        let mut p = std::ptr::null_mut();
        assert_eq!(posix_memalign(&mut p, 64, 1000), 0);
        assert_eq!(p as usize % 64, 0);
        let p = reallocarray(p, 100, 100);
        assert!(!p.is_null());
        assert!(libc::malloc_usable_size(p) >= 10_000);
        libc::free(p);
        // Overflow is refused with ENOMEM, as glibc does.
        let q = libc::malloc(8);
        assert!(reallocarray(q, usize::MAX / 2, 3).is_null());
        libc::free(q);
    }
}

#[test]
fn torture_eight_threads_cross_border() {
    const NAME: &str = "torture_eight_threads_cross_border";
    if !is_child(NAME) {
        // No malloc checks here: they would make a million operations a thread too slow;
        // glibc's own consistency checks still abort on a foreign pointer.
        let host = host();
        let out = rerun_self(
            NAME,
            &[("CAPSULE_TEST_HOST", host.root().to_str().unwrap())],
        );
        assert!(
            out.status.success(),
            "{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let k = keeper();
    let (cmalloc, crealloc, cfree): (
        extern "C" fn(usize) -> *mut c_void,
        extern "C" fn(*mut c_void, usize) -> *mut c_void,
        extern "C" fn(*mut c_void),
        // SAFETY: the fixture's functions are called with the C signatures they have, on pointers they or the program allocated, each freed once.
    ) = unsafe {
        (
            func(&k, "c_malloc"),
            func(&k, "c_realloc"),
            func(&k, "c_free"),
        )
    };
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ t;
                let mut next = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                let mut live: Vec<(*mut u8, usize)> = Vec::with_capacity(64);
                for _ in 0..1_000_000 {
                    let r = next();
                    let size = 1 + (r as usize >> 8) % (1 << 20);
                    let inside = r & 1 == 0;
                    match (r >> 1) % 3 {
                        0 if live.len() < 64 => {
                            let p = if inside {
                                cmalloc(size)
                            } else {
                                // SAFETY: plain allocation; the result is checked for NULL before use.
                                unsafe { libc::malloc(size) }
                            };
                            assert!(!p.is_null());
                            // SAFETY: p points to a live allocation of at least one byte made above.
                            unsafe { *(p as *mut u8) = size as u8 };
                            live.push((p as *mut u8, size));
                        }
                        1 if !live.is_empty() => {
                            let i = (r >> 3) as usize % live.len();
                            let (p, old) = live[i];
                            // SAFETY: p points to a live allocation of at least one byte made above.
                            assert_eq!(unsafe { *p }, old as u8, "heap corrupted");
                            let q = if inside {
                                crealloc(p as _, size)
                            } else {
                                // SAFETY: plain allocation; the result is checked for NULL before use.
                                unsafe { libc::realloc(p as _, size) }
                            };
                            assert!(!q.is_null());
                            // SAFETY: p points to a live allocation of at least one byte made above.
                            unsafe { *(q as *mut u8) = size as u8 };
                            live[i] = (q as *mut u8, size);
                        }
                        _ if !live.is_empty() => {
                            let (p, old) = live.swap_remove((r >> 3) as usize % live.len());
                            // SAFETY: p points to a live allocation of at least one byte made above.
                            assert_eq!(unsafe { *p }, old as u8, "heap corrupted");
                            if inside {
                                cfree(p as _)
                            } else {
                                // SAFETY: the pointer came from the malloc family (routed to one allocator) and is freed once.
                                unsafe { libc::free(p as _) }
                            }
                        }
                        _ => {}
                    }
                }
                for (p, _) in live {
                    // SAFETY: the pointer came from the malloc family (routed to one allocator) and is freed once.
                    unsafe { libc::free(p as _) };
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("torture thread");
    }
    // The program's heap is still consistent: glibc checks its arenas here.
    // SAFETY: plain allocation; the result is checked for NULL before use.
    let p = unsafe { libc::malloc(1 << 16) };
    assert!(!p.is_null());
    // SAFETY: the pointer came from the malloc family (routed to one allocator) and is freed once.
    unsafe { libc::free(p) };
}
