//! capsule-gen's own cost: the wall time of one run generating shims for the six GL
//! libraries (prefix `/`), and the time of a cold `cargo build --release` of one generated
//! shim crate (its runtime and dependencies included, as a packager would build it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use capsule_benches::{median, wanted, workspace_dir, write_result};
use capsule_tests::run_ok;

const GL_LIBRARIES: [&str; 6] = [
    "libGL.so.1",
    "libEGL.so.1",
    "libGLX.so.0",
    "libGLESv2.so.2",
    "libOpenGL.so.0",
    "libGLdispatch.so.0",
];

/// Generation runs; the median is reported.
const RUNS: usize = 7;

/// The shim crate whose build is timed.
const BUILT: &str = "libEGL.so.1";

/// The release capsule-gen, built with cargo (what a user runs).
fn release_capsule_gen() -> PathBuf {
    run_ok(
        Command::new(env!("CARGO"))
            .current_dir(workspace_dir())
            .args([
                "build",
                "--release",
                "--quiet",
                "-p",
                "capsule-gen",
                "--bin",
                "capsule-gen",
            ]),
        "build capsule-gen --release",
    );
    let bin = capsule_benches::target_dir().join("release/capsule-gen");
    assert!(
        bin.is_file(),
        "capsule-gen was built but {} is missing",
        bin.display()
    );
    bin
}

/// One generation of all six shims into a fresh directory under `work`; its wall time in
/// seconds.
fn generate(gen: &Path, out: &Path) -> f64 {
    let mut cmd = Command::new(gen);
    cmd.args(["--prefix", "/", "--out"])
        .arg(out)
        .args(GL_LIBRARIES);
    let start = Instant::now();
    run_ok(
        &mut cmd,
        "generate the GL shims (install the GL stack: see .ci/run)",
    );
    start.elapsed().as_secs_f64()
}

/// A cold release build of the generated crate in `dir`; its wall time in seconds.
fn build_cold(dir: &Path, target: &Path) -> f64 {
    std::fs::copy(workspace_dir().join("Cargo.lock"), dir.join("Cargo.lock"))
        .expect("copy the workspace's Cargo.lock into the shim crate");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(dir).env("CARGO_TARGET_DIR", target).args([
        "build",
        "--release",
        "--offline",
        "--quiet",
    ]);
    let start = Instant::now();
    run_ok(&mut cmd, "build a generated shim crate");
    start.elapsed().as_secs_f64()
}

fn main() {
    if !wanted(&["gen/six_gl_libraries", "gen/shim_build"]) {
        return;
    }
    let gen = release_capsule_gen();
    let work = tempfile::tempdir().expect("temporary directory");
    let mut times: Vec<f64> = (0..RUNS)
        .map(|i| generate(&gen, &work.path().join(format!("run{i}"))))
        .collect();
    let generation = median(&mut times);
    println!("gen/six_gl_libraries: {generation:.3} s ({RUNS} runs, median)");

    let build = build_cold(
        &work.path().join("run0").join(BUILT),
        &work.path().join("target"),
    );
    println!("gen/shim_build: {BUILT} crate, cold release build {build:.1} s");
    write_result(
        "gen",
        &[
            ("six_gl_libraries_s", generation),
            ("runs", RUNS as f64),
            ("shim_build_s", build),
        ],
    );
}
