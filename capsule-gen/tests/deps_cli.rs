//! `capsule-gen deps`, run as a user would run it.

use std::path::Path;
use std::process::{Command, Output};

fn capsule_gen(args: &[&str], debug: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_capsule-gen"));
    cmd.args(args).env_remove("CAPSULE_DEBUG");
    if debug {
        cmd.env("CAPSULE_DEBUG", "libs");
    }
    cmd.output().expect("run capsule-gen")
}

/// The lines of a successful run, as `[SONAME, PATH, MARK]` (MARK empty when the line
/// has only two fields).
fn lines(out: &Output) -> Vec<[String; 3]> {
    assert!(
        out.status.success(),
        "capsule-gen failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .expect("UTF-8 output")
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert!(
                fields.len() == 2 || fields.len() == 3,
                "not SONAME<TAB>PATH[<TAB>MARK]: {line:?}"
            );
            [
                fields[0].into(),
                fields[1].into(),
                fields.get(2).copied().unwrap_or("").into(),
            ]
        })
        .collect()
}

#[test]
fn libegl_closure_is_printed_dependencies_first() {
    // The plain format: two fields, a third only on glibc's own libraries.
    let plain = lines(&capsule_gen(
        &["deps", "--prefix", "/", "libEGL.so.1"],
        false,
    ));
    for [soname, _, mark] in &plain {
        let glibc = soname.starts_with("libc.so") || soname.starts_with("ld-linux");
        assert_eq!(mark, if glibc { "system" } else { "" }, "{soname}");
    }
    let out = capsule_gen(&["deps", "--why", "--prefix", "/", "libEGL.so.1"], false);
    let lines = lines(&out);
    assert_eq!(lines.len(), plain.len());
    let names: Vec<&str> = lines.iter().map(|l| l[0].as_str()).collect();
    assert_eq!(names.last(), Some(&"libEGL.so.1"), "{names:?}");
    let dispatch = names
        .iter()
        .position(|n| *n == "libGLdispatch.so.0")
        .expect("libGLdispatch.so.0 in libEGL's closure");
    let libc = names
        .iter()
        .position(|n| *n == "libc.so.6")
        .expect("libc.so.6");
    assert!(
        libc < dispatch,
        "libc.so.6 must come before libGLdispatch: {names:?}"
    );
    assert_eq!(lines[libc][2], "system");
    for [soname, path, origin] in &lines {
        assert!(Path::new(path).is_file(), "{soname}: {path} is not a file");
        assert!(
            ["rpath", "runpath", "cache", "conf", "default", "system"].contains(&origin.as_str()),
            "{soname}: origin {origin}"
        );
    }
}

#[test]
fn missing_library_exits_2_naming_it() {
    let out = capsule_gen(&["deps", "libcapsule-no-such-lib.so.9"], false);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("libcapsule-no-such-lib.so.9 not found") && stderr.contains("searched:"),
        "{stderr}"
    );
}

#[test]
fn bad_prefix_exits_2() {
    let out = capsule_gen(
        &["deps", "--prefix", "/nonexistent/capsule", "libz.so.1"],
        false,
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/capsule"), "{stderr}");
}

#[test]
fn debug_lines_say_where_each_object_came_from() {
    let out = capsule_gen(&["deps", "--why", "libz.so.1"], true);
    let lines = lines(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let z = lines
        .iter()
        .find(|l| l[0] == "libz.so.1")
        .expect("libz.so.1 listed");
    assert!(
        stderr.contains(&format!("capsule: libz.so.1 => {} ({})", z[1], z[2])),
        "{stderr}"
    );
    assert!(
        stderr.contains("libc.so.6 => ") && stderr.contains("(system, needed by libz.so.1)"),
        "{stderr}"
    );
}

#[test]
fn help_documents_the_format() {
    let out = capsule_gen(&["deps", "--help"], false);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("SONAME<TAB>PATH"), "{help}");
    assert!(help.contains("SONAME<TAB>PATH<TAB>system"), "{help}");
    let top = capsule_gen(&["--help"], false);
    assert!(top.status.success());
    assert!(String::from_utf8_lossy(&top.stdout).contains("deps"));
}

/// `src` (a real library of this machine) copied to `inside` of `tree`.
fn copy_into(tree: &capsule_tests::Tree, src: &str, inside: &str) {
    let to = tree.path(inside);
    std::fs::copy(src, &to).unwrap_or_else(|e| {
        panic!(
            "copy {src} to {}: {e} (the test needs zlib1g and zlib1g:i386)",
            to.display()
        )
    });
}

/// The `--why` lines of `deps` in `tree` as `SONAME -> (PATH inside the tree, ORIGIN)`,
/// and the debug lines.
fn plan(tree: &capsule_tests::Tree, args: &[&str]) -> (Vec<(String, String, String)>, String) {
    let root = tree.root().canonicalize().unwrap();
    let prefix = root.to_str().unwrap();
    let mut all = vec!["deps", "--why", "--prefix", prefix];
    all.extend_from_slice(args);
    let out = capsule_gen(&all, true);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines = lines(&out)
        .into_iter()
        .map(|[soname, path, why]| {
            let path = path
                .strip_prefix(prefix)
                .map_or(path.clone(), str::to_string);
            (soname, path, why)
        })
        .collect();
    (lines, stderr)
}

#[test]
fn each_library_is_resolved_for_its_own_class() {
    // A prefix holding i386 and x86_64 copies of libz and of a library needing it, built
    // twice with a RUNPATH of `/opt/$LIB/$PLATFORM`: each machine's ld.so expands it to
    // its own directory, and glibc comes from this system's files of that machine.
    let tree = capsule_tests::Tree::new();
    copy_into(
        &tree,
        "/usr/lib/i386-linux-gnu/libz.so.1",
        "opt/lib/i386-linux-gnu/i686/libz.so.1",
    );
    copy_into(
        &tree,
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "opt/lib/x86_64-linux-gnu/x86_64/libz.so.1",
    );
    for (dir, bits, zdir) in [
        ("app32", "-m32", "opt/lib/i386-linux-gnu/i686"),
        ("app64", "-m64", "opt/lib/x86_64-linux-gnu/x86_64"),
    ] {
        let z = format!("-L{}", tree.path(zdir).display());
        capsule_tests::build_lib(
            &capsule_tests::Lib {
                source: "int app(void) { return 1; }\n",
                soname: Some("libapp.so.1"),
                args: &[
                    bits,
                    "-Wl,--no-as-needed",
                    &z,
                    "-l:libz.so.1",
                    "-Wl,--enable-new-dtags,-rpath,/opt/$LIB/$PLATFORM",
                ],
            },
            &tree.path(&format!("{dir}/libapp.so.1")),
        );
    }
    for (app, multiarch, platform) in [
        ("/app32/libapp.so.1", "i386-linux-gnu", "i686"),
        ("/app64/libapp.so.1", "x86_64-linux-gnu", "x86_64"),
    ] {
        let (lines, stderr) = plan(&tree, &[app]);
        let names: Vec<&str> = lines.iter().map(|l| l.0.as_str()).collect();
        assert_eq!(names.last(), Some(&"libapp.so.1"), "{lines:?}");
        let z = lines
            .iter()
            .find(|l| l.0 == "libz.so.1")
            .expect("libz in the plan");
        assert_eq!(
            (z.1.as_str(), z.2.as_str()),
            (
                format!("/opt/lib/{multiarch}/{platform}/libz.so.1").as_str(),
                "runpath"
            ),
            "{app}: {lines:?}\n{stderr}"
        );
        let libc = lines
            .iter()
            .find(|l| l.0 == "libc.so.6")
            .expect("libc in the plan");
        assert_eq!(libc.2, "system", "{lines:?}");
        assert!(libc.1.contains(multiarch), "{app}: {libc:?}");
    }
}

#[test]
fn a_copy_of_the_other_class_is_passed_over() {
    // The plain lib directories are default directories of both machines: the i386 libz
    // in `lib/` comes first for both, and the x86_64 search passes over it, as ld.so does.
    let tree = capsule_tests::Tree::new();
    copy_into(&tree, "/usr/lib/i386-linux-gnu/libz.so.1", "lib/libz.so.1");
    copy_into(
        &tree,
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "usr/lib/libz.so.1",
    );
    let (x86_64, stderr) = plan(&tree, &["libz.so.1"]);
    let z = x86_64.iter().find(|l| l.0 == "libz.so.1").unwrap();
    assert_eq!(
        (z.1.as_str(), z.2.as_str()),
        ("/usr/lib/libz.so.1", "default")
    );
    assert!(
        stderr.contains("/lib/libz.so.1: skipped: wrong ELF class (32-bit, not 64-bit)"),
        "{stderr}"
    );
    let (i386, _) = plan(&tree, &["--target", "i686-unknown-linux-gnu", "libz.so.1"]);
    let z = i386.iter().find(|l| l.0 == "libz.so.1").unwrap();
    assert_eq!((z.1.as_str(), z.2.as_str()), ("/lib/libz.so.1", "default"));
    let ld_so = &i386[0];
    assert_eq!(
        (ld_so.0.as_str(), ld_so.2.as_str()),
        ("ld-linux.so.2", "system")
    );
    // The same file named by its path: the machine is the file's.
    let (by_path, _) = plan(&tree, &["/lib/libz.so.1"]);
    assert_eq!(by_path.last().unwrap().1, "/lib/libz.so.1");
    assert!(
        by_path.iter().any(|l| l.0 == "ld-linux.so.2"),
        "{by_path:?}"
    );
}

#[test]
fn cache_entries_of_the_machine_are_used() {
    // ldconfig puts both classes' libz in the tree's cache, each entry with its flags.
    let tree = capsule_tests::Tree::new();
    copy_into(
        &tree,
        "/usr/lib/i386-linux-gnu/libz.so.1",
        "opt/c32/libz.so.1",
    );
    copy_into(
        &tree,
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "opt/c64/libz.so.1",
    );
    tree.write("etc/ld.so.conf", "/opt/c32\n/opt/c64\n");
    tree.make_ld_so_cache();
    for (target, expected) in [
        ("i686-unknown-linux-gnu", "/opt/c32/libz.so.1"),
        ("x86_64-unknown-linux-gnu", "/opt/c64/libz.so.1"),
    ] {
        let (lines, stderr) = plan(&tree, &["--target", target, "libz.so.1"]);
        let z = lines.iter().find(|l| l.0 == "libz.so.1").unwrap();
        assert_eq!(
            (z.1.as_str(), z.2.as_str()),
            (expected, "cache"),
            "{target}: {stderr}"
        );
    }
    let out = capsule_gen(
        &[
            "deps",
            "--target",
            "riscv64gc-unknown-linux-gnu",
            "libz.so.1",
        ],
        false,
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a target capsule knows"), "{stderr}");
}
