//! The README's gdb paragraph: on the shim-linked demo game, `gdb -batch` stops at
//! `eglInitialize` in the real libEGL (inside the capsule), `info sharedlibrary` lists the
//! capsule's objects (the interposer, the real libEGL's closure, the namespace's own libc)
//! beside the program's, and the backtrace shows `main` calling the real function
//! directly. Needs gdb (.ci/run installs it); a missing gdb fails the test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use capsule_tests::{build_program, capsule_gen, run_ok};

const SHIMMED: [&str; 2] = ["libEGL.so.1", "libGL.so.1"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn require_gdb() {
    let found = Command::new("gdb")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "gdb is not installed: apt-get install gdb (.ci/run installs it); this test checks \
         the README's gdb paragraph"
    );
}

/// The same file, however the path spells it (`/lib` or `/usr/lib`, soname link or file).
fn canonical(path: &str) -> PathBuf {
    Path::new(path)
        .canonicalize()
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The objects a capsule of `soname` loads from `/`, but glibc's own: `(soname, path)`.
fn capsule_closure(soname: &str) -> Vec<(String, String)> {
    let out = run_ok(
        Command::new(capsule_gen()).args([
            "deps",
            "--target",
            capsule_tests::machine().rust_target(),
            soname,
        ]),
        "capsule-gen deps",
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.ends_with("\tsystem"))
        .map(|l| {
            let (name, path) = l.split_once('\t').expect("SONAME<TAB>PATH");
            (name.to_string(), path.to_string())
        })
        .collect()
}

/// Install the checked-in libEGL and libGL shims with `capsule-gen install`, build the
/// demo game against them, and return the game.
fn shim_linked_game(dir: &Path) -> (PathBuf, PathBuf) {
    let lib = dir.join("lib");
    let mut install = Command::new(capsule_gen());
    install.arg("install");
    for soname in SHIMMED {
        install.arg(capsule_tests::checked_in_shims_dir(capsule_tests::machine()).join(soname));
    }
    if let Some(triple) = capsule_tests::cross_target() {
        // The i386 shims are a workspace of their own: built in the tests' target directory.
        install
            .args(["--target", triple])
            .env("CARGO_TARGET_DIR", workspace().join("target"));
    }
    install
        .arg("--into")
        .arg(&lib)
        .env("CARGO_NET_OFFLINE", "true");
    run_ok(&mut install, "install the checked-in shims");

    let game = dir.join("game-capsule");
    let source = std::fs::read_to_string(workspace().join("examples/game/game.c"))
        .expect("read examples/game/game.c");
    let mut args = vec![
        format!("-L{}", lib.display()),
        format!("-Wl,-rpath,{}", lib.display()),
    ];
    args.extend(capsule_tests::game_build_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    build_program(&source, &game, &args);
    (game, lib)
}

#[test]
fn gdb_breaks_in_the_real_libegl_and_lists_the_capsules_objects() {
    require_gdb();
    let dir = tempfile::tempdir().unwrap();
    let (game, lib) = shim_linked_game(dir.path());
    let cache = dir.path().join("cache");
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();

    // The README's command, with debuginfod off (no network) and a timeout.
    let out = run_ok(
        Command::new("timeout")
            .args(["300", "gdb", "-nx", "-batch"])
            .args(["-ex", "set debuginfod enabled off"])
            .args(["-ex", "set breakpoint pending on"])
            .args(["-ex", "break eglInitialize", "-ex", "run"])
            .args(["-ex", "info sharedlibrary", "-ex", "bt"])
            .arg("--args")
            .arg(&game)
            .arg(&out_dir)
            .env("CAPSULE_PREFIX", "/")
            .env("CAPSULE_CACHE_DIR", &cache),
        "run the shim-linked game under gdb",
    );
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);

    let closure = capsule_closure("libEGL.so.1");
    let real_egl = &closure.last().expect("libEGL's closure ends with it").1;
    let shim_egl = lib.join("libEGL.so.1");
    assert_ne!(canonical(real_egl), canonical(shim_egl.to_str().unwrap()));

    // Stopped in the real libEGL, not in the shim's trampoline of the same name.
    let hit = text
        .lines()
        .find(|l| l.starts_with("Breakpoint 1") && l.contains(", "))
        .unwrap_or_else(|| panic!("the breakpoint was never hit:\n{text}"));
    let (_, from) = hit
        .split_once(" in eglInitialize () from ")
        .unwrap_or_else(|| panic!("not stopped in eglInitialize of a library: {hit}"));
    assert_eq!(
        canonical(from),
        canonical(real_egl),
        "stopped in {from}, not the real libEGL:\n{text}"
    );

    // `info sharedlibrary`: rows `FROM TO SYMS-READ [(*)] PATH`.
    let objects: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("0x") && l.split_whitespace().count() >= 4)
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    let listed: BTreeSet<PathBuf> = objects.iter().map(|p| canonical(p)).collect();
    for (soname, path) in &closure {
        assert!(
            listed.contains(&canonical(path)),
            "info sharedlibrary lacks the capsule's {soname} ({path}):\n{text}"
        );
    }
    assert!(
        listed.contains(&canonical(shim_egl.to_str().unwrap())),
        "info sharedlibrary lacks the shim {}:\n{text}",
        shim_egl.display()
    );
    let interposer = objects.iter().any(|p| {
        Path::new(p).parent() == Some(cache.as_path())
            && Path::new(p)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("interpose-"))
    });
    assert!(
        interposer,
        "info sharedlibrary lacks the interposer in {}:\n{text}",
        cache.display()
    );
    // One libc in the process: the capsule's libc.so.6 is a forwarder to the program's,
    // kept in the cache directory beside the interposer.
    let libcs = objects.iter().filter(|p| p.ends_with("/libc.so.6")).count();
    assert_eq!(libcs, 1, "expected only the program's libc:\n{text}");
    assert!(
        text.lines()
            .filter_map(|l| l.split_whitespace().last())
            .any(|p| Path::new(p).parent() == Some(cache.as_path())
                && p.contains("/forward-libc.so.6-")),
        "info sharedlibrary lacks the capsule's libc forwarder in {}:\n{text}",
        cache.display()
    );
    assert!(!text.contains("warning:"), "gdb warned:\n{text}");

    // main calls the real eglInitialize directly: the shim rewrote the game's slot.
    let frames: Vec<&str> = text.lines().filter(|l| l.starts_with('#')).collect();
    assert!(
        frames.len() >= 2
            && frames[0].contains("eglInitialize () from ")
            && frames[1].contains(" in main ("),
        "backtrace is not eglInitialize <- main:\n{text}"
    );
}
