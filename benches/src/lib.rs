//! Fixtures shared by the benchmarks: C libraries built at bench time, loaded either in the
//! program's namespace (the baselines) or in a capsule, and the files where benchmarks that
//! criterion cannot time (child processes, whole commands) leave their results for the
//! report.
//!
//! Every figure is a loop written in C, so that one criterion iteration is one call of the
//! thing measured and no Rust-to-C transition is inside the timed part.

use std::ffi::{c_void, CStr, CString};
use std::path::{Path, PathBuf};

use capsule_tests::{build_lib, Lib, Tree};

/// The callee of the call benchmarks. `ORIGIN` tells a build in the program's namespace (1)
/// from the host's build loaded in a capsule (2), so a benchmark can prove which one it calls.
pub const ADD_SOURCE: &str = r#"
int add1(int x) { return x + 1; }
int origin(void) { return ORIGIN; }
"#;

/// The caller of the call benchmarks: `n` calls of `add1` through this library's PLT slot.
pub const LOOP_SOURCE: &str = r#"
extern int add1(int);
extern int origin(void);
int call_loop(long n) {
    int acc = 0;
    for (long i = 0; i < n; i++) acc = add1(acc);
    return acc;
}
int callee_origin(void) { return origin(); }
/* Where this caller's reference to add1 leads (its GOT entry): the path it really takes. */
void *add1_address(void) { return (void *)&add1; }
"#;

/// The allocator loops. `volatile` keeps the compiler from deleting a malloc/free pair.
pub const CHURN_SOURCE: &str = r#"
#include <stdlib.h>
void churn(long n, unsigned long size) {
    for (long i = 0; i < n; i++) {
        void *volatile p = malloc(size);
        free(p);
    }
}
void free_all(void **ptrs, long n) {
    for (long i = 0; i < n; i++) free(ptrs[i]);
}
"#;

/// Criterion's settings for every benchmark: the machine is small and shared, so many
/// samples, and medians in the report; the whole `./bench.sh` stays within minutes.
pub const WARM_UP: std::time::Duration = std::time::Duration::from_secs(1);
/// See [`WARM_UP`].
pub const MEASUREMENT: std::time::Duration = std::time::Duration::from_secs(3);
/// See [`WARM_UP`].
pub const SAMPLES: usize = 60;

/// Build the host's `soname` from `source` into `host`'s library directory (the bench
/// binary's machine's: `usr/lib/x86_64-linux-gnu`, `usr/lib/i386-linux-gnu`).
pub fn build_host_lib(host: &Tree, soname: &str, source: &str, args: &[&str]) -> PathBuf {
    let dir = capsule_tests::for_machine("usr/lib/x86_64-linux-gnu");
    let out = host.path(&format!("{dir}/{soname}"));
    build_lib(
        &Lib {
            source,
            soname: Some(soname),
            args,
        },
        &out,
    );
    out
}

/// Build a library for the program's namespace at `dir/lib<name>.so` (soname the file
/// name), linked with `args`.
pub fn build_program_lib(dir: &Path, name: &str, source: &str, args: &[&str]) -> PathBuf {
    let file = format!("lib{name}.so");
    let out = dir.join(&file);
    build_lib(
        &Lib {
            source,
            soname: Some(&file),
            args,
        },
        &out,
    );
    out
}

/// A library opened with `dlopen` in the program's namespace, never closed (its code may
/// be reached through rewritten slots until the process ends).
#[derive(Clone, Copy)]
pub struct Opened(*mut c_void);

/// `dlopen(path, RTLD_NOW | RTLD_LOCAL)`; panics with dlerror's message on failure.
pub fn open(path: &Path) -> Opened {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .unwrap_or_else(|_| panic!("{} contains a NUL byte", path.display()));
    // SAFETY: a NUL-terminated path; the fixtures' constructors (the shim's included) are
    // safe to run on this thread.
    let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(
        !handle.is_null(),
        "dlopen {}: {}",
        path.display(),
        dl_error()
    );
    Opened(handle)
}

fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a string valid until the next dl call on this
    // thread; it is copied at once.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "no dlerror message".into()
    } else {
        // SAFETY: see above.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

impl Opened {
    /// The address of `name` in this library or its dependencies.
    pub fn address(self, name: &str) -> usize {
        let c = CString::new(name).expect("symbol names have no NUL byte");
        // SAFETY: a live handle and a NUL-terminated name.
        let p = unsafe { libc::dlsym(self.0, c.as_ptr()) };
        assert!(!p.is_null(), "dlsym {name}: {}", dl_error());
        p as usize
    }

    /// `name` as a function pointer of type `F`.
    ///
    /// # Safety
    /// `F` must be an `extern "C" fn` type matching the symbol's C signature.
    pub unsafe fn func<F: Copy>(self, name: &str) -> F {
        assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<usize>());
        let address = self.address(name);
        // SAFETY: the caller promises F is the symbol's function-pointer type.
        unsafe { std::mem::transmute_copy(&address) }
    }

    /// The library's link map, for `capsule::elf::Object::from_link_map`.
    pub fn link_map(self) -> *const capsule::elf::LinkMap {
        let mut lm: *const capsule::elf::LinkMap = std::ptr::null();
        // SAFETY: RTLD_DI_LINKMAP stores one pointer into `lm`; the handle is live.
        let rc = unsafe {
            libc::dlinfo(
                self.0,
                libc::RTLD_DI_LINKMAP,
                &mut lm as *mut _ as *mut c_void,
            )
        };
        assert!(rc == 0 && !lm.is_null(), "dlinfo: {}", dl_error());
        lm
    }
}

/// This workspace's target directory (`CARGO_TARGET_DIR`, else `target/`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("target"))
}

/// The workspace root.
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The directory where benchmarks not timed by criterion write their results:
/// `target/capsule-bench/<figure>.tsv`, read by the `report` binary; for a bench built
/// with `--target` (i686), `target/capsule-bench/TRIPLE/<figure>.tsv`.
pub fn results_dir() -> PathBuf {
    let dir = target_dir().join("capsule-bench");
    match capsule_tests::cross_target() {
        Some(triple) => dir.join(triple),
        None => dir,
    }
}

/// One result line: a figure's name and its numbers, as `name<TAB>key=value...`.
pub fn write_result(figure: &str, values: &[(&str, f64)]) {
    let dir = results_dir();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let line: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let path = dir.join(format!("{figure}.tsv"));
    std::fs::write(&path, format!("{}\n", line.join("\t")))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// For benchmarks not run by criterion: whether this run wants one of `ids`. `cargo bench`
/// passes the same arguments to every bench binary: `--list`, or a filter that names none
/// of `ids`, means no.
pub fn wanted(ids: &[&str]) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return false;
    }
    match args.iter().find(|a| !a.starts_with('-')) {
        Some(filter) => ids.iter().any(|id| id.contains(filter.as_str())),
        None => true,
    }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &mut [f64]) -> f64 {
    assert!(!values.is_empty(), "median of no values");
    values.sort_by(|a, b| a.total_cmp(b));
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
