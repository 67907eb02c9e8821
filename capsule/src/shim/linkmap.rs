//! Finding the link maps a shim works on: its own (in the program's namespace), every
//! object of a namespace, and the real library's inside the capsule.

use std::sync::Arc;

use crate::capsule::Capsule;
use crate::elf::{LinkMap, Object};

/// A view of an object a shim patches, shared with the scopes that made or use it.
pub(super) type View = Arc<Object<'static>>;

pub(super) use crate::linkmap::{containing, namespace_of};

/// The link map of the capsule's library, in the capsule's namespace.
pub(super) fn of_capsule(capsule: &Capsule) -> Option<*const LinkMap> {
    Some(capsule.link_map())
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
pub(super) unsafe fn patchable_objects(map: *const LinkMap, skip: *const LinkMap) -> Vec<View> {
    // SAFETY: forwarded from this function's contract.
    let maps: Vec<*const LinkMap> = unsafe { namespace_of(map, |m| m) }
        .into_iter()
        .filter(|&m| m != skip)
        .collect();
    // SAFETY: live link maps of the namespace (see above).
    unsafe { crate::sharing::views_of(&maps) }
        .into_iter()
        .filter_map(|view| match view {
            Ok(object) => Some(object),
            Err(err) => {
                crate::debug!(Reloc, "not patching an object: {err}");
                None
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
