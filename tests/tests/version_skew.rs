//! A library shared with the program whose program copy is older than the host's: the
//! capsule loads, a function the old copy lacks aborts naming itself only when called,
//! and a data symbol it lacks is a clear load error.

use std::path::Path;

use capsule::Capsule;
use capsule_tests::{build_lib, func, is_child, rerun_self, Lib, Tree};

const HOST_SKEW: &str =
    "int old_fn(void) { return 1; }\nint new_fn(void) { return 2; }\nint new_data = 7;\n";
const PROGRAM_SKEW: &str = "int old_fn(void) { return 100; }\n";
const USER: &str =
    "int old_fn(void); int new_fn(void);\nint user_old(void) { return old_fn(); }\nint user_new(void) { return new_fn(); }\n";
const DATA_USER: &str = "extern int new_data;\nint data_user(void) { return new_data; }\n";

/// The host tree (new libskew, its users) and the program's tree (an old libskew).
fn trees() -> (Tree, Tree) {
    let (host, program) = (Tree::new(), Tree::new());
    let lib = |tree: &Tree, soname: &str, source: &str, args: &[&str]| {
        build_lib(
            &Lib {
                source,
                soname: Some(soname),
                args,
            },
            &tree.path(&format!("usr/lib/{soname}")),
        )
    };
    lib(&host, "libskew.so.1", HOST_SKEW, &[]);
    let link = format!("-L{}", host.path("usr/lib").display());
    std::os::unix::fs::symlink("libskew.so.1", host.path("usr/lib/libskew.so")).unwrap();
    lib(&host, "libuser.so.1", USER, &[&link, "-lskew"]);
    lib(&host, "libdatauser.so.1", DATA_USER, &[&link, "-lskew"]);
    lib(&program, "libskew.so.1", PROGRAM_SKEW, &[]);
    (host, program)
}

const CHILD: &str = "child_loads_with_an_old_program_copy";

/// Run in a process whose library path is the program's tree, sharing libskew.
#[test]
fn child_loads_with_an_old_program_copy() {
    if !is_child(CHILD) {
        return; // Only meaningful in the processes the tests below start.
    }
    let host = std::env::var("SKEW_HOST").unwrap();
    match std::env::var("SKEW_MODE").unwrap().as_str() {
        "call" => {
            let user = Capsule::load("libuser.so.1", Path::new(&host)).expect("load libuser");
            // SAFETY: the fixture defines these as int(void).
            let old: extern "C" fn() -> i32 = unsafe { func(&user, "user_old") };
            println!("user_old={}", old());
            // SAFETY: as above.
            let new: extern "C" fn() -> i32 = unsafe { func(&user, "user_new") };
            println!("calling user_new");
            use std::io::Write;
            std::io::stdout().flush().unwrap();
            println!("user_new={}", new());
        }
        "data" => match Capsule::load("libdatauser.so.1", Path::new(&host)) {
            Ok(_) => println!("LOADED"),
            Err(e) => println!("ERROR: {e}"),
        },
        other => panic!("SKEW_MODE {other}"),
    }
}

fn run(mode: &str, host: &Tree, program: &Tree) -> std::process::Output {
    let program_lib = program.path("usr/lib").display().to_string();
    let host_root = host.root().display().to_string();
    rerun_self(
        CHILD,
        &[
            ("LD_LIBRARY_PATH", &program_lib),
            ("CAPSULE_SHARE", "libskew.so.1"),
            ("CAPSULE_DEBUG", "libs"),
            ("SKEW_HOST", &host_root),
            ("SKEW_MODE", mode),
        ],
    )
}

#[test]
fn a_function_the_program_copy_lacks_aborts_naming_it_when_called() {
    let (host, program) = trees();
    let out = run("call", &host, &program);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let context = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    // The program's (old) copy answers: it is shared, not the host's.
    assert!(stdout.contains("user_old=100"), "{context}");
    assert!(stdout.contains("calling user_new"), "{context}");
    assert!(!stdout.contains("user_new="), "{context}");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(libc::SIGABRT),
        "{context}"
    );
    let program_copy = program.path("usr/lib/libskew.so.1").display().to_string();
    let host_copy = host.path("usr/lib/libskew.so.1").display().to_string();
    let abort_line = stderr
        .lines()
        .find(|l| l.contains("new_fn was called"))
        .unwrap_or_else(|| panic!("no message naming new_fn: {context}"));
    for part in ["libskew.so.1", &program_copy, &host_copy] {
        assert!(abort_line.contains(part), "{part} missing: {abort_line}");
    }
    // Warned at load, with CAPSULE_DEBUG=libs.
    assert!(
        stderr.lines().any(|l| l.contains("libuser.so.1")
            && l.contains("function(s) of libskew.so.1 that the program's copy")
            && l.contains("new_fn")),
        "{context}"
    );
}

#[test]
fn a_data_symbol_the_program_copy_lacks_is_a_load_error() {
    let (host, program) = trees();
    let out = run("data", &host, &program);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{context}");
    let error = stdout
        .lines()
        .find_map(|l| l.split_once("ERROR: ").map(|(_, e)| e))
        .unwrap_or_else(|| panic!("the load did not fail: {context}"));
    let program_copy = program.path("usr/lib/libskew.so.1").display().to_string();
    let host_copy = host.path("usr/lib/libskew.so.1").display().to_string();
    for part in [
        "libdatauser.so.1",
        "the data symbol new_data",
        "libskew.so.1",
        &program_copy,
        &host_copy,
        "CAPSULE_SHARE=-libskew.so.1",
    ] {
        assert!(error.contains(part), "{part} missing: {error}");
    }
}
