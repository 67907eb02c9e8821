//! Threads created by the program (before or after the capsule was loaded) can call into
//! the capsule and use locale, ctype and NSS functions there, although the namespace's
//! libc never ran its per-thread setup on them.

use capsule::Capsule;
use capsule_tests::{build_lib, func, Lib, Tree};
use std::ffi::{c_char, c_int, CStr};
use std::sync::mpsc;

const TEXT: &str = r#"
#include <ctype.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* ctype straight away, before anything on this thread could have allocated. */
int text_upper(int c) { return toupper(c); }
int text_is_alpha(int c) { return isalpha(c) != 0; }
long text_strtol(const char *s) { return strtol(s, 0, 10); }
/* NSS, which parses /etc/passwd with ctype inside libc. */
int text_user_name(char *out, int len) {
    struct passwd pw, *result = 0;
    char buf[4096];
    if (getpwuid_r(0, &pw, buf, sizeof buf, &result) != 0 || !result) return -1;
    strncpy(out, pw.pw_name, len - 1);
    out[len - 1] = 0;
    return 0;
}
"#;

struct Text {
    upper: extern "C" fn(c_int) -> c_int,
    is_alpha: extern "C" fn(c_int) -> c_int,
    strtol: extern "C" fn(*const c_char) -> libc::c_long,
    user_name: extern "C" fn(*mut c_char, c_int) -> c_int,
}

impl Text {
    fn exercise(&self) {
        assert_eq!((self.upper)(b'q' as c_int), b'Q' as c_int);
        assert_eq!((self.is_alpha)(b'7' as c_int), 0);
        assert_eq!((self.is_alpha)(b'x' as c_int), 1);
        assert_eq!((self.strtol)(c"  \t 1234".as_ptr()), 1234);
        let mut name = [0 as c_char; 64];
        assert_eq!((self.user_name)(name.as_mut_ptr(), 64), 0);
        assert_eq!(
            // SAFETY: the fixture wrote a NUL-terminated name into this buffer.
            unsafe { CStr::from_ptr(name.as_ptr()) }.to_str().unwrap(),
            "root"
        );
    }
}

#[test]
fn program_threads_before_and_after_load_use_ctype_and_nss_inside() {
    // A thread that exists before the capsule does.
    let (go, wait) = mpsc::channel::<Text>();
    let early = std::thread::spawn(move || wait.recv().unwrap().exercise());

    let host = Tree::new();
    build_lib(
        &Lib {
            source: TEXT,
            soname: Some("libtext.so.1"),
            args: &[],
        },
        &host.path("usr/lib/libtext.so.1"),
    );
    let capsule = Capsule::load("libtext.so.1", host.root()).expect("load libtext");
    // SAFETY: the fixture defines these functions with exactly these C signatures.
    let text = || unsafe {
        Text {
            upper: func(&capsule, "text_upper"),
            is_alpha: func(&capsule, "text_is_alpha"),
            strtol: func(&capsule, "text_strtol"),
            user_name: func(&capsule, "text_user_name"),
        }
    };
    go.send(text()).unwrap();
    early.join().expect("a thread created before the load");

    // A thread created after.
    let t = text();
    std::thread::spawn(move || t.exercise())
        .join()
        .expect("a thread created after the load");
    // And the thread that loaded it.
    text().exercise();
}

const WORKERS: &str = r#"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
/* Threads created by the namespace's libc, allocating from the program's heap. */
static void *churn(void *arg) {
    (void)arg;
    for (int i = 0; i < 200000; i++) {
        char *p = malloc(16 + i % 1024);
        p[0] = (char)i;
        free(p);
    }
    return 0;
}
int workers_run(int n) {
    pthread_t t[16];
    for (int i = 0; i < n; i++) if (pthread_create(&t[i], 0, churn, 0) != 0) return -1;
    for (int i = 0; i < n; i++) pthread_join(t[i], 0);
    return 0;
}
"#;

/// A plain C program (single-threaded until the capsule's threads start) linked against
/// a generated shim of libworkers: it prints the program libc's flag after the shim loaded
/// the capsule, lets the capsule's threads churn the heap, and prints the flag again.
const PROGRAM: &str = r#"
#include <stdio.h>
#include <sys/single_threaded.h>
int workers_run(int);
int main(void) {
    printf("single_threaded=%d\n", __libc_single_threaded);
    fflush(stdout);
    int rc = workers_run(4);
    printf("after the capsule's threads: single_threaded=%d\n", __libc_single_threaded);
    return rc == 0 ? 0 : 1;
}
"#;

#[test]
fn threads_the_capsule_creates_are_the_program_libcs() {
    let (host, work) = (Tree::new(), Tree::new());
    build_lib(
        &Lib {
            source: WORKERS,
            soname: Some("libworkers.so.1"),
            args: &["-pthread"],
        },
        &host.path("usr/lib/libworkers.so.1"),
    );
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("threads-shim-target");
    let shim = capsule_tests::generate_and_build_shim(
        "libworkers.so.1",
        host.root(),
        &work.path("shims"),
        &target,
    );
    let lib_dir = work.path("lib");
    capsule_tests::install_shim(&shim, "libworkers.so.1", &lib_dir);
    let exe = work.path("bin/workers");
    let dir = lib_dir.display().to_string();
    capsule_tests::build_program(
        PROGRAM,
        &exe,
        &[
            &format!("-L{dir}"),
            "-lworkers",
            &format!("-Wl,-rpath,{dir}"),
        ],
    );
    for _ in 0..5 {
        let out = capsule_tests::run_ok(
            capsule_tests::program(&exe).env("CAPSULE_PREFIX", host.root()),
            "run the program whose capsule starts threads",
        );
        // The capsule's pthread_create is the program's libc's: loading a capsule leaves
        // a single-threaded program single-threaded, and the capsule's threads end that
        // for the one libc (whose malloc then takes its arena lock).
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "single_threaded=1\nafter the capsule's threads: single_threaded=0\n"
        );
    }
}
