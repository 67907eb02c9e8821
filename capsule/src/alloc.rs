//! One allocator for both sides: the namespace's malloc family is routed to the
//! program's, through the interposer that heads the namespace. Its allocator functions
//! are IFUNCs that resolve to the entries of its table, which [`route_to_program`] fills
//! before anything else is loaded: each object's slots are bound straight to the
//! program's allocator by ld.so itself (see `interpose.c`).
//!
//! "The program's allocator" is whatever `malloc` the program's own namespace resolves
//! (glibc's, or jemalloc or a Rust global allocator exported as `malloc`): ld.so's own
//! allocations use that one too, so everything in the process agrees.

use std::ffi::{c_int, c_void, CStr};
use std::sync::Once;

use crate::error::{Error, Result};
use crate::interposer::{Interposer, Table};

/// Point the interposer's allocator entries at the program's allocator.
pub(crate) fn route_to_program(interposer: &Interposer) -> Result<()> {
    let required = |name: &CStr| {
        program_symbol(name).ok_or_else(|| Error::Dl {
            operation: "dlsym(RTLD_DEFAULT)",
            target: name.to_string_lossy().into_owned(),
            message: "the program's namespace defines no such allocator function".into(),
        })
    };
    let malloc = required(c"malloc")?;
    let free = required(c"free")?;
    let calloc = required(c"calloc")?;
    let realloc = required(c"realloc")?;
    let posix_memalign = required(c"posix_memalign")?;
    let usable = required(c"malloc_usable_size")?;
    // The rest exist in glibc; an allocator without them gets posix_memalign-based ones.
    let memalign = program_symbol(c"memalign");
    let aligned_alloc = program_symbol(c"aligned_alloc");
    let valloc = program_symbol(c"valloc");
    let pvalloc = program_symbol(c"pvalloc");
    // Each address is the program's definition of the function of that name, whose C
    // signature is fixed by POSIX/glibc and matches the field of the C table.
    interposer.with_table(|t| {
        t.malloc = malloc;
        t.free = free;
        t.calloc = calloc;
        t.realloc = realloc;
        t.posix_memalign = posix_memalign;
        t.malloc_usable_size = usable;
        t.memalign = memalign.unwrap_or(fallback_memalign as *mut c_void);
        t.aligned_alloc = aligned_alloc.unwrap_or(fallback_memalign as *mut c_void);
        t.valloc = valloc.unwrap_or(fallback_valloc as *mut c_void);
        t.pvalloc = pvalloc.unwrap_or(fallback_pvalloc as *mut c_void);
        if crate::config::debug_enabled(crate::config::Topic::Alloc) {
            t.count = 1;
        }
    });
    crate::debug!(
        Alloc,
        "namespace {}: malloc family routed to the program's allocator (malloc at {malloc:p})",
        interposer.lmid()
    );
    if crate::config::debug_enabled(crate::config::Topic::Alloc) {
        report_at_exit(interposer.table());
    }
    Ok(())
}

/// The program namespace's definition of `name`, as the program's own references bind
/// it: versioned. An unversioned lookup would skip an allocator that defines only the
/// non-default `malloc@GLIBC_2.2.5` (glibc's `libc_malloc_debug.so.0` does), while the
/// program's references reach exactly that one.
fn program_symbol(name: &CStr) -> Option<*mut c_void> {
    let version = match name.to_bytes() {
        b"aligned_alloc" => c"GLIBC_2.16",
        _ => c"GLIBC_2.2.5",
    };
    // SAFETY: RTLD_DEFAULT lookups from the runtime (which lives in the program's
    // namespace) search the program's global scope; the strings are NUL-terminated.
    let p = unsafe { libc::dlvsym(libc::RTLD_DEFAULT, name.as_ptr(), version.as_ptr()) };
    if !p.is_null() {
        return Some(p);
    }
    // SAFETY: as above.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// Routing statistics of one namespace (counted only with `CAPSULE_DEBUG=alloc`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub mallocs: u64,
    pub frees: u64,
    pub reallocs: u64,
    pub aligned: u64,
}

pub(crate) fn stats(table: *const Table) -> Stats {
    // SAFETY: the table lives as long as the process; the counters are only ever
    // updated with atomic adds, so plain reads see some recent value.
    unsafe {
        Stats {
            mallocs: std::ptr::read_volatile(&(*table).mallocs),
            frees: std::ptr::read_volatile(&(*table).frees),
            reallocs: std::ptr::read_volatile(&(*table).reallocs),
            aligned: std::ptr::read_volatile(&(*table).aligned),
        }
    }
}

fn report_at_exit(table: *mut Table) {
    static TABLES: parking_lot::Mutex<Vec<usize>> = parking_lot::Mutex::new(Vec::new());
    static REGISTER: Once = Once::new();
    TABLES.lock().push(table as usize);
    extern "C" fn report() {
        for &t in TABLES.lock().iter() {
            // SAFETY: registered tables live until the process ends.
            let lmid = unsafe { (*(t as *const Table)).lmid };
            let s = stats(t as *const Table);
            eprintln!(
                "capsule: namespace {lmid}: routed {} malloc/calloc, {} free, {} realloc, {} aligned allocations to the program's allocator",
                s.mallocs, s.frees, s.reallocs, s.aligned
            );
        }
    }
    REGISTER.call_once(|| {
        // SAFETY: `report` is a plain extern "C" fn that lives for the whole process.
        unsafe { libc::atexit(report) };
    });
}

unsafe extern "C" fn fallback_memalign(align: libc::size_t, size: libc::size_t) -> *mut c_void {
    let mut out = std::ptr::null_mut();
    // SAFETY: posix_memalign writes `out` only on success.
    let rc: c_int = unsafe { libc::posix_memalign(&mut out, align.max(8), size) };
    if rc == 0 {
        out
    } else {
        std::ptr::null_mut()
    }
}

unsafe extern "C" fn fallback_valloc(size: libc::size_t) -> *mut c_void {
    // SAFETY: forwards to fallback_memalign with the page size as alignment.
    unsafe { fallback_memalign(page_size(), size) }
}

unsafe extern "C" fn fallback_pvalloc(size: libc::size_t) -> *mut c_void {
    let page = page_size();
    // SAFETY: as above, with the size rounded up to whole pages.
    unsafe { fallback_memalign(page, size.div_ceil(page).max(1) * page) }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}
