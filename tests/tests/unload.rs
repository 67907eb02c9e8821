//! dlclose of a shim and process exit run cleanly: atexit handlers and destructors on both
//! sides, no use after free (glibc's malloc checks are on). A shim pins itself (the
//! program's slots point into the capsule), so calls still work after its dlclose.

use capsule_tests::{
    build_lib, build_program, generate_and_build_shim, install_shim, run_ok, Lib, Tree,
};

const HOST: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static char *kept;
static void capsule_atexit(void) { printf("capsule atexit (%s)\n", kept); fflush(stdout); }
__attribute__((constructor)) static void init(void) { kept = strdup("kept"); atexit(capsule_atexit); }
__attribute__((destructor)) static void fini(void) {
    printf("capsule destructor\n");
    fflush(stdout);
    free(kept);
}
char *bye_message(void) { return strdup("hello from the capsule"); }
"#;

const PROGRAM: &str = r#"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
static void program_atexit(void) { printf("program atexit\n"); fflush(stdout); }
__attribute__((destructor)) static void program_fini(void) { printf("program destructor\n"); fflush(stdout); }
int main(int argc, char **argv) {
    atexit(program_atexit);
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) { printf("dlopen: %s\n", dlerror()); return 1; }
    char *(*bye)(void) = (char *(*)(void))dlsym(h, "bye_message");
    char *m = bye();
    printf("%s\n", m);
    free(m);
    if (dlclose(h) != 0) { printf("dlclose: %s\n", dlerror()); return 1; }
    m = bye();
    printf("after dlclose: %s\n", m);
    free(m);
    fflush(stdout);
    return 0;
}
"#;

#[test]
fn dlclose_of_a_shim_and_exit_run_every_handler_cleanly() {
    let (host, work) = (Tree::new(), Tree::new());
    build_lib(
        &Lib {
            source: HOST,
            soname: Some("libbye.so.1"),
            args: &[],
        },
        &host.path("usr/lib/libbye.so.1"),
    );
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("unload-shim-target");
    let shim = generate_and_build_shim("libbye.so.1", host.root(), &work.path("shims"), &target);
    let lib_dir = work.path("lib");
    install_shim(&shim, "libbye.so.1", &lib_dir);
    let exe = work.path("bin/bye");
    build_program(PROGRAM, &exe, &["-ldl"]);
    let out = run_ok(
        capsule_tests::program_with(
            &exe,
            &[
                ("GLIBC_TUNABLES", "glibc.malloc.check=3"),
                ("LD_PRELOAD", "libc_malloc_debug.so.0"),
            ],
        )
        .arg(lib_dir.join("libbye.so.1"))
        .env("CAPSULE_PREFIX", host.root()),
        "run the program that dlcloses its shim",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    // exit runs handlers newest first: the capsule's (registered when the shim was
    // dlopened, after main registered its own) while its data is alive, then the program's;
    // then ld.so's finalizer runs every namespace's destructors.
    assert_eq!(
        &lines[..4],
        [
            "hello from the capsule",
            "after dlclose: hello from the capsule",
            "capsule atexit (kept)",
            "program atexit"
        ],
        "{stdout}"
    );
    let mut rest = lines[4..].to_vec();
    rest.sort_unstable();
    assert_eq!(
        rest,
        ["capsule destructor", "program destructor"],
        "{stdout}"
    );
}
