//! Secure execution: a process running with AT_SECURE (here: a setuid-root copy of this
//! test binary, run by an unprivileged user) ignores every `CAPSULE_*` variable, as ld.so
//! ignores `LD_LIBRARY_PATH` there, while the same binary without the setuid bit honours
//! them. A decoy host tree carries a fake `libz.so.1`: if the decoy is ever loaded in
//! secure mode, an attacker could run code with root's effective uid.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use capsule_tests::{build_lib, Lib, Tree};

/// The variable that tells a re-run of this binary to act as the probe.
const PROBE: &str = "CAPSULE_SECURE_EXEC_PROBE";
const TEST: &str = "capsule_variables_are_ignored_under_at_secure";
/// The uid/gid the probe runs as (Debian's `nobody`/`nogroup`).
const NOBODY: &str = "65534";

const DECOY_LIBZ: &str = r#"
const char *zlibVersion(void) { return "decoy"; }
"#;

#[test]
fn capsule_variables_are_ignored_under_at_secure() {
    if std::env::var_os(PROBE).is_some() {
        probe();
        return;
    }
    assert_eq!(
        // SAFETY: getuid has no preconditions.
        unsafe { libc::getuid() },
        0,
        "this test makes a setuid-root binary and runs it as uid {NOBODY}: run the tests as root"
    );
    assert!(
        Path::new("/usr/bin/setpriv").is_file(),
        "this test needs setpriv (Debian package util-linux) to run a program as another user"
    );

    let decoy = Tree::new();
    build_lib(
        &Lib {
            source: DECOY_LIBZ,
            soname: Some("libz.so.1"),
            args: &[],
        },
        &decoy.path(&capsule_tests::for_machine(
            "usr/lib/x86_64-linux-gnu/libz.so.1",
        )),
    );
    open_to_everyone(decoy.root());

    let work = Tree::new();
    let plain = copy_of_this_binary(&work, "plain");
    let setuid = copy_of_this_binary(&work, "setuid");
    std::fs::set_permissions(&setuid, std::fs::Permissions::from_mode(0o4755))
        .expect("set the setuid bit");
    open_to_everyone(work.root());

    // Without AT_SECURE the variables are honoured: the decoy answers and debug lines print.
    let out = run_as_nobody(&plain, decoy.root());
    let report = probe_report(&out);
    assert!(
        report.contains("at_secure=0\n"),
        "the plain copy ran with AT_SECURE\n{report}"
    );
    assert!(
        report.contains(&format!("prefix={}\n", decoy.root().display()))
            && report.contains("zlibVersion=decoy\n"),
        "the plain copy ignored CAPSULE_LIBZ_SO_1_PREFIX\n{report}"
    );
    assert!(
        stderr(&out).contains("capsule: "),
        "the plain copy ignored CAPSULE_DEBUG=libs\n{report}"
    );

    // With AT_SECURE (euid 0, ruid 65534) they are not: `/` is the prefix, libz is the real one.
    let out = run_as_nobody(&setuid, decoy.root());
    let report = probe_report(&out);
    assert!(
        report.contains("at_secure=1\n"),
        "the setuid copy did not run with AT_SECURE (is the filesystem mounted nosuid?)\n{report}"
    );
    assert!(
        report.contains("prefix=/\n"),
        "CAPSULE_*_PREFIX was honoured under AT_SECURE\n{report}"
    );
    assert!(
        !report.contains("zlibVersion=decoy") && report.contains("zlibVersion=1."),
        "the decoy libz was loaded under AT_SECURE\n{report}"
    );
    assert!(
        !stderr(&out).contains("capsule: "),
        "CAPSULE_DEBUG was honoured under AT_SECURE\n{report}"
    );
}

/// What the re-run binary does: report AT_SECURE, the prefix chosen for libz, and which
/// libz a capsule loaded from the environment's prefix turns out to be.
fn probe() {
    // SAFETY: getauxval has no preconditions; AT_SECURE is always present on Linux.
    let secure = unsafe { libc::getauxval(libc::AT_SECURE) };
    println!("probe: at_secure={secure}");
    println!(
        "probe: prefix={}",
        capsule::config::prefix_for("libz.so.1").display()
    );
    match capsule::Capsule::load_from_env("libz.so.1") {
        Ok(z) => {
            type Version = unsafe extern "C" fn() -> *const libc::c_char;
            // SAFETY: zlibVersion takes nothing and returns a static C string, in the real
            // libz and in the decoy.
            let version: Version = unsafe { capsule_tests::func(&z, "zlibVersion") };
            // SAFETY: see above; the string is NUL-terminated and static.
            let version = unsafe { std::ffi::CStr::from_ptr(version()) };
            println!("probe: zlibVersion={}", version.to_string_lossy());
        }
        Err(e) => println!("probe: error={e}"),
    }
}

fn copy_of_this_binary(work: &Tree, name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let copy = work.path(&format!("bin/{name}"));
    std::fs::copy(&exe, &copy).expect("copy the test binary");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
        .expect("make the copy executable for everyone");
    copy
}

/// Temporary directories are 0700; the probe runs as `nobody` and must reach its files.
fn open_to_everyone(root: &Path) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
        for entry in std::fs::read_dir(&dir).expect("list a fixture directory") {
            let path = entry.expect("read a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
}

fn run_as_nobody(program: &Path, decoy: &Path) -> Output {
    Command::new("/usr/bin/setpriv")
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", "--"])
        .arg(program)
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .current_dir("/")
        .env(PROBE, "1")
        .env("CAPSULE_PREFIX", decoy)
        .env("CAPSULE_LIBZ_SO_1_PREFIX", decoy)
        .env("CAPSULE_DEBUG", "libs")
        .output()
        .expect("run setpriv")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The probe's `probe:` lines, without the prefix; panics with the whole output unless the
/// probe ran to the end.
fn probe_report(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: String = stdout
        .lines()
        // The harness's "test NAME ... " has no newline before the first probe line.
        .filter_map(|l| l.split_once("probe: ").map(|(_, rest)| rest))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        out.status.success() && report.contains("zlibVersion="),
        "the probe failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        stderr(out)
    );
    report
}
