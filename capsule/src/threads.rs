//! Threads the program's libc created never ran the namespace libc's per-thread setup:
//! that libc's ctype pointers (thread-local) are NULL there, and `toupper`, `strtol` or
//! NSS parsing inside the capsule crash. Two measures make every program thread usable
//! inside a capsule at no per-call cost:
//!
//! - Threads created *after* the load: glibc fills a new thread's static TLS block for
//!   every module from that module's TLS initialization image. The namespace libc gets an
//!   image that already holds the right ctype pointers (the C locale's tables, the same
//!   for every thread until it calls `uselocale`), so its per-thread setup is done before
//!   the thread runs, whoever creates it.
//! - Threads that exist at load time: each runs the namespace libc's `__ctype_init` once,
//!   in a handler of a real-time signal that nothing else uses, sent to each of them (the
//!   way glibc itself runs `setxid` on every thread). A thread that blocks the signal
//!   (seen in its /proc status, so nobody waits for it) is set up only when it first calls
//!   through the interposer (see `interpose.c`): `dlopen`/`dlsym` inside the capsule, or
//!   any allocation while `CAPSULE_DEBUG=alloc` keeps the allocator on the interposer.
//!   Until then, ctype and NSS functions of the capsule crash on it: load capsules before
//!   starting threads that block every signal.
//!
//! The image swap writes two fields of glibc's private `struct link_map`
//! (`l_tls_initimage`, `l_tls_initimage_size`), found by their values and checked against
//! the running thread's TLS layout: if the check fails, nothing is written and new threads
//! get only the lazy setup above (reported with `CAPSULE_DEBUG=libs`).

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::elf::{LinkMap, Segment};
use crate::namespace::Handle;

/// How far into glibc's `struct link_map` its TLS fields may lie (2.36: ~0x450).
const LINK_MAP_SCAN_BYTES: usize = 4096;

/// Tell the program's libc that the process is multi-threaded from now on.
///
/// glibc's malloc takes no arena lock while its libc's `__libc_single_threaded` is set,
/// and a libc only clears it when *it* creates a thread. Threads the namespace's libc
/// creates (Mesa's llvmpipe workers) allocate from the program's heap through the routing,
/// unseen by the program's libc: left set, two threads would run malloc unlocked at once.
/// Clearing it only costs the single-thread shortcut; glibc never sets it again.
///
/// Returns whether the flag was set: then the calling thread is the process's only one.
pub(crate) fn mark_program_multithreaded() -> Threads {
    // SAFETY: RTLD_DEFAULT lookups from the runtime search the program's namespace.
    let flag = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__libc_single_threaded".as_ptr()) };
    if flag.is_null() {
        return Threads::Unknown;
    }
    // SAFETY: `__libc_single_threaded` (GLIBC_2.32) is a `char` data object of libc.
    let was = unsafe { (flag as *mut u8).replace(0) };
    if was != 0 {
        Threads::OnlyThis
    } else {
        Threads::Unknown
    }
}

/// What is known of the program's threads when a namespace is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Threads {
    /// The calling thread is the only one (the program's libc never created another).
    OnlyThis,
    /// There may be others.
    Unknown,
}

/// Give the namespace libc of `libc_handle` the per-thread setup on every thread.
pub(crate) fn prepare(
    libc_handle: Handle,
    libc_tls: Option<&Segment>,
    ctype_init: unsafe extern "C" fn(),
    threads: Threads,
) {
    match seed_tls_image(libc_handle, libc_tls) {
        Ok(()) => crate::debug!(Libs, "threads created from now on get the namespace libc's ctype setup from its TLS image"),
        Err(why) => crate::debug!(Libs, "cannot seed the namespace libc's TLS image ({why}); new threads are set up on their first malloc or dlopen inside the capsule"),
    }
    if threads == Threads::OnlyThis {
        // The namespace libc's early init ran on this thread; there is no other.
        return;
    }
    let (done, sent) = broadcast(ctype_init);
    if sent > 0 {
        crate::debug!(
            Libs,
            "ran the namespace libc's per-thread setup on {done} of {sent} existing thread(s)"
        );
    }
}

/// Build the namespace libc's TLS image with the ctype pointers in place, and make glibc
/// use it for new threads.
fn seed_tls_image(libc_handle: Handle, libc_tls: Option<&Segment>) -> Result<(), String> {
    let map = libc_handle.link_map();
    let tls = libc_tls.ok_or("libc has no PT_TLS")?;
    let (image_addr, file_size, mem_size) = (tls.address, tls.file_size as usize, tls.mem_size);
    let fields = TlsFields::find(map, image_addr, file_size, mem_size)?;
    let block = fields.this_threads_block();

    // This thread ran __ctype_init in the namespace libc's early init: copy its values.
    let mut image = vec![0u8; mem_size];
    // SAFETY: the initialization image is file_size bytes of libc's mapped .tdata.
    image[..file_size]
        .copy_from_slice(unsafe { std::slice::from_raw_parts(image_addr as *const u8, file_size) });
    for name in [
        c"__ctype_b_loc",
        c"__ctype_toupper_loc",
        c"__ctype_tolower_loc",
    ] {
        let loc = libc_handle.symbol(name).ok_or("libc lacks __ctype_*_loc")?;
        // SAFETY: `__ctype_*_loc` (GLIBC_2.3) take nothing and return the address of this
        // thread's pointer, inside its TLS block of that libc.
        let slot = unsafe {
            std::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> *const usize>(loc.as_ptr())(
            )
        };
        // Where the pointer lies confirms the block (and so the fields) found above.
        let offset = (slot as usize)
            .checked_sub(block)
            .filter(|o| o + 8 <= mem_size)
            .ok_or("a ctype pointer lies outside libc's TLS block as located")?;
        // SAFETY: slot points at an initialized pointer-sized TLS variable of this thread.
        let value = unsafe { slot.read() };
        image[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
    }
    fields.install(Vec::leak(image));
    Ok(())
}

/// `l_tls_initimage` and the fields after it in glibc's private `struct link_map`:
/// `l_tls_initimage_size`, `l_tls_blocksize`, `l_tls_align`, `l_tls_firstbyte_offset`,
/// `l_tls_offset` (glibc 2.3 to 2.40 keep this order).
struct TlsFields(*mut usize);

impl TlsFields {
    /// The only place in the link map holding the image's address, then its size, then
    /// the block size.
    fn find(
        map: *const LinkMap,
        image: usize,
        file_size: usize,
        mem_size: usize,
    ) -> Result<Self, String> {
        let words = map as *const usize;
        let mut found = None;
        for i in 0..LINK_MAP_SCAN_BYTES / 8 - 6 {
            // SAFETY: glibc's struct link_map (allocated by ld.so) is larger than the
            // scanned range; the words are only read.
            let w = |k: usize| unsafe { words.add(i + k).read_volatile() };
            if w(0) == image && w(1) == file_size && w(2) == mem_size {
                if found.is_some() {
                    return Err("libc's link map matches in two places".into());
                }
                found = Some(TlsFields(words.wrapping_add(i) as *mut usize));
            }
        }
        found.ok_or_else(|| "libc's TLS fields not found in its link map".into())
    }

    /// This thread's block: x86_64 TLS variant II puts it `l_tls_offset` below the thread
    /// pointer.
    fn this_threads_block(&self) -> usize {
        let thread_pointer: usize;
        // SAFETY: on x86_64 glibc, %fs:0 holds the thread control block's address (its
        // first field points to itself).
        unsafe {
            std::arch::asm!("mov {}, fs:0", out(reg) thread_pointer, options(nostack, readonly, preserves_flags))
        };
        // SAFETY: `find` located the fields; l_tls_offset is five words on.
        thread_pointer.wrapping_sub(unsafe { self.0.add(5).read_volatile() })
    }

    /// Make glibc copy `image` (the whole block, .tbss included) into new threads.
    fn install(&self, image: &'static [u8]) {
        // SAFETY: the fields were located and confirmed by `seed_tls_image`. The new image
        // starts with the same bytes as the old, so a thread created meanwhile that reads
        // the new pointer with the old size still gets a correct (if unseeded) block: the
        // pointer is written first for that reason.
        unsafe {
            self.0.write_volatile(image.as_ptr() as usize);
            std::sync::atomic::fence(Ordering::SeqCst);
            self.0.add(1).write_volatile(image.len());
        }
    }
}

/// Namespaces' `__ctype_init`s that the broadcast handler runs.
static PENDING: Mutex<Vec<usize>> = Mutex::new(Vec::new());
static DONE: AtomicUsize = AtomicUsize::new(0);
/// The setup functions the handler calls (a signal handler must not lock).
static HANDLER_INIT: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    let init = HANDLER_INIT.load(Ordering::Acquire);
    if init != 0 {
        // SAFETY: HANDLER_INIT holds a namespace libc's `__ctype_init`, which only
        // writes this thread's three ctype pointers: async-signal-safe.
        unsafe { std::mem::transmute::<usize, unsafe extern "C" fn()>(init)() };
    }
    DONE.fetch_add(1, Ordering::Release);
}

/// Run `ctype_init` on every other thread of the process; returns (done, sent).
fn broadcast(ctype_init: unsafe extern "C" fn()) -> (usize, usize) {
    let _one_at_a_time = PENDING.lock();
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() };
    let tids: Vec<libc::pid_t> = std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter(|&t| t != me)
                .collect()
        })
        .unwrap_or_default();
    if tids.is_empty() {
        return (0, 0);
    }
    let Some(signal) = free_signal() else {
        return (0, tids.len());
    };
    HANDLER_INIT.store(ctype_init as *const () as usize, Ordering::Release);
    DONE.store(0, Ordering::Release);
    // SAFETY: sigaction is plain data, valid all zero.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_signal as *const () as usize;
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: installs a handler for a real-time signal whose disposition was SIG_DFL
    // (unused by the program); it is restored below.
    unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let mut sent = 0;
    for tid in &tids {
        // A thread that blocks the signal would only make us wait for nothing: it keeps
        // the lazy setup instead.
        if blocks(*tid, signal) {
            continue;
        }
        // SAFETY: tgkill to a thread of this process; a thread that exited meanwhile
        // gives ESRCH, which we just count out.
        if unsafe { libc::syscall(libc::SYS_tgkill, pid, *tid, signal) } == 0 {
            sent += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_millis(500);
    while DONE.load(Ordering::Acquire) < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
    // Discard what may still be pending (a thread that blocked the signal after we looked),
    // then restore the default.
    action.sa_sigaction = libc::SIG_IGN;
    // SAFETY: as above; ignoring a signal discards its pending instances.
    unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
    action.sa_sigaction = libc::SIG_DFL;
    // SAFETY: restores the disposition the signal had before.
    unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
    HANDLER_INIT.store(0, Ordering::Release);
    (DONE.load(Ordering::Acquire), sent)
}

/// Whether thread `tid` blocks `signal` (its `SigBlk` mask in /proc; unknown counts as
/// blocked, so nobody waits on it).
fn blocks(tid: libc::pid_t, signal: libc::c_int) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")) else {
        return true;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_none_or(|mask| mask & (1u64 << (signal - 1)) != 0)
}

/// A real-time signal with the default disposition (glibc keeps the first few for itself,
/// below SIGRTMIN).
fn free_signal() -> Option<libc::c_int> {
    (libc::SIGRTMIN()..=libc::SIGRTMAX()).rev().find(|&s| {
        // SAFETY: sigaction is plain data, valid all zero.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: querying a disposition writes `old` only.
        let rc = unsafe { libc::sigaction(s, std::ptr::null(), &mut old) };
        rc == 0 && old.sa_sigaction == libc::SIG_DFL
    })
}
