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

use super::{linkmap, lookup, Library, Symbol};
use crate::capsule::Capsule;
use crate::elf::{LinkMap, Object};
use crate::patch::{self, Expect};

/// Copy each variable of `lib` into the program and point the capsule's references to it
/// there.
pub(super) fn share_variables(lib: &Library, capsule: &Capsule) {
    let objects: Vec<_> = lib.objects().collect();
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
    for sym in &objects {
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
    if let Err(reason) = copy_into_program(sym, real, visible) {
        eprintln!(
            "capsule: {}: cannot copy variable {} into the program: {reason}",
            lib.soname(),
            sym.display_name()
        );
    }
}

/// Copy the real variable over the program's copy, which may lie in the program's RELRO
/// (copy relocations of `const` variables land there, read-only by the time constructors
/// run): through `patch`, which restores each page's protection.
fn copy_into_program(sym: &Symbol, real: *mut c_void, visible: *mut c_void) -> Result<(), String> {
    let map = linkmap::containing(visible.cast_const())
        .ok_or("no loaded object contains the program's copy")?;
    // SAFETY: `map` is the live link map of the object holding the program's copy (the
    // program, or the shim itself), loaded as long as the program runs.
    let object = unsafe { Object::from_link_map(map) }.map_err(|e| e.to_string())?;
    // SAFETY: `real` is the start of the real library's object, `size` bytes long (the shim
    // was generated with the real object's size), readable for the life of the capsule.
    let bytes = unsafe { std::slice::from_raw_parts(real.cast::<u8>(), sym.size) };
    // SAFETY: the program's copy has the same size (its copy relocation has the shim's);
    // constructors run before the program reads it, and the two objects do not overlap.
    unsafe { patch::write_data(&object, &sym.display_name(), visible as usize, bytes) }
        .map_err(|e| e.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Protection letters ("r--p") of the mapping of /proc/self/maps holding `addr`.
    fn protection(addr: usize) -> String {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .find_map(|l| {
                let mut fields = l.split_whitespace();
                let (range, perms) = (fields.next()?, fields.next()?);
                let (start, end) = range.split_once('-')?;
                let range =
                    usize::from_str_radix(start, 16).ok()?..usize::from_str_radix(end, 16).ok()?;
                range.contains(&addr).then(|| perms.to_string())
            })
            .unwrap()
    }

    #[test]
    fn a_copy_into_relro_lands_and_leaves_it_read_only() {
        // A pointer needs a relocation, so in this PIE it sits in RELRO, as a program's
        // copy-relocated `const` variable does.
        static POINTER: &u64 = &7;
        static EIGHT: u64 = 8;
        let sym = Symbol {
            name: c"pointer",
            version: None,
            default: true,
            kind: super::super::Kind::Object,
            size: 8,
        };
        let at = (&raw const POINTER).cast_mut().cast::<c_void>();
        let from: *const u64 = &EIGHT;
        assert_eq!(protection(at as usize), "r--p", "POINTER is not in RELRO");
        copy_into_program(&sym, (&raw const from).cast_mut().cast(), at).unwrap();
        // SAFETY: POINTER now holds EIGHT's address; read through memory, not the static.
        assert_eq!(unsafe { **at.cast::<*const u64>() }, 8);
        assert_eq!(protection(at as usize), "r--p");
    }
}
