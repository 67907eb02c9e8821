//! Times one load of a library in a fresh process, for the load benchmark (a namespace
//! cannot be unloaded, and glibc has only 15 to give, so each load needs its own process).
//!
//! `loadtime capsule|dlmopen LIBRARY` loads LIBRARY (prefix `/` for a capsule, the system's
//! search path for a plain `dlmopen(LM_ID_NEWLM)`), and prints `NANOSECONDS RSS_GROWTH_KB`.

use std::ffi::CString;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, library] = args.as_slice() else {
        eprintln!("usage: loadtime capsule|dlmopen LIBRARY");
        return ExitCode::from(2);
    };
    let before = match rss_kb() {
        Ok(kb) => kb,
        Err(e) => return fail(&e),
    };
    let start = Instant::now();
    let loaded = match mode.as_str() {
        "capsule" => load_capsule(library),
        "dlmopen" => load_dlmopen(library),
        other => Err(format!("unknown mode {other:?}: use capsule or dlmopen")),
    };
    let elapsed = start.elapsed();
    if let Err(e) = loaded {
        return fail(&e);
    }
    let after = match rss_kb() {
        Ok(kb) => kb,
        Err(e) => return fail(&e),
    };
    println!("{} {}", elapsed.as_nanos(), after as i64 - before as i64);
    if let Err(e) = std::io::Write::flush(&mut std::io::stdout()) {
        return fail(&format!("write the result: {e}"));
    }
    // What is measured ends here. Process exit would run the loaded libraries' destructors,
    // which are not part of a load: leave without running them, in both modes alike.
    // SAFETY: _exit ends the process at once; nothing after this relies on cleanup.
    unsafe { libc::_exit(0) }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("loadtime: {message}");
    ExitCode::FAILURE
}

fn load_capsule(library: &str) -> Result<(), String> {
    let capsule = capsule::Capsule::load(library, Path::new("/"))
        .map_err(|e| format!("capsule load of {library}: {e}"))?;
    std::hint::black_box(&capsule);
    Ok(())
}

fn load_dlmopen(library: &str) -> Result<(), String> {
    let name = CString::new(library).map_err(|_| format!("{library:?} contains a NUL byte"))?;
    // SAFETY: a NUL-terminated name; the library's constructors run as in any program that
    // loads it. RTLD_NOW like a capsule, so both bind every symbol at load.
    let handle = unsafe {
        libc::dlmopen(
            libc::LM_ID_NEWLM,
            name.as_ptr(),
            libc::RTLD_NOW | libc::RTLD_LOCAL,
        )
    };
    if handle.is_null() {
        // SAFETY: dlerror's string is valid until the next dl call on this thread.
        let e = unsafe { libc::dlerror() };
        let message = if e.is_null() {
            "no dlerror message".into()
        } else {
            // SAFETY: see above.
            unsafe { std::ffi::CStr::from_ptr(e) }
                .to_string_lossy()
                .into_owned()
        };
        return Err(format!("dlmopen of {library}: {message}"));
    }
    Ok(())
}

/// This process's resident set size, from /proc/self/status.
fn rss_kb() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("read /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS line in /proc/self/status".into())
}
