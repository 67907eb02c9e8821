//! Making the program and the real library see one copy of each exported variable.
//!
//! The program's references to a library variable are usually copy relocations: the
//! variable lives in the program, initialised from the shim's placeholder. So the real
//! variable's current bytes are copied there, and then every GLOB_DAT/R_X86_64_64 slot for
//! it in the capsule's namespace (the real library's own references included) is pointed
//! at the program's copy.
//!
//! Limit: a library built with `-Bsymbolic`, or whose variable has protected visibility,
//! reaches its own variable PC-relatively, with no slot to rewrite; it then keeps writing
//! its own copy, and the program sees the value of the moment the shim loaded.

use std::ffi::c_void;

use super::{linkmap, lookup, write_maybe_relro, Library, Symbol};
use crate::capsule::Capsule;
use crate::elf::LinkMap;
use crate::patch::{self, Expect};

/// Copy each variable of `lib` into the program and point the capsule's references to it
/// there.
pub(super) fn share_variables(lib: &Library, capsule: &Capsule) {
    let objects = lib.objects();
    if objects.is_empty() {
        return;
    }
    let capsule_map = linkmap::of_capsule(capsule);
    if capsule_map.is_none() {
        eprintln!(
            "capsule: {}: cannot find {} in its namespace; its variables are copied, not shared",
            lib.soname(),
            capsule.path().display()
        );
    }
    for sym in objects {
        let Some(real) = lookup(capsule, sym) else {
            eprintln!(
                "capsule: {}: variable {} is not defined by the host's {} ({}); the program sees zeros in its place",
                lib.soname(),
                sym.display_name(),
                lib.soname(),
                capsule.path().display()
            );
            continue;
        };
        let Some(visible) = super::program_visible(sym) else {
            continue;
        };
        if visible == real || sym.size == 0 {
            continue;
        }
        copy_variable(lib, sym, real, visible);
        if let Some(map) = capsule_map {
            redirect_references(lib, sym, map, real as usize, visible as usize);
        }
    }
}

fn copy_variable(lib: &Library, sym: &Symbol, real: *mut c_void, visible: *mut c_void) {
    // SAFETY: `real` is the start of the real library's object and `visible` the start of
    // the program's (or the shim's own) copy; both are `size` bytes (the shim was generated
    // with the real object's size, and the program's copy relocation has the shim's size).
    // They live in different objects, so they do not overlap.
    let copied = unsafe { write_maybe_relro(visible.cast(), real.cast::<u8>(), sym.size) };
    if let Err(reason) = copied {
        eprintln!(
            "capsule: {}: cannot copy variable {} into the program: {reason}",
            lib.soname(),
            sym.display_name()
        );
    }
}

/// Point every slot in the capsule's namespace that refers to the real variable at the
/// program's copy.
fn redirect_references(
    lib: &Library,
    sym: &Symbol,
    capsule_map: *const LinkMap,
    real: usize,
    visible: usize,
) {
    let (Ok(name), version) = (sym.name.to_str(), sym.version.map(|v| v.to_str())) else {
        return;
    };
    let version = match version {
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => return,
        None => None,
    };
    // SAFETY: called from the shim's constructor; the capsule's objects are never unloaded.
    let objects = unsafe { linkmap::patchable_objects(capsule_map, std::ptr::null()) };
    let mut rewritten = 0;
    for object in &objects {
        // SAFETY: the program's copy has the real object's size and type and lives as long
        // as the program; only slots that still point at the real variable are rewritten.
        match unsafe { patch::rewrite_symbol(object, name, version, visible, Expect::Target(real)) }
        {
            Ok(report) => rewritten += report.rewritten,
            Err(err) => eprintln!(
                "capsule: {}: variable {}: {err}; the host library keeps its own copy",
                lib.soname(),
                sym.display_name()
            ),
        }
    }
    crate::debug!(
        Reloc,
        "shim {}: variable {}: {rewritten} slot(s) in the capsule now use the program's copy",
        lib.soname(),
        sym.display_name()
    );
}
