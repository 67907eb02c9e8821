//! Finding the link maps a shim works on: its own (in the program's namespace), every
//! object of a namespace, and the real library's inside the capsule.

use std::ffi::{c_void, CString};
use std::os::unix::ffi::OsStrExt;

use crate::capsule::Capsule;
use crate::elf::{LinkMap, Object};

/// `RTLD_DL_LINKMAP` from `<dlfcn.h>` (the libc crate lacks it).
const RTLD_DL_LINKMAP: libc::c_int = 2;

/// The link map of the loaded object that contains `addr`.
pub(super) fn containing(addr: *const c_void) -> Option<*const LinkMap> {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    let mut map: *mut c_void = std::ptr::null_mut();
    // SAFETY: dladdr1 with RTLD_DL_LINKMAP writes a Dl_info and one link_map pointer, both
    // of which point to storage that lives across the call.
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
/// `map` must be a live link map. The list is read without glibc's loader lock: call this
/// where no other thread loads or unloads objects (a constructor), or accept that an object
/// loaded meanwhile is missed.
pub(super) unsafe fn namespace_of(map: *const LinkMap) -> Vec<*const LinkMap> {
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

/// The link map of the capsule's library, in the capsule's namespace. glibc's handles do
/// not say where an object sits in its list, so it is opened again by path with
/// `RTLD_NOLOAD` (which only takes a reference; the capsule is never unloaded anyway).
pub(super) fn of_capsule(capsule: &Capsule) -> Option<*const LinkMap> {
    let path = CString::new(capsule.path().as_os_str().as_bytes()).ok()?;
    // SAFETY: the path is NUL-terminated; RTLD_NOLOAD never loads anything new.
    let handle = unsafe {
        libc::dlmopen(
            capsule.namespace_id(),
            path.as_ptr(),
            libc::RTLD_LAZY | libc::RTLD_NOLOAD,
        )
    };
    if handle.is_null() {
        return None;
    }
    let mut map: *const LinkMap = std::ptr::null();
    // SAFETY: RTLD_DI_LINKMAP writes one pointer into `map`; the handle is live.
    let rc = unsafe {
        libc::dlinfo(
            handle,
            libc::RTLD_DI_LINKMAP,
            &mut map as *mut *const LinkMap as *mut c_void,
        )
    };
    (rc == 0 && !map.is_null()).then_some(map)
}

/// Objects whose relocation slots a shim must never touch: glibc's own (they neither
/// import a shim's symbols nor may be redirected) and the vDSO.
pub(super) fn is_system(object: &Object<'_>) -> bool {
    let soname = object.soname().ok().flatten().unwrap_or("");
    soname.starts_with("libc.so")
        || soname.starts_with("ld-linux")
        || soname.starts_with("linux-vdso")
        || object.name().starts_with("linux-vdso")
}

/// Views of every object in `map`'s namespace except `skip` and glibc's own, paired with
/// their link maps. Objects that cannot be read are left out, with a `reloc` debug line.
///
/// # Safety
/// As for [`namespace_of`]; the views must not outlive the objects (shims never unload
/// what they patch, and run this from their constructor).
pub(super) unsafe fn patchable_objects(
    map: *const LinkMap,
    skip: *const LinkMap,
) -> Vec<Object<'static>> {
    // SAFETY: forwarded from this function's contract.
    let maps = unsafe { namespace_of(map) };
    maps.into_iter()
        .filter(|&m| m != skip)
        .filter_map(|m| {
            // SAFETY: `m` is a live link map of the namespace (see above).
            match unsafe { Object::from_link_map(m) } {
                Ok(object) => Some(object),
                Err(err) => {
                    crate::debug!(Reloc, "not patching an object: {err}");
                    None
                }
            }
        })
        .filter(|object| !is_system(object))
        .collect()
}

/// Keep the object of `map` loaded for the rest of the process: once the program's slots
/// point into it, a `dlclose` that unmapped it would leave them dangling.
pub(super) fn pin(map: *const LinkMap) -> bool {
    // SAFETY: `map` is a live link map; l_name is NUL-terminated.
    let name = unsafe { (*map).l_name };
    if name.is_null() {
        return false;
    }
    // SAFETY: RTLD_NOLOAD only finds the already loaded object and, with RTLD_NODELETE,
    // marks it never to be unloaded; the reference it takes is never dropped on purpose.
    let handle = unsafe {
        libc::dlopen(
            name,
            libc::RTLD_LAZY | libc::RTLD_NOLOAD | libc::RTLD_NODELETE,
        )
    };
    !handle.is_null()
}
