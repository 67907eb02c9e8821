//! `dlsym`/`dlvsym` as the program sees them once a shim is loaded.
//!
//! The program's `dlsym` and `dlvsym` slots (in the executable and its other objects, not
//! in glibc or the shim) are pointed at small entry points here, which call the function
//! the slot held before (glibc's, or the wrapper of a shim loaded earlier: wrappers chain)
//! and then correct the answer for this shim:
//! - one of the shim's trampolines becomes the real function it forwards to (so `&foo` in
//!   a rewritten program and `dlsym(.., "foo")` agree), or NULL when the host's library
//!   lacks it, as the real library would answer (with the real library's `dlerror`);
//! - NULL from `RTLD_DEFAULT` or the shim's own handle is looked up in the capsule, which
//!   finds what the real library has and the shim's symbol list did not.
//!
//! `RTLD_NEXT` searches after the *calling* object, which glibc finds from the return
//! address. The entry points therefore tail-jump to the previous function for
//! `RTLD_NEXT`, so it sees the program's return address, not the shim's.
//!
//! glibc's handles are link-map pointers: the shim's handle is its link map's address.
//! Objects loaded later keep glibc's `dlsym` (no correction for them).

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use super::callers::Target;
use super::Library;
use crate::capsule::Capsule;
use crate::elf::{LinkMap, Object};
use crate::patch::{self, Expect};

/// What the corrections need, for the one shim this copy of the runtime is part of.
pub(super) struct State {
    pub capsule: &'static Capsule,
    pub lib: &'static Library,
    pub own_handle: *const LinkMap,
    /// Trampoline address -> the real function, or `None` when the host lacks it.
    pub trampolines: HashMap<usize, Option<usize>>,
}

// SAFETY: `own_handle` is only compared, never dereferenced; the rest is Sync.
unsafe impl Sync for State {}
// SAFETY: as above.
unsafe impl Send for State {}

impl State {
    pub fn new(
        capsule: &'static Capsule,
        lib: &'static Library,
        own_handle: *const LinkMap,
        targets: &[Target],
    ) -> State {
        State {
            capsule,
            lib,
            own_handle,
            trampolines: targets.iter().map(|t| (t.trampoline, t.real)).collect(),
        }
    }
}

static STATE: OnceLock<State> = OnceLock::new();

/// What each slot held before it was pointed at the entry points; read by their assembly.
static NEXT_DLSYM: AtomicUsize = AtomicUsize::new(0);
static NEXT_DLVSYM: AtomicUsize = AtomicUsize::new(0);

type DlsymFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void;
type DlvsymFn = unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> *mut c_void;

// RTLD_NEXT is `(void *) -1`. For it the entries jump to the previous function with the
// caller's return address still on the stack; anything else goes to the Rust wrappers.
core::arch::global_asm!(
    ".pushsection .text.capsule_dl_entries,\"ax\",@progbits",
    ".p2align 4",
    ".globl __capsule_dlsym_entry",
    ".hidden __capsule_dlsym_entry",
    ".type __capsule_dlsym_entry, @function",
    "__capsule_dlsym_entry:",
    "cmp rdi, -1",
    "je .Lcapsule_dlsym_next",
    "jmp {dlsym_fixed}",
    ".Lcapsule_dlsym_next:",
    "jmp qword ptr [rip + {next_dlsym}]",
    ".size __capsule_dlsym_entry, . - __capsule_dlsym_entry",
    ".p2align 4",
    ".globl __capsule_dlvsym_entry",
    ".hidden __capsule_dlvsym_entry",
    ".type __capsule_dlvsym_entry, @function",
    "__capsule_dlvsym_entry:",
    "cmp rdi, -1",
    "je .Lcapsule_dlvsym_next",
    "jmp {dlvsym_fixed}",
    ".Lcapsule_dlvsym_next:",
    "jmp qword ptr [rip + {next_dlvsym}]",
    ".size __capsule_dlvsym_entry, . - __capsule_dlvsym_entry",
    ".popsection",
    dlsym_fixed = sym dlsym_fixed,
    dlvsym_fixed = sym dlvsym_fixed,
    next_dlsym = sym NEXT_DLSYM,
    next_dlvsym = sym NEXT_DLVSYM,
);

extern "C" {
    fn __capsule_dlsym_entry();
    fn __capsule_dlvsym_entry();
}

/// Record `state` and point the `dlsym`/`dlvsym` slots of `objects` at the entry points.
pub(super) fn install(state: State, objects: &[Object<'_>]) {
    let soname = state.lib.soname();
    if STATE.set(state).is_err() {
        return;
    }
    wrap(
        objects,
        soname,
        c"dlsym",
        __capsule_dlsym_entry as *const () as usize,
        &NEXT_DLSYM,
    );
    wrap(
        objects,
        soname,
        c"dlvsym",
        __capsule_dlvsym_entry as *const () as usize,
        &NEXT_DLVSYM,
    );
}

fn wrap(objects: &[Object<'_>], soname: &str, name: &CStr, entry: usize, next: &AtomicUsize) {
    let Some(previous) = previous_binding(objects, name) else {
        return;
    };
    next.store(previous, Ordering::Release);
    let name = name.to_str().unwrap_or_default();
    let mut rewritten = 0;
    for object in objects {
        // SAFETY: the entry takes the same arguments as dlsym/dlvsym and ends in the
        // previous function, which `next` holds before any slot points at the entry; the
        // shim (and so the entry) is never unloaded once it patched the program.
        match unsafe { patch::rewrite_symbol(object, name, None, entry, Expect::Target(previous)) }
        {
            Ok(report) => rewritten += report.rewritten,
            Err(err) => crate::debug!(Reloc, "{err}; its {name} answers are not corrected"),
        }
    }
    crate::debug!(
        Reloc,
        "shim {soname}: {rewritten} {name} slot(s) now correct answers for {soname}"
    );
}

/// What the program's bound `name` slots hold: glibc's function, or the entry point of a
/// shim that wrapped it first. Slots still pointing into their own object's PLT are lazily
/// bound and say nothing.
fn previous_binding(objects: &[Object<'_>], name: &CStr) -> Option<usize> {
    let text = name.to_str().ok()?;
    for object in objects {
        for slot in object.slots(text, None).unwrap_or_default() {
            let Ok(value) = patch::read_slot(object, slot.address) else {
                continue;
            };
            let in_own_code = object.flags_at(value).is_some_and(|f| f.execute);
            if value != 0 && !in_own_code {
                return Some(value);
            }
        }
    }
    // SAFETY: the name is NUL-terminated; RTLD_DEFAULT searches the global scope.
    let global = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!global.is_null()).then_some(global as usize)
}

extern "C" fn dlsym_fixed(handle: *mut c_void, name: *const c_char) -> *mut c_void {
    // SAFETY: NEXT_DLSYM was set to glibc's dlsym (or a wrapper with its signature) before
    // any slot pointed here.
    let next: DlsymFn = unsafe { std::mem::transmute(NEXT_DLSYM.load(Ordering::Acquire)) };
    // SAFETY: the arguments are the caller's, passed on unchanged.
    let found = unsafe { next(handle, name) };
    correct(handle, name, None, found)
}

extern "C" fn dlvsym_fixed(
    handle: *mut c_void,
    name: *const c_char,
    version: *const c_char,
) -> *mut c_void {
    // SAFETY: as in dlsym_fixed.
    let next: DlvsymFn = unsafe { std::mem::transmute(NEXT_DLVSYM.load(Ordering::Acquire)) };
    // SAFETY: the arguments are the caller's, passed on unchanged.
    let found = unsafe { next(handle, name, version) };
    correct(handle, name, Some(version), found)
}

/// The answer the real library would have given, from glibc's answer `found`.
fn correct(
    handle: *mut c_void,
    name: *const c_char,
    version: Option<*const c_char>,
    found: *mut c_void,
) -> *mut c_void {
    let Some(state) = STATE.get() else {
        return found;
    };
    if name.is_null() || version.is_some_and(|v| v.is_null()) {
        return found;
    }
    // SAFETY: dlsym's contract: `name` (and `version`) are NUL-terminated strings.
    let (name, version) = unsafe { (CStr::from_ptr(name), version.map(|v| CStr::from_ptr(v))) };
    match state.trampolines.get(&(found as usize)) {
        Some(Some(real)) => return *real as *mut c_void,
        Some(None) => {
            // Asking the capsule fails as the real library fails, which sets dlerror.
            let _ = in_capsule(state.capsule, name, version);
            return std::ptr::null_mut();
        }
        None => {}
    }
    let ours = handle.is_null() || handle as *const LinkMap == state.own_handle;
    if found.is_null() && ours {
        if let Some(addr) = in_capsule(state.capsule, name, version) {
            // glibc's failed lookup left an error pending; the answer is not a failure.
            // SAFETY: dlerror has no preconditions; it clears this thread's error.
            unsafe { libc::dlerror() };
            crate::debug!(
                Dlopen,
                "shim {}: dlsym {name:?} answered from the capsule",
                state.lib.soname()
            );
            return addr;
        }
    }
    found
}

fn in_capsule(capsule: &Capsule, name: &CStr, version: Option<&CStr>) -> Option<*mut c_void> {
    let name = name.to_str().ok()?;
    let found = match version {
        Some(v) => capsule.symbol_versioned(name, v.to_str().ok()?),
        None => capsule.symbol(name),
    };
    found.ok().map(|p| p.as_ptr())
}
