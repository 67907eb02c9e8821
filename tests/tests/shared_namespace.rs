//! Several shims in one process, each with its own copy of the runtime, share one
//! namespace per prefix (as libEGL and libGL must: both need one libGLdispatch), the first
//! copy wiring the later shims up, and a per-library prefix gives a library a namespace of
//! its own.

use std::path::{Path, PathBuf};
use std::process::Command;

use capsule_tests::{
    build_lib, build_program, generate_and_build_shim, install_shim, run_ok, Lib, Tree,
};

const COMMON: &str = "static int counter; int common_bump(void) { return ++counter; }";

const PROGRAM: &str = r#"
#include <dlfcn.h>
#include <stdio.h>
int a_bump(void);
int b_bump(void);
int main(void) {
    int x = a_bump(), y = b_bump(), z = a_bump();
    /* Both shims' answers corrected: dlsym agrees with the rewritten address slots. */
    int a = dlsym(RTLD_DEFAULT, "a_bump") == (void *)a_bump;
    int b = dlsym(RTLD_DEFAULT, "b_bump") == (void *)b_bump;
    printf("%d %d %d %d %d\n", x, y, z, a, b);
    return 0;
}
"#;

/// A host tree with libcommon, and liba and libb that both need it.
fn host() -> Tree {
    let tree = Tree::new();
    let dir = tree.path(&capsule_tests::for_machine("usr/lib/x86_64-linux-gnu"));
    std::fs::create_dir_all(&dir).unwrap();
    build_lib(
        &Lib {
            source: COMMON,
            soname: Some("libcommon.so.1"),
            args: &[],
        },
        &dir.join("libcommon.so.1"),
    );
    let link = format!("-L{}", dir.display());
    for name in ["a", "b"] {
        let source =
            format!("int common_bump(void); int {name}_bump(void) {{ return common_bump(); }}");
        build_lib(
            &Lib {
                source: &source,
                soname: Some(&format!("lib{name}.so.1")),
                args: &[&link, "-l:libcommon.so.1", "-Wl,--no-as-needed"],
            },
            &dir.join(format!("lib{name}.so.1")),
        );
    }
    tree
}

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("shared-namespace-target")
}

/// The program linked against shims of liba and libb.
fn program(host: &Tree, work: &Tree) -> PathBuf {
    let lib_dir = work.path("lib");
    for soname in ["liba.so.1", "libb.so.1"] {
        let shim = generate_and_build_shim(soname, host.root(), &work.path("shims"), &target_dir());
        install_shim(&shim, soname, &lib_dir);
    }
    let exe = work.path("bin/program");
    let dir = lib_dir.display().to_string();
    build_program(
        PROGRAM,
        &exe,
        &[
            &format!("-L{dir}"),
            "-la",
            "-lb",
            &format!("-Wl,-rpath,{dir}"),
        ],
    );
    exe
}

#[test]
fn two_shims_of_one_prefix_share_a_namespace_and_per_library_prefixes_split_it() {
    let host = host();
    let work = Tree::new();
    let exe = program(&host, &work);

    let shared = run_ok(
        capsule_tests::program(&exe)
            .env("CAPSULE_PREFIX", host.root())
            .env("CAPSULE_DEBUG", "libs"),
        "run with one prefix",
    );
    let stderr = String::from_utf8_lossy(&shared.stderr);
    assert_eq!(
        String::from_utf8_lossy(&shared.stdout),
        "1 2 3 1 1\n",
        "one libcommon for both, dlsym corrected for both:\n{stderr}"
    );
    assert!(
        stderr.contains("shared with another copy of the runtime"),
        "{stderr}"
    );
    // The shims' copies are built from one runtime: the first wires the second up.
    let wired = stderr
        .lines()
        .filter(|l| l.contains("wired up by the copy of the runtime that owns its namespace"))
        .count();
    assert_eq!(wired, 1, "{stderr}");

    // libb from a copy of the same tree, named by its own variable: two namespaces, two
    // libcommons.
    let other = Tree::new();
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(host.root().join("usr"))
            .arg(other.root()),
        "copy the host tree",
    );
    let split = run_ok(
        capsule_tests::program(&exe)
            .env("CAPSULE_PREFIX", host.root())
            .env("CAPSULE_LIBB_SO_1_PREFIX", other.root()),
        "run with a per-library prefix",
    );
    assert_eq!(String::from_utf8_lossy(&split.stdout), "1 1 2 1 1\n");
}
