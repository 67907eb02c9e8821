//! Writes BENCHMARKS.md from one run's results: criterion's medians
//! (`TARGET/criterion/<group>/<bench>/new/estimates.json`) and the files the load and gen
//! benchmarks leave in `TARGET/capsule-bench/`.
//!
//! `report TARGET_DIR OUTPUT` (run by `./bench.sh`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [target, output] = args.as_slice() else {
        eprintln!("usage: report TARGET_DIR OUTPUT (run ./bench.sh instead)");
        return ExitCode::from(2);
    };
    match report(Path::new(target))
        .and_then(|text| std::fs::write(output, text).map_err(|e| format!("write {output}: {e}")))
    {
        Ok(()) => {
            println!("report: wrote {output}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("report: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a figure must reach.
#[derive(Clone, Copy)]
enum Goal {
    /// value / baseline at most this.
    Ratio(f64),
    /// value - baseline at most this many nanoseconds.
    ExtraNs(f64),
    /// Reported only.
    None,
}

/// One row of the table.
struct Row {
    figure: String,
    value: String,
    baseline: String,
    ratio: String,
    goal: String,
    met: String,
}

/// A measured time against its baseline, both in nanoseconds.
fn compare(figure: &str, value_ns: f64, baseline_ns: f64, base_name: &str, goal: Goal) -> Row {
    let ratio = value_ns / baseline_ns;
    let extra = value_ns - baseline_ns;
    let (goal_text, met) = match goal {
        Goal::Ratio(max) => (format!("≤ {max:.2}x"), Some(ratio <= max)),
        Goal::ExtraNs(max) => (format!("≤ +{max:.1} ns/call"), Some(extra <= max)),
        Goal::None => ("report".to_string(), None),
    };
    Row {
        figure: figure.to_string(),
        value: duration(value_ns),
        baseline: format!("{} ({base_name})", duration(baseline_ns)),
        ratio: format!(
            "{ratio:.2}x ({}{})",
            if extra >= 0.0 { "+" } else { "−" },
            duration(extra.abs())
        ),
        goal: goal_text,
        met: met_text(met),
    }
}

fn met_text(met: Option<bool>) -> String {
    match met {
        Some(true) => "yes".into(),
        Some(false) => "**no**".into(),
        None => "—".into(),
    }
}

/// A duration in nanoseconds, in a readable unit.
fn duration(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.2} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// The median point estimate, in nanoseconds per iteration, of criterion benchmark
/// `group/bench` (in `TARGET/criterion`).
fn criterion_median(target: &Path, group: &str, bench: &str) -> Result<f64, String> {
    criterion_median_in(&target.join("criterion"), group, bench)
}

/// [`criterion_median`] in the criterion directory `criterion` (`CRITERION_HOME`).
fn criterion_median_in(criterion: &Path, group: &str, bench: &str) -> Result<f64, String> {
    let path = criterion.join(group).join(bench).join("new/estimates.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: {e}: benchmark {group}/{bench} did not run (run ./bench.sh)",
            path.display()
        )
    })?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not criterion's estimates: {e}", path.display()))?;
    json["median"]["point_estimate"]
        .as_f64()
        .ok_or_else(|| format!("{}: no median.point_estimate", path.display()))
}

/// The numbers a non-criterion benchmark wrote to `TARGET/capsule-bench/<figure>.tsv`.
struct Measured {
    path: PathBuf,
    values: Vec<(String, f64)>,
}

impl Measured {
    /// `results/<figure>.tsv` (`results`: `TARGET/capsule-bench`, or a machine's under it).
    fn read(results: &Path, figure: &str) -> Result<Measured, String> {
        let path = results.join(format!("{figure}.tsv"));
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{}: {e}: benchmark {figure} did not run (run ./bench.sh)",
                path.display()
            )
        })?;
        let values = text
            .split_whitespace()
            .map(|field| {
                let (k, v) = field
                    .split_once('=')
                    .ok_or_else(|| format!("{}: {field:?} is not KEY=VALUE", path.display()))?;
                let v = v
                    .parse()
                    .map_err(|_| format!("{}: {field:?} is not a number", path.display()))?;
                Ok((k.to_string(), v))
            })
            .collect::<Result<_, String>>()?;
        Ok(Measured { path, values })
    }

    fn get(&self, key: &str) -> Result<f64, String> {
        self.values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("{}: no {key}", self.path.display()))
    }
}

/// The call rows from the criterion directory `criterion`, their figures prefixed with
/// `machine` (empty for x86_64's).
fn call_rows(criterion: &Path, machine: &str) -> Result<Vec<Row>, String> {
    let direct = criterion_median_in(criterion, "call", "direct")?;
    Ok(vec![
        compare(
            &format!("{machine}`add1` call through a rewritten slot (caller's PLT slot → capsule)"),
            criterion_median_in(criterion, "call", "slot")?,
            direct,
            "direct PLT call",
            Goal::Ratio(1.05),
        ),
        compare(
            &format!("{machine}`add1` call through a generated shim's trampoline"),
            criterion_median_in(criterion, "call", "shim")?,
            direct,
            "direct PLT call",
            Goal::ExtraNs(1.0),
        ),
    ])
}

/// The i386 figures: the calls (criterion's directory `TARGET/criterion-i686`) and the
/// loads (`TARGET/capsule-bench/i686-unknown-linux-gnu`), as bench.sh runs them.
fn i686_rows(target: &Path) -> Result<Vec<Row>, String> {
    let mut rows = call_rows(&target.join("criterion-i686"), "i386: ")?;
    let results = target.join("capsule-bench/i686-unknown-linux-gnu");
    rows.extend(load_rows(&results, "i386: ")?);
    Ok(rows)
}

fn alloc_rows(target: &Path) -> Result<Vec<Row>, String> {
    let mut rows = vec![compare(
        "malloc(64)+free pair inside a capsule",
        criterion_median(target, "malloc_free", "capsule")?,
        criterion_median(target, "malloc_free", "program")?,
        "same loop in the program",
        Goal::Ratio(1.10),
    )];
    for threads in ["1thread", "2threads"] {
        rows.push(compare(
            &format!(
                "free of a program pointer inside a capsule, {}",
                if threads == "1thread" {
                    "1 thread"
                } else {
                    "2 threads at once (per free)"
                }
            ),
            criterion_median(
                target,
                "free_program_pointer",
                &format!("capsule_{threads}"),
            )?,
            criterion_median(
                target,
                "free_program_pointer",
                &format!("program_{threads}"),
            )?,
            "same frees in the program",
            Goal::None,
        ));
    }
    Ok(rows)
}

/// The load rows from the results directory `results` (`TARGET/capsule-bench`, or the
/// i686 run's), their figures prefixed with `machine` (empty for x86_64's).
fn load_rows(results: &Path, machine: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for (figure, library) in [("load_libz", "libz.so.1"), ("load_libEGL", "libEGL.so.1")] {
        let m = Measured::read(results, figure)?;
        let runs = m.get("runs")?;
        rows.push(compare(
            &format!(
                "{machine}load of `{library}` into a capsule (prefix `/`), median of {runs} processes"
            ),
            m.get("capsule_ns")?,
            m.get("dlmopen_ns")?,
            "plain `dlmopen(LM_ID_NEWLM)`",
            // A plain dlmopen maps and relocates a second libc; a capsule shares the
            // program's through a forwarder instead.
            Goal::Ratio(1.0),
        ));
        rows.push(compare(
            &format!(
                "{machine}first load ever of that library (`{library}`): empty cache directory, so the interposer's image and libc's forwarder are written, the forwarder's activation walked and written down, and the closure searched and remembered"
            ),
            m.get("first_ns")?,
            m.get("dlmopen_ns")?,
            "plain `dlmopen(LM_ID_NEWLM)`",
            Goal::None,
        ));
        rows.push(compare(
            &format!(
                "{machine}the former design's dlmopen calls for that load (`{library}`): a one-function object from a file, a second libc, the library; none of the capsule's work"
            ),
            m.get("floor_ns")?,
            m.get("dlmopen_ns")?,
            "plain `dlmopen(LM_ID_NEWLM)`",
            Goal::None,
        ));
        let (capsule, plain) = (m.get("capsule_rss_kb")?, m.get("dlmopen_rss_kb")?);
        rows.push(Row {
            figure: format!("{machine}RSS growth of that load (`{library}`)"),
            value: format!("{capsule:.0} kB"),
            baseline: format!("{plain:.0} kB (plain `dlmopen`)"),
            ratio: format!("{:+.0} kB", capsule - plain),
            goal: "below plain `dlmopen`".into(),
            met: met_text(Some(capsule < plain)),
        });
    }
    Ok(rows)
}

fn gen_rows(target: &Path) -> Result<Vec<Row>, String> {
    let m = Measured::read(&target.join("capsule-bench"), "gen")?;
    let generation = m.get("six_gl_libraries_s")?;
    // The goal from the issue: generating the whole GL set feels instant.
    let max = 1.0;
    Ok(vec![
        Row {
            figure: format!(
                "`capsule-gen` run generating the six GL shims (release build), median of {}",
                m.get("runs")?
            ),
            value: duration(generation * 1e9),
            baseline: "—".into(),
            ratio: "—".into(),
            goal: format!("< {max:.0} s"),
            met: met_text(Some(generation < max)),
        },
        Row {
            figure: "cold `cargo build --release` of one generated shim crate (libEGL.so.1, runtime and dependencies included)".into(),
            value: duration(m.get("shim_build_s")? * 1e9),
            baseline: "—".into(),
            ratio: "—".into(),
            goal: "report".into(),
            met: met_text(None),
        },
    ])
}

/// The demo game (`./demo.sh --bench`): the same game linked directly to the real GL
/// libraries and linked to the shims, medians of `runs` processes each.
fn demo_rows(target: &Path) -> Result<Vec<Row>, String> {
    let m = Measured::read(&target.join("capsule-bench"), "demo")?;
    let runs = m.get("runs")?;
    let ms = |key: &str| m.get(key).map(|v| v * 1e6);
    let game = "the demo game (`examples/game`) through the shims";
    let direct = "same game linked directly";
    let mut rows = vec![
        compare(
            &format!("{game}: first `eglGetPlatformDisplay` + `eglInitialize`, median of {runs} processes"),
            ms("capsule_load_ms")?,
            ms("direct_load_ms")?,
            direct,
            Goal::Ratio(1.5),
        ),
        compare(
            &format!("{game}: from `execve` to `eglInitialize` done (shim constructors included)"),
            ms("capsule_startup_ms")?,
            ms("direct_startup_ms")?,
            direct,
            Goal::Ratio(1.03),
        ),
        compare(
            &format!("{game}: time per frame (256×256, llvmpipe, read back), main thread"),
            ms("capsule_frame_ms")?,
            ms("direct_frame_ms")?,
            direct,
            Goal::Ratio(1.02),
        ),
        compare(
            &format!("{game}: time per frame, on a thread the game creates"),
            ms("capsule_thread_frame_ms")?,
            ms("direct_thread_frame_ms")?,
            direct,
            Goal::Ratio(1.02),
        ),
    ];
    let (capsule, plain) = (m.get("capsule_rss_kb")?, m.get("direct_rss_kb")?);
    rows.push(Row {
        figure: format!("{game}: RSS at the end of the game"),
        value: format!("{capsule:.0} kB"),
        baseline: format!("{plain:.0} kB ({direct})"),
        ratio: format!("{:+.0} kB", capsule - plain),
        goal: "report".into(),
        met: met_text(None),
    });
    Ok(rows)
}

/// Vulkan (`examples/deploy/bench-vulkan.sh`): the same program linked directly to the
/// system's Vulkan loader and linked to the libvulkan shim (host prefix `/`, no sandbox),
/// medians of `runs` processes each.
fn vulkan_rows(target: &Path) -> Result<Vec<Row>, String> {
    let m = Measured::read(&target.join("capsule-bench"), "vulkan")?;
    let runs = m.get("runs")?;
    let ms = |key: &str| m.get(key).map(|v| v * 1e6);
    let program = "Vulkan (`examples/deploy/vulkan_copy.c`, lavapipe) through the libvulkan shim";
    let direct = "same program linked directly";
    Ok(vec![
        compare(
            &format!("{program}: instance + llvmpipe device creation, median of {runs} processes"),
            ms("capsule_instance_device_ms")?,
            ms("direct_instance_device_ms")?,
            direct,
            Goal::Ratio(1.05),
        ),
        compare(
            &format!("{program}: the work, first time (two buffers, fill, copy, read back and check)"),
            ms("capsule_work_ms")?,
            ms("direct_work_ms")?,
            direct,
            Goal::None,
        ),
        compare(
            &format!("{program}: the work again (submit the recorded fill + copy and wait), per submission"),
            ms("capsule_repeat_ms")?,
            ms("direct_repeat_ms")?,
            direct,
            Goal::Ratio(1.05),
        ),
    ])
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} core(s) available")
}

fn report(target: &Path) -> Result<String, String> {
    let mut rows = call_rows(&target.join("criterion"), "")?;
    rows.extend(alloc_rows(target)?);
    rows.extend(load_rows(&target.join("capsule-bench"), "")?);
    rows.extend(gen_rows(target)?);
    rows.extend(demo_rows(target)?);
    rows.extend(vulkan_rows(target)?);
    rows.extend(i686_rows(target)?);

    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# Benchmarks\n");
    let _ = writeln!(
        w,
        "Generated by `./bench.sh` (which runs `cargo bench -p capsule-benches` and rewrites this \
         file); do not edit by hand. Every figure is compared with a baseline measured in the \
         same run. Times are medians. Machine: {}.\n",
        machine()
    );
    let _ = writeln!(w, "| figure | value | baseline | ratio | goal | met? |");
    let _ = writeln!(w, "| --- | --- | --- | --- | --- | --- |");
    for r in &rows {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} |",
            r.figure, r.value, r.baseline, r.ratio, r.goal, r.met
        );
    }
    let _ = writeln!(w, "\n{}", METHOD.trim());
    Ok(out)
}

const METHOD: &str = r#"
## How each figure is measured

- **Calls** (`benches/benches/calls.rs`): three copies of one C caller library, each running
  `call_loop(n)`, a loop of `n` calls of `int add1(int)` through its own PLT slot; one
  criterion iteration is one call. *Direct*: the slot bound by ld.so to an `add1` library in
  the program's namespace. *Rewritten slot*: the same slot rewritten with
  `capsule::patch::rewrite_symbol` to `add1` of a fixture library loaded with
  `Capsule::load` (the code path is the same; a difference is noise or code placement).
  *Trampoline*: the caller linked against a shim generated by `capsule-gen` and built with
  `cargo build --release`, loaded *after* the shim (whose constructor rewrites the slots
  of every object loaded by then, so a caller loaded with it would time a rewritten slot);
  its `add1` is a `jmp` through the shim's slot table into the capsule. The bench checks
  that each caller reaches the `add1` it claims to measure, and with `dladdr` that each
  caller's slot leads where its row says (the direct library, the capsule's `add1`, the
  shim's trampoline). The slot goal is 1.00x; the table allows 5% for noise.
- **i386 rows**: the same call and load benches built for `i686-unknown-linux-gnu` (a
  32-bit process, 32-bit fixtures, an i386 shim, Debian's i386 libz and libEGL), in the
  same run.
- **Allocator** (`benches/benches/alloc.rs`): one C library with `churn(n, 64)` (`n`
  malloc+free pairs) and `free_all(ptrs, n)`, loaded once in the program's namespace and
  once in a capsule, which shares the program's libc (and so its allocator).
  Each malloc+free sample is cut into 8 equal parts and counts as 8 times its fastest part
  (a pause of the shared machine lands in one part, not in the figure; both sides alike).
  Frees of program pointers are timed in batches of 20,000 blocks the program allocated
  just before (the allocation is not timed); with 2 threads both free their own batches at
  once and a batch counts as long as the slower thread.
- **Load** (`benches/benches/load.rs`, helper `benches/src/bin/loadtime.rs`): each load in a
  fresh process (a namespace can never be unloaded and glibc has 15), capsule and plain
  `dlmopen(LM_ID_NEWLM, RTLD_NOW)` alternating; the time is `Capsule::load` (closure
  resolution inside the prefix, interposer, libc's forwarder, dlopen emulation included)
  against the bare `dlmopen`, which maps and relocates a second libc; RSS growth is VmRSS
  after minus before the load. A third mode, alternating with the other two, makes the
  `dlmopen` calls of the former design (a second libc per namespace), with none of its
  work: a one-function shared object loaded from a file into a new namespace, the running
  libc, then the library by name. The capsule loads with a cache directory that one untimed
  load filled first, as every run of a program but its first finds it: the interposer's
  image is there, libc's forwarder remembers its activation for the helper's scope (none
  of libc's symbols is taken from an earlier object: nothing is looked up), and the
  library's closure is remembered (one `statx` per file it was decided by stands for the
  search, while none changed). The *first load ever* row times that first run, each with
  an empty cache directory: the image and libc's forwarder written, the program's scope
  walked for the forwarder's activation and a second forwarder file written that remembers
  it, the closure searched (`ld.so.cache` mapped, every library's headers read) and written
  down.
- **capsule-gen** (`benches/benches/gen.rs`): wall time of the release `capsule-gen` writing
  the six shim crates (`libGL.so.1 libEGL.so.1 libGLX.so.0 libGLESv2.so.2 libOpenGL.so.0
  libGLdispatch.so.0`, prefix `/`); then one cold release build of the libEGL crate in an
  empty target directory.
- **Demo game** (`./demo.sh --bench 61 FILE`): `examples/game/game.c` built twice, linked
  directly to the system's `libEGL`/`libGL` and linked to the checked-in shims (host prefix
  `/`, the game's own `libz.so.1` first in its path); each run in a fresh process, the two
  alternating, medians of the game's own figures (frame times: means, see below). *eglInitialize*: from the first EGL call
  to `eglInitialize` returning (with the shims the capsules are loaded earlier, in the shims'
  constructors, so this leaves that out); *from execve*: from just before the game's `execve`
  (`examples/game/exec_timed.c` starts it and passes the time) to `eglInitialize`
  returning, which includes the dynamic linker and the shims' constructors. *Frame*: the median of 120
  frames of the lit cube, each read back with `glReadPixels`, after 8 untimed ones
  (llvmpipe compiles the shaders and starts its threads in the first ones), on the main
  thread and on a thread the game creates; the mean over the processes of those medians
  (they fall in two clusters, ~0.27 and ~0.34 ms here, for both builds alike, and a median
  over processes jumps between them). *RSS*: VmRSS just before `eglTerminate`.
- **Vulkan** (`examples/deploy/bench-vulkan.sh RUNS FILE`): `examples/deploy/vulkan_copy.c`
  built twice, linked directly to the system's Vulkan loader and linked to the checked-in
  libvulkan shim (host prefix `/`, outside any sandbox); each run in a fresh process pinned
  to one CPU (on two, where lavapipe's threads wake up makes a submission take ~20 or
  ~50 µs in either program), the two alternating, medians of the program's own figures. *Instance + device*: from before
  `vkCreateInstance` (the loader reads the ICD manifests and `dlopen`s four drivers inside
  the capsule, lavapipe among them) to `vkCreateDevice` returning on llvmpipe. *Work*: two
  host-visible buffers, a recorded fill + copy, submitted, waited for, read back and
  checked; *again*: the recorded work submitted and waited for 200 more times.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate(target: &Path, group: &str, bench: &str, median_ns: f64) {
        estimate_in(&target.join("criterion"), group, bench, median_ns);
    }

    fn estimate_in(criterion: &Path, group: &str, bench: &str, median_ns: f64) {
        let dir = criterion.join(group).join(bench).join("new");
        std::fs::create_dir_all(&dir).unwrap();
        let json = format!(
            r#"{{"mean":{{"point_estimate":999.0}},"median":{{"point_estimate":{median_ns}}}}}"#
        );
        std::fs::write(dir.join("estimates.json"), json).unwrap();
    }

    fn measured(target: &Path, figure: &str, line: &str) {
        measured_in(&target.join("capsule-bench"), figure, line);
    }

    fn measured_in(dir: &Path, figure: &str, line: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("{figure}.tsv")), line).unwrap();
    }

    #[test]
    fn a_missing_result_names_the_benchmark_and_what_to_run() {
        let target = tempfile::tempdir().unwrap();
        let err = report(target.path()).unwrap_err();
        assert!(
            err.contains("call/direct did not run (run ./bench.sh)"),
            "{err}"
        );
    }

    #[test]
    fn medians_become_ratios_against_their_baselines_and_goals_are_judged() {
        let target = tempfile::tempdir().unwrap();
        let t = target.path();
        estimate(t, "call", "direct", 2.0);
        estimate(t, "call", "slot", 2.0);
        estimate(t, "call", "shim", 3.5);
        estimate(t, "malloc_free", "program", 10.0);
        estimate(t, "malloc_free", "capsule", 10.5);
        for who in ["program", "capsule"] {
            for threads in ["1thread", "2threads"] {
                estimate(t, "free_program_pointer", &format!("{who}_{threads}"), 8.0);
            }
        }
        let load = "capsule_ns=3000000\tdlmopen_ns=1000000\tfloor_ns=1500000\tfirst_ns=3500000\tcapsule_rss_kb=900\tdlmopen_rss_kb=800\truns=21\n";
        measured(t, "load_libz", load);
        measured(t, "load_libEGL", load);
        // The i386 run's calls and loads.
        let i686 = t.join("criterion-i686");
        estimate_in(&i686, "call", "direct", 2.0);
        estimate_in(&i686, "call", "slot", 2.0);
        estimate_in(&i686, "call", "shim", 2.5);
        let i686_results = t.join("capsule-bench/i686-unknown-linux-gnu");
        measured_in(&i686_results, "load_libz", load);
        measured_in(&i686_results, "load_libEGL", load);
        measured(
            t,
            "gen",
            "six_gl_libraries_s=0.5\truns=7\tshim_build_s=20\n",
        );
        measured(
            t,
            "demo",
            "runs=9\tdirect_load_ms=50\tdirect_startup_ms=60\tdirect_frame_ms=5\t\
             direct_thread_frame_ms=5\tdirect_rss_kb=100000\tcapsule_load_ms=60\t\
             capsule_startup_ms=120\tcapsule_frame_ms=5.05\tcapsule_thread_frame_ms=5.2\t\
             capsule_rss_kb=110000\n",
        );
        measured(
            t,
            "vulkan",
            "runs=15\tdirect_instance_device_ms=30\tcapsule_instance_device_ms=31.2\t\
             direct_work_ms=0.1\tcapsule_work_ms=0.2\tdirect_repeat_ms=0.05\t\
             capsule_repeat_ms=0.06\tdirect_process_ms=40\tcapsule_process_ms=42\n",
        );

        let text = report(t).unwrap();
        let row = |start: &str| {
            text.lines()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("no row {start:?} in\n{text}"))
                .to_string()
        };
        assert!(row("| `add1` call through a rewritten slot")
            .contains("| 1.00x (+0.00 ns) | ≤ 1.05x | yes |"));
        assert!(row("| `add1` call through a generated shim").ends_with("| **no** |"));
        assert!(row("| i386: `add1` call through a generated shim")
            .contains("| 1.25x (+0.50 ns) | ≤ +1.0 ns/call | yes |"));
        assert!(row("| i386: load of `libEGL.so.1`").contains("| 3.00x"));
        assert!(row("| malloc(64)+free pair").contains("| 1.05x (+0.50 ns) | ≤ 1.10x | yes |"));
        assert!(row("| load of `libz.so.1`")
            .contains("| 3.00 ms | 1.00 ms (plain `dlmopen(LM_ID_NEWLM)`) | 3.00x"));
        assert!(
            row("| the former design's dlmopen calls for that load (`libz.so.1`)")
                .contains("| 1.50 ms | 1.00 ms (plain `dlmopen(LM_ID_NEWLM)`) | 1.50x")
        );
        assert!(row("| first load ever of that library (`libz.so.1`)")
            .contains("| 3.50 ms | 1.00 ms (plain `dlmopen(LM_ID_NEWLM)`) | 3.50x"));
        assert!(row("| RSS growth of that load (`libz.so.1`)").contains("| +100 kB |"));
        assert!(row("| `capsule-gen` run").contains("| 500.00 ms |"));
        assert!(row("| `capsule-gen` run").ends_with("| < 1 s | yes |"));
        let demo = "| the demo game (`examples/game`) through the shims: ";
        assert!(row(&format!("{demo}first `eglGetPlatformDisplay`"))
            .contains("| 60.00 ms | 50.00 ms (same game linked directly) | 1.20x"));
        assert!(row(&format!("{demo}first `eglGetPlatformDisplay`")).ends_with("| yes |"));
        assert!(row(&format!("{demo}from `execve`")).ends_with("| ≤ 1.03x | **no** |"));
        assert!(row(&format!("{demo}time per frame (")).ends_with("| ≤ 1.02x | yes |"));
        assert!(row(&format!("{demo}time per frame, on a thread")).ends_with("| **no** |"));
        assert!(row(&format!("{demo}RSS")).contains("| +10000 kB |"));
        let vulkan =
            "| Vulkan (`examples/deploy/vulkan_copy.c`, lavapipe) through the libvulkan shim: ";
        assert!(row(&format!("{vulkan}instance"))
            .contains("| 31.20 ms | 30.00 ms (same program linked directly) | 1.04x"));
        assert!(row(&format!("{vulkan}instance")).ends_with("| ≤ 1.05x | yes |"));
        assert!(row(&format!("{vulkan}the work, first")).ends_with("| report | — |"));
        assert!(row(&format!("{vulkan}the work again")).ends_with("| ≤ 1.05x | **no** |"));
    }
}
