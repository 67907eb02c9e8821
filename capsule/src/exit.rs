//! Process exit with capsules: the program's `exit` runs only its own libc's exit
//! handlers. Handlers that code inside a capsule registered (`atexit` in a library is
//! `__cxa_atexit` with the library's handle) sit in the namespace libc's list, and would
//! run only when ld.so finalizes their object, *after* that object's destructors freed
//! what they use; and the namespace libc's stdio buffers would never be flushed.
//!
//! So each namespace's libc gets, in the program's exit list, a handler that runs all of
//! that libc's handlers (`__cxa_finalize(NULL)`, as its own `exit` would) and flushes its
//! streams. It is registered when the namespace is made, after the program's startup
//! registered ld.so's finalizer, so it runs before any destructor; handlers the program
//! registers later (in `main`) run before it, as they would if the library were linked
//! directly.

use std::ffi::c_void;

use parking_lot::Mutex;

use crate::namespace::Handle;

type Finalize = unsafe extern "C" fn(*mut c_void);
type Flush = unsafe extern "C" fn(*mut c_void) -> libc::c_int;

/// Each namespace libc's `__cxa_finalize` and `fflush`, newest last.
static LIBCS: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

/// Run the exit handlers of the namespace libc of `libc_handle` at program exit.
pub(crate) fn register(libc_handle: Handle) {
    let (Some(finalize), Some(flush)) = (
        libc_handle.symbol(c"__cxa_finalize"),
        libc_handle.symbol(c"fflush"),
    ) else {
        crate::debug!(Libs, "the namespace's libc lacks __cxa_finalize or fflush: its exit handlers run only at finalization");
        return;
    };
    let mut libcs = LIBCS.lock();
    if libcs.is_empty() {
        // SAFETY: `run_at_exit` is a plain extern "C" fn that lives for the whole process.
        unsafe { libc::atexit(run_at_exit) };
    }
    libcs.push((finalize.as_ptr() as usize, flush.as_ptr() as usize));
}

extern "C" fn run_at_exit() {
    let libcs = std::mem::take(&mut *LIBCS.lock());
    // Newest namespace first, as exit handlers run in reverse order of registration.
    for (finalize, flush) in libcs.into_iter().rev() {
        // SAFETY: these are `__cxa_finalize(void *)` and `fflush(FILE *)` of a namespace
        // libc that is never unloaded; NULL means "every handler" and "every stream".
        unsafe {
            std::mem::transmute::<usize, Finalize>(finalize)(std::ptr::null_mut());
            std::mem::transmute::<usize, Flush>(flush)(std::ptr::null_mut());
        }
    }
}
