//! Load time and RSS growth of a capsule against a plain `dlmopen(LM_ID_NEWLM)` of the same
//! library, each load in a fresh process (the `loadtime` helper), the modes alternated so
//! that drifting machine load hits all alike. A third mode, the floor, makes the loads a
//! capsule makes (a one-function object from a file first, then libc, then the library)
//! with none of the capsule's work. The capsule loads with a cache directory that one
//! untimed load filled (the interposer's image, the remembered closure), as every run of
//! a program but its first; a fourth mode times that first run, with an empty one.
//! Medians go to target/capsule-bench.

use std::path::Path;
use std::process::Command;

use capsule_benches::{median, wanted, write_result};
use capsule_tests::{build_lib, Lib};

/// Loads per mode and library (a median of 41 moved by several microseconds between runs).
const RUNS: usize = 81;

const LIBRARIES: [(&str, &str); 2] = [("libz", "libz.so.1"), ("libEGL", "libEGL.so.1")];

/// The floor's stand-in for the interposer: as small as a shared object gets, linked
/// like the interposer (capsule/build.rs: one read+execute segment, bound at load).
const FLOOR_OBJECT: &str = "int floor_function(void) { return 1; }\n";

/// One load in a child, the runtime's cache directory `cache`: (nanoseconds, RSS growth
/// in kB).
fn load_once(mode: &str, library: &str, extra: &[&std::ffi::OsStr], cache: &Path) -> (f64, f64) {
    let out = Command::new(env!("CARGO_BIN_EXE_loadtime"))
        .args([mode, library])
        .args(extra)
        .env("CAPSULE_CACHE_DIR", cache)
        .output()
        .unwrap_or_else(|e| panic!("run the loadtime helper: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "loadtime {mode} {library} failed ({}): {}{}\n(install the library: see .ci/run)",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let numbers: Vec<f64> = stdout
        .split_whitespace()
        .map(|w| {
            w.parse()
                .unwrap_or_else(|_| panic!("loadtime printed {stdout:?}"))
        })
        .collect();
    let [ns, kb] = numbers[..] else {
        panic!("loadtime printed {stdout:?}, expected two numbers")
    };
    (ns, kb)
}

fn main() {
    if !wanted(&["load/libz", "load/libEGL"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let object = dir.path().join("floor.so");
    build_lib(
        &Lib {
            source: FLOOR_OBJECT,
            soname: Some("floor.so"),
            args: &[
                "-nostdlib",
                "-Wl,-z,now",
                "-Wl,-z,relro",
                "-Wl,-z,noseparate-code",
            ],
        },
        &object,
    );
    for (figure, library) in LIBRARIES {
        // A program's every run but its first: the interposer's image and the library's
        // closure are in the cache directory, written by one load before the clock runs.
        let warm = tempfile::tempdir().expect("temporary directory");
        load_once("capsule", library, &[], warm.path());
        let mut samples: [Vec<(f64, f64)>; 4] = Default::default();
        for _ in 0..RUNS {
            samples[0].push(load_once("capsule", library, &[], warm.path()));
            samples[1].push(load_once("dlmopen", library, &[], warm.path()));
            let floor_args = [object.as_os_str()];
            samples[2].push(load_once("floor", library, &floor_args, warm.path()));
        }
        // The first run ever: an empty cache directory, which the load fills. A pass of
        // its own: the files it writes (and the file system's journal after them) slowed
        // the warm load that came next in the same loop by about 5 us.
        for _ in 0..RUNS {
            let empty = tempfile::tempdir().expect("temporary directory");
            samples[3].push(load_once("capsule", library, &[], empty.path()));
        }
        let [capsule, plain, floor, first] = samples.map(|s| {
            let (mut ns, mut kb): (Vec<f64>, Vec<f64>) = s.into_iter().unzip();
            (median(&mut ns), median(&mut kb))
        });
        println!(
            "load/{figure}: capsule {:.3} ms, {} kB RSS; dlmopen {:.3} ms, {} kB RSS; floor {:.3} ms; first load ever {:.3} ms ({RUNS} runs each, medians)",
            capsule.0 / 1e6,
            capsule.1,
            plain.0 / 1e6,
            plain.1,
            floor.0 / 1e6,
            first.0 / 1e6
        );
        write_result(
            &format!("load_{figure}"),
            &[
                ("capsule_ns", capsule.0),
                ("dlmopen_ns", plain.0),
                ("floor_ns", floor.0),
                ("first_ns", first.0),
                ("capsule_rss_kb", capsule.1),
                ("dlmopen_rss_kb", plain.1),
                ("runs", RUNS as f64),
            ],
        );
    }
}
