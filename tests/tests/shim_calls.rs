//! Programs linked against generated shims (plain `-lfoo`, no capsule API) get the host
//! library's implementation: versioned functions, many-argument and variadic calls,
//! variables, function pointers; a function the host lacks aborts naming it; zlib end to end.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use capsule_tests::{
    build_lib, build_program, generate_and_build_shim, install_shim, run_ok, Lib, Tree,
};

fn shim_target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("shim-target")
}

/// The host library. The shim is generated from a newer build of it (with `NEWER`).
const CALLS_SOURCE: &str = r#"
#include <stdarg.h>
int foo_v1(void) { return 1; }
int foo_v2(void) { return 2; }
__asm__(".symver foo_v1, foo@CALLS_1");
__asm__(".symver foo_v2, foo@@CALLS_2");
int twice(int x) { return 2 * x + HOST_MARK; }
double mix12(int a, double b, int c, double d, double e, double f, double g,
             double h, double i, double j, double k, int l) {
    return a + b * 2 + c * 3 + d * 4 + e * 5 + f * 6 + g * 7 + h * 8 + i * 9
         + j * 10 + k * 11 + l * 12;
}
double vsum(int n, ...) {
    va_list ap; double s = 0; va_start(ap, n);
    for (int x = 0; x < n; x++) s += (x % 2) ? va_arg(ap, double) : va_arg(ap, int);
    va_end(ap); return s;
}
int counter = 41;
const char greeting[32] = "greetings from the host";
"#;

const NEWER: &str = "int newer_only(void) { return 99; }\n";

const CALLS_SCRIPT: &str =
    "CALLS_1 { global: foo; twice; mix12; vsum; counter; greeting; local: *; };\n\
                            CALLS_2 { global: foo; newer_only; } CALLS_1;\n";

const PROGRAM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
int foo(void);
int twice(int);
double mix12(int, double, int, double, double, double, double, double, double, double, double, int);
double vsum(int, ...);
int newer_only(void);
extern int counter;
extern const char greeting[32];
int main(int argc, char **argv) {
    if (argc > 1) return newer_only();
    int (*foo1)(void) = (int (*)(void))dlvsym(RTLD_DEFAULT, "foo", "CALLS_1");
    int (*ptr)(int) = &twice;
    int (*found)(int) = (int (*)(int))dlsym(RTLD_DEFAULT, "twice");
    printf("foo=%d foo@CALLS_1=%d twice=%d ptr=%d dlsym=%d\n",
           foo(), foo1 ? foo1() : -1, twice(5), ptr(6), found ? found(7) : -1);
    printf("mix12=%g vsum=%g\n", mix12(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12),
           vsum(6, 1, 2.5, 3, 4.25, 5, 6.125));
    printf("counter=%d greeting=%s\n", counter, greeting);
    /* The program's own slots were rewritten: its calls go straight to the host. */
    Dl_info info;
    if (dladdr((void *)&mix12, &info)) printf("program reaches mix12 in %s\n", info.dli_fname);
    /* A library loaded later keeps calling through the shim's trampolines. */
    const char *late = getenv("LATE_LIB");
    if (late) {
        void *h = dlopen(late, RTLD_NOW);
        if (!h) { printf("dlopen %s: %s\n", late, dlerror()); return 1; }
        ((void (*)(void))dlsym(h, "late_calls"))();
    }
    return 0;
}
"#;

/// A library the program dlopens after the shim loaded: its slots are not rewritten.
const LATE: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
double mix12(int, double, int, double, double, double, double, double, double, double, double, int);
double vsum(int, ...);
void late_calls(void) {
    printf("late mix12=%g vsum=%g\n", mix12(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12),
           vsum(6, 1, 2.5, 3, 4.25, 5, 6.125));
    Dl_info info;
    if (dladdr((void *)&mix12, &info)) printf("late library reaches mix12 in %s\n", info.dli_fname);
}
"#;

/// Build `libcalls.so.1` with `-DHOST_MARK=mark` and `extra` source into `tree`'s usr/lib.
fn calls_library(tree: &Tree, mark: i32, extra: &str) {
    let map = tree.write("src/calls.map", CALLS_SCRIPT);
    let source = format!("{CALLS_SOURCE}{extra}");
    let (map_arg, mark_arg) = (
        format!("-Wl,--version-script={}", map.display()),
        format!("-DHOST_MARK={mark}"),
    );
    build_lib(
        &Lib {
            source: &source,
            soname: Some("libcalls.so.1"),
            args: &[&map_arg, &mark_arg],
        },
        &tree.path(&capsule_tests::for_machine(
            "usr/lib/x86_64-linux-gnu/libcalls.so.1",
        )),
    );
}

/// Generate the shim of `library` from `prefix` and build it.
fn generate_and_build(library: &str, prefix: &Path, work: &Tree) -> PathBuf {
    generate_and_build_shim(library, prefix, &work.path("shims"), &shim_target_dir())
}

fn run_program(program: &Path, envs: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut cmd = capsule_tests::program(program);
    cmd.args(args).env_remove("CAPSULE_PREFIX");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run the program")
}

#[test]
fn program_linked_against_the_shim_calls_the_host_library() {
    let (build, host, work) = (Tree::new(), Tree::new(), Tree::new());
    calls_library(&build, 0, NEWER);
    calls_library(&host, 1000, "");
    let shim = generate_and_build("libcalls.so.1", build.root(), &work);
    let lib_dir = work.path("lib");
    install_shim(&shim, "libcalls.so.1", &lib_dir);

    let program = work.path("bin/calls");
    let (l_arg, rpath) = (
        format!("-L{}", lib_dir.display()),
        format!("-Wl,-rpath,{}", lib_dir.display()),
    );
    build_program(PROGRAM, &program, &[&l_arg, &rpath, "-lcalls", "-ldl"]);
    let late = work.path("lib/liblate.so");
    build_lib(
        &Lib {
            source: LATE,
            soname: Some("liblate.so"),
            args: &[&l_arg, "-lcalls", "-Wl,--no-as-needed"],
        },
        &late,
    );

    let out = run_program(
        &program,
        &[
            ("CAPSULE_LIBCALLS_SO_1_PREFIX", host.root()),
            ("LATE_LIB", late.as_path()),
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "program failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // HOST_MARK = 1000 shows the host's build answered, not the one the shim came from.
    let host_lib = host.root().join(capsule_tests::for_machine(
        "usr/lib/x86_64-linux-gnu/libcalls.so.1",
    ));
    let shim_lib = lib_dir.join("libcalls.so.1");
    assert_eq!(
        stdout,
        format!(
            "foo=2 foo@CALLS_1=1 twice=1010 ptr=1012 dlsym=1014\n\
             mix12=650 vsum=21.875\n\
             counter=41 greeting=greetings from the host\n\
             program reaches mix12 in {}\n\
             late mix12=650 vsum=21.875\n\
             late library reaches mix12 in {}\n",
            host_lib.display(),
            shim_lib.display()
        ),
        "12-argument and variadic calls, through rewritten slots (the program) and through \
         the trampolines (the late library)"
    );
    // The shim came from a newer build than the host's library: a warning says so once.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("capsule: warning: libcalls.so.1: ").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("1 function(s) it exports are missing there (newer_only@@CALLS_2)")
            && stderr.contains("capsule-gen --check"),
        "{stderr}"
    );

    // newer_only is in the shim (generated from the newer build), not in the host's library.
    let out = run_program(
        &program,
        &[("CAPSULE_LIBCALLS_SO_1_PREFIX", host.root())],
        &["missing"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "calling a missing function did not abort"
    );
    assert!(
        stderr.contains(
            "libcalls.so.1: newer_only@@CALLS_2 was called, but the host's libcalls.so.1 ("
        ) && stderr.contains("does not define it"),
        "{stderr}"
    );
}

#[test]
fn shim_without_its_library_aborts_at_load_with_the_reason() {
    // Its own soname: shims share a target directory, so each test builds a different one.
    let (build, empty, work) = (Tree::new(), Tree::new(), Tree::new());
    build_lib(
        &Lib {
            source: "int twice(int x) { return 2 * x; }",
            soname: Some("libloadfail.so.1"),
            args: &[],
        },
        &build.path(&capsule_tests::for_machine(
            "usr/lib/x86_64-linux-gnu/libloadfail.so.1",
        )),
    );
    let shim = generate_and_build("libloadfail.so.1", build.root(), &work);
    let lib_dir = work.path("lib");
    install_shim(&shim, "libloadfail.so.1", &lib_dir);
    let program = work.path("bin/loadfail");
    let (l_arg, rpath) = (
        format!("-L{}", lib_dir.display()),
        format!("-Wl,-rpath,{}", lib_dir.display()),
    );
    build_program(
        "int twice(int); int main(void) { return twice(1); }",
        &program,
        &[&l_arg, &rpath, "-lloadfail"],
    );
    std::fs::create_dir_all(empty.path("usr/lib")).unwrap();
    let out = run_program(
        &program,
        &[("CAPSULE_LIBLOADFAIL_SO_1_PREFIX", empty.root())],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("libloadfail.so.1 not found in prefix")
            && stderr.contains("cannot work without it"),
        "{stderr}"
    );
}

const ZLIB_PROGRAM: &str = r#"
#include <stdio.h>
#include <string.h>
unsigned long crc32(unsigned long, const unsigned char *, unsigned);
int compress(unsigned char *, unsigned long *, const unsigned char *, unsigned long);
int uncompress(unsigned char *, unsigned long *, const unsigned char *, unsigned long);
const char *zlibVersion(void);
typedef void *gzFile;
gzFile gzopen(const char *, const char *);
int gzwrite(gzFile, const void *, unsigned);
int gzread(gzFile, void *, unsigned);
int gzclose(gzFile);
int main(int argc, char **argv) {
    static unsigned char in[65536], packed[70000], out[65536];
    for (unsigned i = 0; i < sizeof in; i++) in[i] = i % 251;
    unsigned long plen = sizeof packed, olen = sizeof out;
    if (compress(packed, &plen, in, sizeof in) != 0) return 10;
    if (uncompress(out, &olen, packed, plen) != 0) return 11;
    if (olen != sizeof in || memcmp(in, out, olen) != 0) return 12;
    printf("crc=%lx packed_smaller=%d version=%s\n", crc32(0, (const unsigned char *)"hello", 5),
           plen < sizeof in / 4, zlibVersion());
    /* A gz file: zlib allocates its stream state inside the capsule and frees it there. */
    gzFile gz = gzopen(argv[1], "wb9");
    if (!gz || gzwrite(gz, in, sizeof in) != (int)sizeof in || gzclose(gz) != 0) return 13;
    gz = gzopen(argv[1], "rb");
    memset(out, 0, sizeof out);
    if (!gz || gzread(gz, out, sizeof out) != (int)sizeof out || gzclose(gz) != 0) return 14;
    printf("gz=%s\n", memcmp(in, out, sizeof in) == 0 ? "same" : "differs");
    return 0;
}
"#;

#[test]
fn zlib_through_a_generated_shim() {
    let work = Tree::new();
    let shim = generate_and_build("libz.so.1", Path::new("/"), &work);
    let lib_dir = work.path("lib");
    install_shim(&shim, "libz.so.1", &lib_dir);
    let program = work.path("bin/zlib");
    let (l_arg, rpath) = (
        format!("-L{}", lib_dir.display()),
        format!("-Wl,-rpath,{}", lib_dir.display()),
    );
    build_program(ZLIB_PROGRAM, &program, &[&l_arg, &rpath, "-lz"]);
    let gz = work.path("out/data.gz");
    let out = run_program(
        &program,
        &[("CAPSULE_DEBUG", Path::new("libs"))],
        &[gz.to_str().unwrap()],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    assert!(
        stdout.starts_with("crc=3610a686 packed_smaller=1 version=1."),
        "{stdout}"
    );
    assert!(stdout.ends_with("gz=same\n"), "{stdout}");
    // The file is a real gzip file: the system's gzip reads it.
    let unpacked = run_ok(Command::new("gzip").arg("-dc").arg(&gz), "gzip -dc");
    let expected: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(unpacked.stdout, expected);
    // The program's libz.so.1 is the shim, and the shim forwarded to the system's zlib.
    assert!(
        stderr.contains("shim libz.so.1: forwarding to "),
        "{stderr}"
    );
}
