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
