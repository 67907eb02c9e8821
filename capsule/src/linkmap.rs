//! Walking glibc's link maps: the object that holds an address, and every object of a
//! namespace. (glibc's `dlopen` handle of an object is its link map, which the runtime
//! relies on where noted.)

use std::ffi::c_void;

use crate::elf::LinkMap;

/// `RTLD_DL_LINKMAP` from `<dlfcn.h>` (the libc crate lacks it).
const RTLD_DL_LINKMAP: libc::c_int = 2;

/// glibc's `struct dl_find_object` (`<dlfcn.h>`, glibc >= 2.35).
#[repr(C)]
struct DlFindObject {
    flags: u64,
    map_start: *mut c_void,
    map_end: *mut c_void,
    link_map: *mut c_void,
    eh_frame: *mut c_void,
    reserved: [u64; 7],
}

type FindObject = unsafe extern "C" fn(*mut c_void, *mut DlFindObject) -> libc::c_int;

/// `_dl_find_object`, where the running glibc has it (2.35 and later): looked up, not
/// linked, so that the runtime still loads on an older glibc.
fn find_object_function() -> Option<FindObject> {
    static FOUND: std::sync::OnceLock<Option<FindObject>> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        // SAFETY: a NUL-terminated name; RTLD_DEFAULT searches the program's scope.
        let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_dl_find_object".as_ptr()) };
        // SAFETY: glibc's `_dl_find_object` has exactly this signature.
        (!f.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, FindObject>(f) })
    })
}

/// glibc >= 2.35's `struct r_debug_extended`: one per namespace, chained by `r_next`.
#[repr(C)]
pub(crate) struct RDebugExtended {
    pub r_version: libc::c_int,
    pub r_map: *const LinkMap,
    r_brk: usize,
    r_state: libc::c_int,
    r_ldbase: usize,
    pub r_next: *const RDebugExtended,
}

extern "C" {
    /// ld.so's debugger interface (`<link.h>`), one per namespace since glibc 2.35.
    static _r_debug: RDebugExtended;
}

/// ld.so's debugger interface: the base namespace's entry, heading the chain.
pub(crate) fn r_debug() -> *const RDebugExtended {
    std::ptr::addr_of!(_r_debug)
}

/// The first link map of the program's namespace (the executable).
pub(crate) fn base_namespace_head() -> *const LinkMap {
    // SAFETY: `_r_debug` lives as long as the process; ld.so sets r_map before any code
    // of the program runs.
    unsafe { (*r_debug()).r_map }
}

/// The link map of the loaded object that contains `addr` (any namespace).
pub(crate) fn containing(addr: *const c_void) -> Option<*const LinkMap> {
    // `_dl_find_object` answers from a lock-free sorted table; dladdr1 takes the loader's
    // lock and searches the object's symbol table for the nearest symbol, which costs
    // microseconds on a library like libc.
    if let Some(find) = find_object_function() {
        let mut found = std::mem::MaybeUninit::<DlFindObject>::zeroed();
        // SAFETY: `_dl_find_object` reads `addr` as a plain value and fills `found`.
        if unsafe { find(addr.cast_mut(), found.as_mut_ptr()) } == 0 {
            // SAFETY: filled by the successful call above.
            let map = unsafe { found.assume_init() }.link_map;
            if !map.is_null() {
                return Some(map as *const LinkMap);
            }
        }
    }
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    let mut map: *mut c_void = std::ptr::null_mut();
    // SAFETY: dladdr1 with RTLD_DL_LINKMAP writes a Dl_info and one link_map pointer, both
    // of which point to storage that lives across the call; any address is accepted.
    let found = unsafe {
        libc::dladdr1(
            addr,
            info.as_mut_ptr(),
            &mut map as *mut *mut c_void,
            RTLD_DL_LINKMAP,
        )
    };
    (found != 0 && !map.is_null()).then_some(map as *const LinkMap)
}

/// Every object of the namespace `map` belongs to, in link-map order, as `read` sees each
/// one. The walk runs while glibc's loader holds the lock that `dlclose` needs to unlink an
/// object (the one `dl_iterate_phdr` holds for its callbacks), so no object of the list is
/// unlinked, nor its link map freed, until `read` has seen it.
///
/// # Safety
/// `map` must be a live link map; `read` must not keep the link-map pointers it is given.
pub(crate) unsafe fn namespace_of<T>(
    map: *const LinkMap,
    read: impl Fn(*const LinkMap) -> T,
) -> Vec<T> {
    locked(|| {
        let mut head = map;
        // SAFETY: l_prev/l_next of a live namespace are valid links, NULL at both ends, and
        // the list cannot change while the loader's list lock is held.
        unsafe {
            while !(*head).l_prev.is_null() {
                head = (*head).l_prev;
            }
        }
        let mut all = Vec::new();
        let mut at = head;
        while !at.is_null() {
            all.push(read(at));
            // SAFETY: as above.
            at = unsafe { (*at).l_next };
        }
        all
    })
}

/// Run `f` while glibc holds its loader's list lock (`dl_load_write_lock`, recursive), by
/// running it from a `dl_iterate_phdr` callback (for the first object).
fn locked<F: FnOnce() -> R, R>(f: F) -> R {
    let mut f = Some(f);
    if let Some(out) = crate::iterate_phdr::first(|_| f.take().map(|f| f())) {
        return out;
    }
    match f {
        // dl_iterate_phdr always reports the main program; never reached in practice.
        Some(f) => f(),
        None => unreachable!("the callback either ran `f` or left it"),
    }
}
