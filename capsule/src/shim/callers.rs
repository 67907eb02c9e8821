//! Pointing the program's call slots straight at the real functions.
//!
//! Once the slot table is filled, every JUMP_SLOT/GLOB_DAT/R_X86_64_64 slot in the
//! program's namespace that resolved to one of the shim's trampolines is rewritten to the
//! function the trampoline forwards to, so those calls cost what a direct call through the
//! GOT costs. A slot that holds anything else (bound to another library, or already
//! rewritten) is left alone; a lazily bound slot still points at its PLT and is rewritten
//! too. Objects loaded into the program later bind to the trampolines as usual: correct,
//! one jump slower.
//!
//! Versions: a slot that imports `foo@V1` gets `foo@V1`'s target. A slot that imports `foo`
//! without a version (a program linked against an unversioned build) keeps the trampoline.

use std::collections::{HashMap, HashSet};

use super::{Library, Symbol};
use crate::elf::Object;
use crate::patch::{self, Expect};

/// Where one of the shim's functions leads.
#[derive(Clone, Copy, Debug)]
pub(super) struct Target {
    /// The shim's exported address for this (name, version): its trampoline.
    pub trampoline: usize,
    /// The host library's function, or `None` when the host's library lacks it.
    pub real: Option<usize>,
}

/// Whether the program's global scope binds `sym` to the shim's `trampoline` (or not at
/// all, for a shim opened `RTLD_LOCAL`). When something earlier in the scope defines the
/// same name, lazily bound slots may belong to it: leave them alone. Asked only for names
/// the program imports (a `dlsym` each: a shim has thousands of names).
fn redirectable(sym: &Symbol, trampoline: usize) -> bool {
    trampoline != 0 && super::program_visible(sym).is_none_or(|b| b as usize == trampoline)
}

/// Rewrite the slots of `objects` that call `lib`'s functions (`targets[i]` for function
/// `i`) to the real functions.
pub(super) fn redirect_callers(lib: &Library, targets: &[Target], objects: &[Object<'_>]) {
    let functions = lib.functions();
    let mut by_name: HashMap<&[u8], Vec<usize>> = HashMap::new();
    for (i, sym) in functions.iter().enumerate() {
        by_name.entry(sym.name.to_bytes()).or_default().push(i);
    }
    for object in objects {
        let mut rewritten = 0;
        for name in imported_names(object, &by_name) {
            let Ok(text) = std::str::from_utf8(name) else {
                continue;
            };
            for &i in &by_name[name] {
                rewritten += redirect_one(object, &functions[i], text, targets[i]);
            }
        }
        if rewritten > 0 {
            crate::debug!(
                Reloc,
                "shim {}: {}: {rewritten} slot(s) now call the host's functions directly",
                lib.soname(),
                object.name()
            );
        }
    }
}

/// The names `object` imports that are also names of shim functions.
fn imported_names<'n>(
    object: &Object<'_>,
    by_name: &HashMap<&'n [u8], Vec<usize>>,
) -> HashSet<&'n [u8]> {
    object
        .imported_names()
        .filter_map(|name| by_name.get_key_value(name).map(|(&key, _)| key))
        .collect()
}

/// Rewrite `object`'s slots for one (name, version); returns how many now hold the target.
fn redirect_one(object: &Object<'_>, sym: &Symbol, name: &str, target: Target) -> usize {
    let Some(real) = target.real else {
        return 0;
    };
    if !redirectable(sym, target.trampoline) {
        return 0;
    }
    let version = sym.version.and_then(|v| v.to_str().ok());
    // SAFETY: `object` is live (the shim never unloads what it patches) and `real` is the
    // function the trampoline forwards to, so every caller of the slot reaches the same
    // code with the same arguments; the capsule is never unloaded, so it outlives them.
    match unsafe {
        patch::rewrite_symbol(
            object,
            name,
            version,
            real,
            Expect::Target(target.trampoline),
        )
    } {
        Ok(report) => report.rewritten,
        Err(err) => {
            crate::debug!(
                Reloc,
                "{err}; its callers keep going through the trampoline"
            );
            0
        }
    }
}
