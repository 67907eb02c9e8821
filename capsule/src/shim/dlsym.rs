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

use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::RwLock;

use super::linkmap::View;
use super::table::Table;
use crate::capsule::Capsule;
use crate::elf::{LinkMap, Slot};
use crate::patch::{self, Expect, SymbolRewrite};

/// What the corrections need for one shim (its own, or one whose copy of the runtime had
/// this one wire it up).
pub(super) struct State {
    capsule: &'static Capsule,
    own_handle: *const LinkMap,
    /// Tells a trampoline from another answer, and where it leads.
    table: Table<'static>,
}

// SAFETY: `own_handle` is only compared, never dereferenced; the table only reads the
// shim's own symbol table and slots, which stay mapped (the shim is pinned) and which
// nothing writes after the constructor.
unsafe impl Sync for State {}
// SAFETY: as above.
unsafe impl Send for State {}

impl State {
    pub fn new(
        capsule: &'static Capsule,
        own_handle: *const LinkMap,
        table: Table<'static>,
    ) -> State {
        State {
            capsule,
            own_handle,
            table,
        }
    }
}

/// The shims this copy corrects answers for, in the order they were wired up (the order
/// chained wrappers of several copies would correct in).
static STATES: RwLock<Vec<&'static State>> = RwLock::new(Vec::new());

/// What each slot held before it was pointed at the entry points; read by their assembly.
static NEXT_DLSYM: AtomicUsize = AtomicUsize::new(0);
static NEXT_DLVSYM: AtomicUsize = AtomicUsize::new(0);

type DlsymFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void;
type DlvsymFn = unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> *mut c_void;

// RTLD_NEXT is `(void *) -1`. For it the entries jump to the previous function with the
// caller's return address still on the stack; anything else goes to the Rust wrappers.
crate::arch::native::dl_entries!(dlsym_fixed, dlvsym_fixed, NEXT_DLSYM, NEXT_DLVSYM);

extern "C" {
    fn __capsule_dlsym_entry();
    fn __capsule_dlvsym_entry();
}

/// Record `state` and point the `dlsym`/`dlvsym` slots of `objects` at the entry points.
pub(super) fn install(state: State, objects: &[View]) {
    let soname = state.table.lib.soname();
    {
        let mut states = STATES.write();
        states.push(Box::leak(Box::new(state)));
        if states.len() > 1 {
            // The entry points are in place: they correct for this shim too from now on.
            return;
        }
    }
    let names = [c"dlsym", c"dlvsym"];
    let wanted = names.map(|name| (name.to_str().unwrap_or_default(), None));
    let entries = [
        (__capsule_dlsym_entry as *const () as usize, &NEXT_DLSYM),
        (__capsule_dlvsym_entry as *const () as usize, &NEXT_DLVSYM),
    ];
    // One pass over each object's relocations finds both names' slots.
    let slots: Vec<Vec<(usize, Slot)>> = objects
        .iter()
        .map(|o| o.slots_matching(&wanted).unwrap_or_default())
        .collect();
    let mut rewrites: Vec<SymbolRewrite<'_>> = Vec::new();
    // Which rewrite each name got (a name nothing was bound to gets none).
    let mut rewrite_of = [None; 2];
    for (i, (entry, next)) in entries.into_iter().enumerate() {
        let Some(previous) = previous_binding(objects, &slots, i, names[i]) else {
            continue;
        };
        next.store(previous, Ordering::Release);
        rewrite_of[i] = Some(rewrites.len());
        rewrites.push(SymbolRewrite {
            symbol: wanted[i].0,
            version: None,
            replacement: entry,
            expect: Expect::Target(previous),
        });
    }
    if rewrites.is_empty() {
        return;
    }
    let mut rewritten = 0;
    for (object, slots) in objects.iter().zip(&slots) {
        let found: Vec<(usize, Slot)> = slots
            .iter()
            .filter_map(|&(name, slot)| Some((rewrite_of.get(name).copied().flatten()?, slot)))
            .collect();
        if found.is_empty() {
            continue;
        }
        // SAFETY: each entry takes the same arguments as dlsym/dlvsym and ends in the
        // previous function, which `next` holds before any slot points at the entry; the
        // shim (and so the entry) is never unloaded once it patched the program. The
        // slots are the object's own, found above for the rewrite's name.
        match unsafe { patch::rewrite_found(object, &found, &rewrites) } {
            Ok(report) => rewritten += report.rewritten,
            Err(err) => crate::debug!(Reloc, "{err}; its dlsym answers are not corrected"),
        }
    }
    crate::debug!(
        Reloc,
        "shim {soname}: {rewritten} dlsym/dlvsym slot(s) now correct answers for {soname}"
    );
}

/// What the program's bound slots for `name` (`slots[object]` entries tagged `which`)
/// hold: glibc's function, or the entry point of a shim that wrapped it first. Slots still
/// pointing into their own object's PLT are lazily bound and say nothing.
fn previous_binding(
    objects: &[View],
    slots: &[Vec<(usize, Slot)>],
    which: usize,
    name: &CStr,
) -> Option<usize> {
    for (object, slots) in objects.iter().zip(slots) {
        for (_, slot) in slots.iter().filter(|(w, _)| *w == which) {
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
    if name.is_null() || version.is_some_and(|v| v.is_null()) {
        return found;
    }
    // SAFETY: dlsym's contract: `name` (and `version`) are NUL-terminated strings.
    let (name, version) = unsafe { (CStr::from_ptr(name), version.map(|v| CStr::from_ptr(v))) };
    STATES.read().iter().fold(found, |found, state| {
        correct_for(state, handle, name, version, found)
    })
}

/// [`correct`] for one shim.
fn correct_for(
    state: &State,
    handle: *mut c_void,
    name: &CStr,
    version: Option<&CStr>,
    found: *mut c_void,
) -> *mut c_void {
    if !found.is_null() {
        if let Some(target) = state.table.trampoline_at(name.to_bytes(), found as usize) {
            if let Some(real) = target.real {
                return real as *mut c_void;
            }
            // Asking the capsule fails as the real library fails, which sets dlerror.
            let _ = in_capsule(state.capsule, name, version);
            return std::ptr::null_mut();
        }
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
                state.table.lib.soname()
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
