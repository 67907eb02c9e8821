//! What a shim does to the program beyond its trampolines: the program's (and its other
//! objects') call slots point straight at the host's functions, a variable is one object
//! shared by the program and the host library, and `dlsym`/`dlvsym` answer as the real
//! library would (NULL for what the host lacks, the host's symbols the shim's list did not
//! have, `RTLD_NEXT` still relative to the caller), also for a shim opened with `dlopen`.

use std::path::{Path, PathBuf};
use std::process::Output;

use capsule_tests::{build_lib, build_program, generate_and_build_shim, install_shim, Lib, Tree};

const HOST: &str = r#"
int twice(int x) { return 2 * x + 1000; }
int counter = 5;
void bump(void) { counter++; }
int host_only(void) { return 77; }
"#;

const BUILD_EXTRA: &str = "int newer_only(void) { return 99; }\n";

/// Two libraries defining `whoami@WHO_1`: `dlsym(RTLD_NEXT)` from the first must find the
/// second's, which tells a caller found by return address from one taken for the shim.
const FIRST: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
int twice(int);
int whoami(void) { return 1; }
void *first_twice_address(void) { return (void *)&twice; }
int first_twice(int x) { return twice(x); }
int first_next(void) {
    int (*f)(void) = (int (*)(void))dlsym(RTLD_NEXT, "whoami");
    return f ? f() : -1;
}
int first_vnext(void) {
    int (*f)(void) = (int (*)(void))dlvsym(RTLD_NEXT, "whoami", "WHO_1");
    return f ? f() : -1;
}
"#;
const SECOND: &str = "int whoami(void) { return 2; }\n";

const LINKED: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
int twice(int);
void bump(void);
extern int counter;
void *first_twice_address(void);
int first_twice(int);
int first_next(void);
int first_vnext(void);
static const char *where(void *p) {
    Dl_info info;
    return p && dladdr(p, &info) && info.dli_fname ? info.dli_fname : "?";
}
static int call(void *f) { return f ? ((int (*)(void))f)() : -1; }
int main(void) {
    printf("twice=%d first_twice=%d\n", twice(1), first_twice(2));
    printf("exe_slot=%s\n", where((void *)&twice));
    printf("lib_slot=%s\n", where(first_twice_address()));
    bump(); bump();
    printf("counter=%d\n", counter);
    void *shim = dlopen("libwire.so.1", RTLD_LAZY | RTLD_NOLOAD);
    printf("newer_only=%s\n", dlsym(RTLD_DEFAULT, "newer_only") ? "found" : "null");
    printf("newer_only_error=%s\n", dlerror() ? "set" : "none");
    printf("host_only=%d via_handle=%d versioned=%d\n", call(dlsym(RTLD_DEFAULT, "host_only")),
           call(dlsym(shim, "host_only")), call(dlvsym(RTLD_DEFAULT, "host_only", "WIRE_1")));
    printf("host_only_error=%s\n", dlerror() ? "set" : "none");
    printf("neither=%s\n", dlsym(RTLD_DEFAULT, "in_neither_library") ? "found" : "null");
    printf("same_pointer=%d\n", dlsym(shim, "twice") == (void *)&twice);
    printf("next=%d vnext=%d\n", first_next(), first_vnext());
    return 0;
}
"#;

const OPENED: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int mode = argc > 1 && argv[1][0] == 'g' ? RTLD_GLOBAL : RTLD_LOCAL;
    for (int round = 0; round < 3; round++) {
        void *h = dlopen("libwire.so.1", RTLD_NOW | mode);
        if (!h) { printf("dlopen: %s\n", dlerror()); return 1; }
        int (*t)(int) = (int (*)(int))dlsym(h, "twice");
        int (*host_only)(void) = (int (*)(void))dlsym(h, "host_only");
        void (*bump)(void) = (void (*)(void))dlsym(h, "bump");
        int *counter = (int *)dlsym(h, "counter");
        if (!t || !bump || !counter) { printf("dlsym failed\n"); return 1; }
        bump();
        printf("%d %d %s %d\n", t(1), host_only ? host_only() : -1,
               dlsym(h, "newer_only") ? "found" : "null", *counter);
        dlclose(h);
    }
    return 0;
}
"#;

fn wire_library(tree: &Tree, extra: &str) {
    let map = tree.write(
        "src/wire.map",
        "WIRE_1 { global: twice; counter; bump; host_only; newer_only; local: *; };\n",
    );
    let map_arg = format!("-Wl,--version-script={}", map.display());
    build_lib(
        &Lib {
            source: &format!("{HOST}{extra}"),
            soname: Some("libwire.so.1"),
            args: &[&map_arg],
        },
        &tree.path(&capsule_tests::for_machine(
            "usr/lib/x86_64-linux-gnu/libwire.so.1",
        )),
    );
}

/// The generated shim's build tree lacks `host_only` and has `newer_only`.
fn build_tree_library(tree: &Tree) {
    let source = format!(
        "{}{BUILD_EXTRA}",
        HOST.replace("int host_only(void) { return 77; }\n", "")
    );
    let map = tree.write(
        "src/wire.map",
        "WIRE_1 { global: twice; counter; bump; newer_only; local: *; };\n",
    );
    let map_arg = format!("-Wl,--version-script={}", map.display());
    build_lib(
        &Lib {
            source: &source,
            soname: Some("libwire.so.1"),
            args: &[&map_arg],
        },
        &tree.path(&capsule_tests::for_machine(
            "usr/lib/x86_64-linux-gnu/libwire.so.1",
        )),
    );
}

fn who_library(tree: &Tree, name: &str, source: &str, lib_dir: &Path) {
    let map = tree.write(&format!("src/{name}.map"), "WHO_1 { global: *; };\n");
    let (map_arg, l_arg) = (
        format!("-Wl,--version-script={}", map.display()),
        format!("-L{}", lib_dir.display()),
    );
    build_lib(
        &Lib {
            source,
            soname: Some(&format!("lib{name}.so")),
            args: &[&map_arg, &l_arg, "-lwire", "-ldl"],
        },
        &lib_dir.join(format!("lib{name}.so")),
    );
}

fn run(program: &Path, host: &Path, args: &[&str]) -> Output {
    capsule_tests::program(program)
        .args(args)
        .env_remove("CAPSULE_PREFIX")
        .env("CAPSULE_LIBWIRE_SO_1_PREFIX", host)
        .env("CAPSULE_DEBUG", "reloc")
        .output()
        .expect("run the program")
}

fn succeeded(out: &Output) -> (String, String) {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "program failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

fn line<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= line in:\n{stdout}"))
}

#[test]
fn shim_rewires_callers_variables_and_dlsym() {
    let (build, host, work) = (Tree::new(), Tree::new(), Tree::new());
    build_tree_library(&build);
    wire_library(&host, "");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("shim-target");
    let shim = generate_and_build_shim("libwire.so.1", build.root(), &work.path("shims"), &target);
    let lib_dir = work.path("lib");
    install_shim(&shim, "libwire.so.1", &lib_dir);
    who_library(&work, "first", FIRST, &lib_dir);
    who_library(&work, "second", SECOND, &lib_dir);

    let (l_arg, rpath) = (
        format!("-L{}", lib_dir.display()),
        format!("-Wl,-rpath,{}", lib_dir.display()),
    );
    let linked = work.path("bin/linked");
    build_program(
        LINKED,
        &linked,
        &[
            &l_arg,
            &rpath,
            "-Wl,--no-as-needed",
            "-lwire",
            "-lfirst",
            "-lsecond",
            "-ldl",
        ],
    );
    let (stdout, stderr) = succeeded(&run(&linked, host.root(), &[]));
    let host_lib: PathBuf = host.path(&capsule_tests::for_machine(
        "usr/lib/x86_64-linux-gnu/libwire.so.1",
    ));
    let host_lib = host_lib.to_string_lossy();
    assert_eq!(line(&stdout, "twice"), "1002 first_twice=1004", "{stdout}");
    // The slots of the executable and of libfirst hold the host's function, not the shim's.
    assert_eq!(line(&stdout, "exe_slot"), host_lib, "{stdout}");
    assert_eq!(line(&stdout, "lib_slot"), host_lib, "{stdout}");
    assert!(
        stderr.contains("slot(s) now call the host's functions directly"),
        "{stderr}"
    );
    // bump() in the host library increments the program's copy of `counter`.
    assert_eq!(line(&stdout, "counter"), "7", "{stdout}");
    assert_eq!(line(&stdout, "newer_only"), "null", "{stdout}");
    assert_eq!(line(&stdout, "newer_only_error"), "set", "{stdout}");
    assert_eq!(
        line(&stdout, "host_only"),
        "77 via_handle=77 versioned=77",
        "{stdout}"
    );
    assert_eq!(line(&stdout, "host_only_error"), "none", "{stdout}");
    assert_eq!(line(&stdout, "neither"), "null", "{stdout}");
    assert_eq!(line(&stdout, "same_pointer"), "1", "{stdout}");
    assert_eq!(line(&stdout, "next"), "2 vnext=2", "{stdout}");

    let opened = work.path("bin/opened");
    build_program(OPENED, &opened, &[&rpath, "-ldl"]);
    for mode in ["local", "global"] {
        let (stdout, _) = succeeded(&run(&opened, host.root(), &[mode]));
        assert_eq!(
            stdout, "1002 77 null 6\n1002 77 null 7\n1002 77 null 8\n",
            "dlopen with RTLD_{mode}"
        );
    }
}
