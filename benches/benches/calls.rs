//! Cost of one call of `int add1(int)`: through a caller library's PLT slot bound directly
//! (the baseline), through the same slot rewritten to the capsule's `add1`, and through a
//! generated shim's trampoline. Each criterion iteration is one call, made by a C loop.

use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use capsule::elf::Object;
use capsule::patch::{self, Expect};
use capsule_benches::{
    build_host_lib, build_program_lib, open, target_dir, Opened, ADD_SOURCE, LOOP_SOURCE,
    MEASUREMENT, SAMPLES, WARM_UP,
};
use capsule_tests::{build_shim, capsule_gen, run_ok, Tree};
use criterion::{criterion_group, criterion_main, Criterion};

type CallLoop = unsafe extern "C" fn(libc::c_long) -> c_int;
type Origin = unsafe extern "C" fn() -> c_int;
type Address = unsafe extern "C" fn() -> *mut libc::c_void;

/// The file of the object that holds `address`.
fn file_of(address: *mut libc::c_void) -> String {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: dladdr only reads the address and fills `info`.
    if unsafe { libc::dladdr(address, info.as_mut_ptr()) } == 0 {
        return "(no object)".into();
    }
    // SAFETY: filled by the successful dladdr; dli_fname is a NUL-terminated path.
    let name = unsafe { info.assume_init() }.dli_fname;
    // SAFETY: as above.
    unsafe { std::ffi::CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned()
}

/// The three callers, each checked to reach the `add1` it is meant to measure.
struct Callers {
    direct: CallLoop,
    slot: CallLoop,
    shim: CallLoop,
    /// Keeps the fixture files alive while the shim's capsule may still open them.
    _trees: (Tree, Tree),
}

fn setup() -> Callers {
    let (host, build) = (Tree::new(), Tree::new());
    build_host_lib(&host, "libadd.so.1", ADD_SOURCE, &["-DORIGIN=2"]);
    let dir = build.path("lib/.keep").parent().unwrap().to_path_buf();
    let (link, rpath) = (
        format!("-L{}", dir.display()),
        format!("-Wl,-rpath,{}", dir.display()),
    );
    build_program_lib(&dir, "add_direct", ADD_SOURCE, &["-DORIGIN=1"]);
    let caller = |name| {
        build_program_lib(
            &dir,
            name,
            LOOP_SOURCE,
            &[&link, &rpath, "-ladd_direct", "-Wl,--no-as-needed"],
        )
    };
    let (direct, slot) = (open(&caller("call_direct")), open(&caller("call_slot")));
    // The shim first, so that its constructor (which rewrites the slots of every object
    // loaded by then) has run before the caller exists: the caller keeps its trampoline.
    let (shim_lib, shim_caller_path) = shim_caller(&host, &build, &dir);
    let _shim = open(&shim_lib);
    let shim = open(&shim_caller_path);

    rewrite_to_capsule(slot, host.root());
    // SAFETY: call_loop and callee_origin have exactly these C signatures (LOOP_SOURCE).
    let callers = unsafe {
        [direct, slot, shim].map(|lib| {
            (
                lib.func::<CallLoop>("call_loop"),
                lib.func::<Origin>("callee_origin"),
                lib.func::<Address>("add1_address"),
            )
        })
    };
    // SAFETY: add1_address takes nothing and returns a pointer.
    let [to_direct, to_slot, to_shim] = callers.map(|c| file_of(unsafe { c.2() }));
    assert!(
        to_direct.ends_with("libadd_direct.so"),
        "direct caller reaches {to_direct}"
    );
    assert!(
        to_slot.starts_with(&host.root().display().to_string()),
        "the rewritten slot reaches {to_slot}, not the capsule's add1"
    );
    assert_eq!(
        to_shim,
        shim_lib.display().to_string(),
        "the trampoline caller's slot must lead into the shim (its trampoline)"
    );
    // SAFETY: as above; the loops only call add1.
    unsafe {
        assert_eq!(callers[0].0(1000), 1000, "direct add1 loop");
        assert_eq!(callers[1].0(1000), 1000, "rewritten-slot add1 loop");
        assert_eq!(callers[2].0(1000), 1000, "shim add1 loop");
        assert_eq!(
            callers[0].1(),
            1,
            "the direct caller must reach the program's add1"
        );
        assert_eq!(
            callers[2].1(),
            2,
            "the shim caller must reach the host's add1 in a capsule"
        );
    }
    Callers {
        direct: callers[0].0,
        slot: callers[1].0,
        shim: callers[2].0,
        _trees: (host, build),
    }
}

/// Load the host's libadd into a capsule and point `caller`'s add1 slot at the capsule's.
fn rewrite_to_capsule(caller: Opened, prefix: &Path) {
    let capsule = capsule::Capsule::load("libadd.so.1", prefix)
        .unwrap_or_else(|e| panic!("load the fixture libadd.so.1 into a capsule: {e}"));
    let inside = capsule
        .symbol("add1")
        .expect("add1 in the capsule")
        .as_ptr() as usize;
    let outside = caller.address("add1");
    assert_ne!(inside, outside, "the capsule's add1 must be its own copy");
    // SAFETY: the link map is the live caller's, which is never closed.
    let object = unsafe { Object::from_link_map(caller.link_map()) }
        .unwrap_or_else(|e| panic!("read the caller library: {e}"));
    // SAFETY: the capsule's add1 has the same C signature and lives until the process ends
    // (capsules are never unloaded); no other thread calls through the slot yet.
    let report =
        unsafe { patch::rewrite_symbol(&object, "add1", None, inside, Expect::Target(outside)) }
            .unwrap_or_else(|e| panic!("rewrite the caller's add1 slot: {e}"));
    assert_eq!(report.rewritten, 1, "one JUMP_SLOT for add1: {report:?}");
    std::mem::forget(capsule);
}

/// Generate and build the shim of the host's libadd.so.1, and a caller linked against it:
/// (the installed shim, the caller). The shim's constructor loads the host's library into
/// a capsule when the shim is opened.
fn shim_caller(host: &Tree, build: &Tree, dir: &Path) -> (PathBuf, PathBuf) {
    let out = build.path("shims/.keep").parent().unwrap().to_path_buf();
    run_ok(
        Command::new(capsule_gen())
            .arg("--prefix")
            .arg(host.root())
            .arg("--out")
            .arg(&out)
            .args(["--target", capsule_tests::machine().rust_target()])
            .arg("libadd.so.1"),
        "generate the libadd.so.1 shim",
    );
    let shim = build_shim(&out.join("libadd.so.1"), &target_dir().join("bench-shims"));
    let lib_dir = build.path("shim-lib/.keep").parent().unwrap().to_path_buf();
    for name in ["libadd.so", "libadd.so.1"] {
        std::fs::copy(&shim, lib_dir.join(name)).expect("install the built shim");
    }
    // The shim reads its prefix when its constructor runs, at the dlopen below; no other
    // thread exists yet that could read the environment concurrently.
    std::env::set_var("CAPSULE_LIBADD_SO_1_PREFIX", host.root());
    let (link, rpath) = (
        format!("-L{}", lib_dir.display()),
        format!("-Wl,-rpath,{}", lib_dir.display()),
    );
    let caller = build_program_lib(
        dir,
        "call_shim",
        LOOP_SOURCE,
        &[&link, &rpath, "-ladd", "-Wl,--no-as-needed"],
    );
    (lib_dir.join("libadd.so.1"), caller)
}

/// Time `iters` calls made by one C loop.
fn time_loop(f: CallLoop, iters: u64) -> Duration {
    let n = libc::c_long::try_from(iters).expect("iteration count fits a C long");
    let start = Instant::now();
    // SAFETY: call_loop(long) -> int, checked in setup.
    let acc = unsafe { f(n) };
    let elapsed = start.elapsed();
    std::hint::black_box(acc);
    elapsed
}

fn calls(c: &mut Criterion) {
    let callers = setup();
    let mut group = c.benchmark_group("call");
    for (name, f) in [
        ("direct", callers.direct),
        ("slot", callers.slot),
        ("shim", callers.shim),
    ] {
        group.bench_function(name, |b| b.iter_custom(|iters| time_loop(f, iters)));
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(WARM_UP)
        .measurement_time(MEASUREMENT)
        .sample_size(SAMPLES)
}

criterion_group! { name = benches; config = config(); targets = calls }
criterion_main!(benches);
