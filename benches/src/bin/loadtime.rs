//! Times one load of a library in a fresh process, for the load benchmark (a namespace
//! cannot be unloaded, and glibc has only 15 to give, so each load needs its own process).
//!
//! `loadtime capsule|dlmopen LIBRARY` loads LIBRARY (prefix `/` for a capsule, the system's
//! search path for a plain `dlmopen(LM_ID_NEWLM)`), and prints `NANOSECONDS RSS_GROWTH_KB`.
//!
//! `loadtime floor LIBRARY OBJECT` times the loads a capsule makes, with none of its own
//! work: OBJECT (a one-function shared object, standing in for the interposer, which a
//! capsule loads from a file in the user's cache directory) `dlmopen`ed into a new
//! namespace, then the running libc, then LIBRARY by name (ld.so's own search). What a
//! capsule's load costs beyond that is its resolution and setup.

use std::ffi::{c_void, CString};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, library, object) = match args.as_slice() {
        [mode, library] if mode != "floor" => (mode, library, None),
        [mode, library, object] if mode == "floor" => (mode, library, Some(object)),
        _ => {
            eprintln!(
                "usage: loadtime capsule|dlmopen LIBRARY\n       loadtime floor LIBRARY OBJECT"
            );
            return ExitCode::from(2);
        }
    };
    let before = match rss_kb() {
        Ok(kb) => kb,
        Err(e) => return fail(&e),
    };
    let start = Instant::now();
    let loaded = match mode.as_str() {
        "capsule" => load_capsule(library),
        "dlmopen" => load_dlmopen(library),
        "floor" => load_floor(library, object.map(String::as_str).unwrap_or_default()),
        other => Err(format!(
            "unknown mode {other:?}: use capsule, dlmopen or floor"
        )),
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
    open_in(libc::LM_ID_NEWLM, library).map(|_| ())
}

fn load_floor(library: &str, object: &str) -> Result<(), String> {
    let head = open_in(libc::LM_ID_NEWLM, object)?;
    let mut lmid: libc::Lmid_t = 0;
    // SAFETY: RTLD_DI_LMID writes one Lmid_t; the handle is live.
    if unsafe { libc::dlinfo(head, libc::RTLD_DI_LMID, &mut lmid as *mut _ as *mut c_void) } != 0 {
        return Err("dlinfo(RTLD_DI_LMID) of the stand-in object failed".into());
    }
    open_in(lmid, &running_libc()?)?;
    open_in(lmid, library).map(|_| ())
}

/// The path of the libc this process runs (the one a capsule loads into its namespace).
fn running_libc() -> Result<String, String> {
    // SAFETY: RTLD_NOLOAD only finds the loaded libc; the handle is never closed (libc
    // stays loaded anyway). glibc's handle is the object's link map, whose l_name (the
    // second word) is the path it was opened under.
    unsafe {
        let handle = libc::dlopen(c"libc.so.6".as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD);
        if handle.is_null() {
            return Err("libc.so.6 is not loaded".into());
        }
        let name = *(handle as *const *const libc::c_char).add(1);
        Ok(std::ffi::CStr::from_ptr(name)
            .to_string_lossy()
            .into_owned())
    }
}

/// `dlmopen(lmid, name, RTLD_NOW)`, with dlerror's message on failure.
fn open_in(lmid: libc::Lmid_t, library: &str) -> Result<*mut c_void, String> {
    let name = CString::new(library).map_err(|_| format!("{library:?} contains a NUL byte"))?;
    // SAFETY: a NUL-terminated name; the library's constructors run as in any program that
    // loads it. RTLD_NOW like a capsule, so both bind every symbol at load.
    let handle = unsafe { libc::dlmopen(lmid, name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
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
    Ok(handle)
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
