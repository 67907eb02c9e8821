//! Walking glibc's link maps: the object that holds an address, and every object of a
//! namespace. (glibc's `dlopen` handle of an object is its link map, which the runtime
//! relies on where noted.)

use std::ffi::c_void;

use crate::elf::LinkMap;

/// `RTLD_DL_LINKMAP` from `<dlfcn.h>` (the libc crate lacks it).
const RTLD_DL_LINKMAP: libc::c_int = 2;

/// The link map of the loaded object that contains `addr` (any namespace).
pub(crate) fn containing(addr: *const c_void) -> Option<*const LinkMap> {
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

/// Every object of the namespace `map` belongs to, in link-map order.
///
/// # Safety
/// `map` must be a live link map. The list is read without glibc's loader lock, as every
/// link-map walker (gdb's too) reads it: an object loaded meanwhile may be missed, and
/// one unloaded meanwhile must not be used by the caller.
pub(crate) unsafe fn namespace_of(map: *const LinkMap) -> Vec<*const LinkMap> {
    let mut head = map;
    // SAFETY: l_prev/l_next of a live namespace are valid links, NULL at both ends.
    unsafe {
        while !(*head).l_prev.is_null() {
            head = (*head).l_prev;
        }
    }
    let mut all = Vec::new();
    let mut at = head;
    while !at.is_null() {
        all.push(at);
        // SAFETY: as above.
        at = unsafe { (*at).l_next };
    }
    all
}
