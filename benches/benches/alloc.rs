//! The allocator across the border: a malloc+free pair made inside a capsule (routed to the
//! program's allocator by the namespace's interposer) against the same C loop in a library
//! of the program's namespace; and `free` inside the capsule of pointers the program
//! allocated, on one thread and on two threads at once, against the same frees made in the
//! program's namespace.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use capsule_benches::{
    build_host_lib, build_program_lib, open, CHURN_SOURCE, MEASUREMENT, SAMPLES, WARM_UP,
};
use capsule_tests::Tree;
use criterion::{criterion_group, criterion_main, Criterion};

type Churn = unsafe extern "C" fn(libc::c_long, libc::c_ulong);
type FreeAll = unsafe extern "C" fn(*mut *mut libc::c_void, libc::c_long);

/// The block size of every allocation: small enough for glibc's thread caches and bins,
/// where the routing's own cost is largest relative to the allocator's.
const SIZE: usize = 64;

/// Frees are timed in batches of this many program allocations, so that the pointers of
/// one batch fit in memory whatever iteration count criterion asks for.
const BATCH: u64 = 20_000;

/// The same C functions in the program's namespace and in a capsule.
#[derive(Clone, Copy)]
struct Side {
    churn: Churn,
    free_all: FreeAll,
}

fn setup() -> (Side, Side, Tree, Tree) {
    let (host, build) = (Tree::new(), Tree::new());
    build_host_lib(&host, "libchurn.so.1", CHURN_SOURCE, &[]);
    let dir = build.path("lib/.keep").parent().unwrap().to_path_buf();
    let program = open(&build_program_lib(&dir, "churn_direct", CHURN_SOURCE, &[]));
    let capsule = capsule::Capsule::load("libchurn.so.1", host.root())
        .unwrap_or_else(|e| panic!("load the fixture libchurn.so.1 into a capsule: {e}"));
    // SAFETY: churn(long, unsigned long) and free_all(void **, long), as in CHURN_SOURCE.
    let sides = unsafe {
        (
            Side {
                churn: program.func("churn"),
                free_all: program.func("free_all"),
            },
            Side {
                churn: capsule_tests::func(&capsule, "churn"),
                free_all: capsule_tests::func(&capsule, "free_all"),
            },
        )
    };
    // A capsule is never unloaded; its functions stay valid after the handle is gone.
    drop(capsule);
    // glibc aborts on freeing a pointer of another allocator, so this proves the capsule's
    // free reaches the program's allocator before anything is timed.
    free_program_pointers(sides.1, 100);
    (sides.0, sides.1, host, build)
}

/// Parts a sample of `churn` is cut into; the sample is the fastest part, scaled up.
const CHUNKS: u64 = 8;

/// `iters` malloc+free pairs, timed as the fastest of `CHUNKS` equal parts times
/// `CHUNKS`: on a shared machine a pause of the VM or a neighbour's burst lands in one
/// part, not in the figure (and the program and the capsule are judged alike).
fn churn(side: Side, iters: u64) -> Duration {
    let per_chunk = iters.div_ceil(CHUNKS).max(1);
    let chunks = iters.div_ceil(per_chunk);
    let n = libc::c_long::try_from(per_chunk).expect("iteration count fits a C long");
    let fastest = (0..chunks)
        .map(|_| {
            let start = Instant::now();
            // SAFETY: churn's signature is checked in setup; it only allocates and frees.
            unsafe { (side.churn)(n, SIZE as libc::c_ulong) };
            start.elapsed()
        })
        .min()
        .unwrap_or_default();
    fastest * u32::try_from(chunks).expect("a handful of chunks")
}

/// Allocate `n` blocks here, then time `side` freeing them all.
fn free_program_pointers(side: Side, n: u64) -> Duration {
    let mut ptrs: Vec<*mut libc::c_void> = (0..n)
        .map(|_| {
            // SAFETY: plain malloc of the program's allocator; checked for NULL.
            let p = unsafe { libc::malloc(SIZE) };
            assert!(!p.is_null(), "malloc({SIZE}) failed");
            p
        })
        .collect();
    let len = libc::c_long::try_from(n).expect("batch fits a C long");
    let start = Instant::now();
    // SAFETY: every pointer came from the program's malloc and is freed exactly once.
    unsafe { (side.free_all)(ptrs.as_mut_ptr(), len) };
    start.elapsed()
}

/// `iters` frees of program pointers by `side`, in batches.
fn frees(side: Side, iters: u64) -> Duration {
    batches(iters).map(|n| free_program_pointers(side, n)).sum()
}

/// `iters` frees on each of two threads at once; a batch takes as long as its slower thread.
fn frees_two_threads(side: Side, iters: u64) -> Duration {
    batches(iters)
        .map(|n| {
            let barrier = Barrier::new(2);
            std::thread::scope(|s| {
                let threads: Vec<_> = (0..2)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            free_program_pointers(side, n)
                        })
                    })
                    .collect();
                threads
                    .into_iter()
                    .map(|t| t.join().expect("a freeing thread panicked"))
                    .max()
                    .unwrap_or_default()
            })
        })
        .sum()
}

fn batches(iters: u64) -> impl Iterator<Item = u64> {
    (0..iters.div_ceil(BATCH)).map(move |i| BATCH.min(iters - i * BATCH))
}

fn alloc(c: &mut Criterion) {
    let (program, capsule, _host, _build) = setup();
    let mut group = c.benchmark_group("malloc_free");
    for (name, side) in [("program", program), ("capsule", capsule)] {
        group.bench_function(name, |b| b.iter_custom(|iters| churn(side, iters)));
    }
    group.finish();

    let mut group = c.benchmark_group("free_program_pointer");
    for (name, side) in [("program", program), ("capsule", capsule)] {
        group.bench_function(format!("{name}_1thread"), |b| {
            b.iter_custom(|iters| frees(side, iters))
        });
        group.bench_function(format!("{name}_2threads"), |b| {
            b.iter_custom(|iters| frees_two_threads(side, iters))
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(WARM_UP)
        .measurement_time(MEASUREMENT)
        .sample_size(SAMPLES)
}

criterion_group! { name = benches; config = config(); targets = alloc }
criterion_main!(benches);
