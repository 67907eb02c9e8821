//! Capsules loaded from several threads at once, while other threads call into loaded
//! capsules, allocate and free across the border, and dlopen/dlclose inside a capsule.
//! Runs in a child process that the test kills after a deadline: a deadlock fails it.

use capsule::Capsule;
use capsule_tests::{build_lib, func, is_child, rerun_self, Lib, Tree};
use std::ffi::{c_int, c_void};
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const WORKER: &str = r#"
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
void *w_malloc(size_t n) { return malloc(n); }
void w_free(void *p) { free(p); }
char *w_strdup(const char *s) { return strdup(s); }
/* dlopen and dlclose the plugin inside the capsule; its id, or -1. */
int w_plugin_round(void) {
    void *h = dlopen("libplug.so.1", RTLD_NOW | (rand() & 1 ? RTLD_GLOBAL : RTLD_LOCAL));
    if (!h) return -1;
    int (*id)(void) = (int (*)(void))dlsym(h, "plug_id");
    int r = id ? id() : -2;
    dlclose(h);
    return r;
}
"#;

const PLUG: &str = r#"
#include <stdlib.h>
static void *kept;
__attribute__((constructor)) static void init(void) { kept = malloc(32); }
__attribute__((destructor)) static void fini(void) { free(kept); }
int plug_id(void) { return 7; }
"#;

fn host() -> Tree {
    let tree = Tree::new();
    build_lib(
        &Lib {
            source: WORKER,
            soname: Some("libworker.so.1"),
            args: &["-Wl,-rpath,$ORIGIN"],
        },
        &tree.path("usr/lib/libworker.so.1"),
    );
    build_lib(
        &Lib {
            source: PLUG,
            soname: Some("libplug.so.1"),
            args: &[],
        },
        &tree.path("usr/lib/libplug.so.1"),
    );
    tree
}

#[test]
fn loads_calls_allocations_and_dlopens_from_many_threads() {
    const NAME: &str = "loads_calls_allocations_and_dlopens_from_many_threads";
    if !is_child(NAME) {
        let trees = [host(), host(), host()];
        let roots: Vec<String> = trees
            .iter()
            .map(|t| t.root().display().to_string())
            .collect();
        let started = Instant::now();
        let out = rerun_self(
            NAME,
            &[
                ("CAPSULE_TEST_HOSTS", &roots.join(":")),
                ("GLIBC_TUNABLES", "glibc.malloc.check=3"),
                ("LD_PRELOAD", "libc_malloc_debug.so.0"),
            ],
        );
        assert!(
            out.status.success(),
            "child failed ({}) after {:?}:\n{}\n{}",
            out.status,
            started.elapsed(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    // A deadlock must fail the test, not hang it.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(120));
        eprintln!("concurrency test: still running after 120 s: deadlock");
        std::process::exit(3);
    });
    let hosts: Vec<PathBuf> = std::env::var("CAPSULE_TEST_HOSTS")
        .unwrap()
        .split(':')
        .map(PathBuf::from)
        .collect();

    // One capsule loaded up front, for the threads that call and dlopen.
    let first = Arc::new(Capsule::load("libworker.so.1", &hosts[0]).expect("load"));
    let start = Arc::new(Barrier::new(8));
    let mut threads = Vec::new();

    // Four threads load capsules at once: the first prefix again, and two new ones.
    for t in 0..4 {
        let (hosts, start) = (hosts.clone(), start.clone());
        threads.push(std::thread::spawn(move || {
            start.wait();
            let mut ids = Vec::new();
            for host in [&hosts[t % 3], &hosts[(t + 1) % 3]] {
                let c = Capsule::load("libworker.so.1", host).expect("concurrent load");
                let strdup: extern "C" fn(*const libc::c_char) -> *mut libc::c_char =
                    // SAFETY: the fixture defines these functions with exactly these C signatures.
                    unsafe { func(&c, "w_strdup") };
                let p = strdup(c"loaded".as_ptr());
                // SAFETY: the pointer came from the malloc family (routed to one allocator) and is freed once.
                unsafe { libc::free(p as *mut c_void) };
                ids.push((host.clone(), c.namespace_id()));
            }
            ids
        }));
    }
    // Two threads allocate and free across the border.
    for _ in 0..2 {
        let (c, start) = (first.clone(), start.clone());
        threads.push(std::thread::spawn(move || {
            let (cmalloc, cfree): (
                extern "C" fn(usize) -> *mut c_void,
                extern "C" fn(*mut c_void),
                // SAFETY: the fixture defines these functions with exactly these C signatures.
            ) = unsafe { (func(&c, "w_malloc"), func(&c, "w_free")) };
            start.wait();
            for i in 0..100_000usize {
                let size = 1 + i % 4096;
                if i % 2 == 0 {
                    let p = cmalloc(size);
                    assert!(!p.is_null());
                    // SAFETY: the pointer came from the malloc family (routed to one allocator) and is freed once.
                    unsafe { libc::free(p) };
                } else {
                    // SAFETY: plain allocation; the result is checked for NULL before use.
                    let p = unsafe { libc::malloc(size) };
                    cfree(p);
                }
            }
            Vec::new()
        }));
    }
    // Two threads dlopen and dlclose a plugin inside the capsule.
    for _ in 0..2 {
        let (c, start) = (first.clone(), start.clone());
        threads.push(std::thread::spawn(move || {
            // SAFETY: the fixture defines these functions with exactly these C signatures.
            let round: extern "C" fn() -> c_int = unsafe { func(&c, "w_plugin_round") };
            start.wait();
            for _ in 0..300 {
                assert_eq!(round(), 7, "dlopen/dlsym/dlclose inside the capsule");
            }
            Vec::new()
        }));
    }
    let mut seen = Vec::new();
    for t in threads {
        seen.extend(t.join().expect("a worker thread failed"));
    }
    // One namespace per prefix, whichever thread got there first.
    for (host, lmid) in &seen {
        let expected = seen.iter().find(|(h, _)| h == host).unwrap().1;
        assert_eq!(*lmid, expected, "{host:?}");
    }
    let first_lmid = seen.iter().find(|(h, _)| *h == hosts[0]).unwrap().1;
    assert_eq!(first_lmid, first.namespace_id());
    let mut lmids: Vec<i64> = seen.iter().map(|(_, l)| *l).collect();
    lmids.sort();
    lmids.dedup();
    assert_eq!(lmids.len(), 3, "three prefixes, three namespaces: {seen:?}");
    assert_eq!(capsule_tests::libc_images_mapped(), 1);
    drop(first);
}
