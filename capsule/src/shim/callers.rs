//! Pointing the program's call slots straight at the real functions.
//!
//! Once the slot table is filled, every JUMP_SLOT/GLOB_DAT/R_X86_64_64 slot in the
//! program's namespace that resolved to one of the shim's trampolines is rewritten to the
//! function the trampoline forwards to, so those calls cost what a direct call through the
//! GOT costs. A slot that holds anything else (bound to another library, or already
//! rewritten) is left alone; a lazily bound slot still points at its PLT and is rewritten
//! too. Objects loaded into the program later, and objects that do not list the library in
//! their DT_NEEDED, bind to the trampolines as usual: correct, one jump slower.
//!
//! Versions: a slot that imports `foo@V1` gets `foo@V1`'s target. A slot that imports `foo`
//! without a version (a program linked against an unversioned build) keeps the trampoline.

use super::linkmap::View;
use super::table::{Table, Target};
use super::Symbol;
use crate::elf::SymbolVersion;
use crate::patch::{self, Expect, SymbolRewrite};
use crate::sharing::Scope;

/// Whether the program's global scope binds `sym` to the shim's `trampoline` (or not at
/// all, for a shim opened `RTLD_LOCAL`): no object before the shim defines the name in a
/// way a reference to `sym` could bind to. When one does, lazily bound slots may belong to
/// it: leave them alone. Asked of the objects' hash tables, which reject most names with
/// their Bloom filter (a `dlsym` each cost ~4 µs).
fn redirectable(sym: &Symbol, trampoline: usize, earlier: &Scope<'_>) -> bool {
    if trampoline == 0 {
        return false;
    }
    if earlier.len() == 0 {
        // Not in the program's namespace (the executable comes before any shim there):
        // ask the scope the shim's callers see.
        return super::program_visible(sym).is_none_or(|b| b as usize == trampoline);
    }
    let Some((name, version)) = sym.texts() else {
        return false;
    };
    (0..earlier.len()).all(|i| {
        earlier.object(i).is_some_and(|object| {
            // An unversioned definition (or the default) also binds a versioned reference
            // where the object has no version table: count it, to err on the safe side.
            matches!(object.lookup(name, version), Ok(None))
                && (version.is_none() || matches!(object.lookup(name, None), Ok(None)))
        })
    })
}

/// Rewrite the slots of `objects` that call the shim's functions to the real functions:
/// one batch per object, for the symbols it imports, whose slots are found by symbol index
/// in one pass over its relocations.
pub(super) fn redirect_callers(table: &Table<'_>, objects: &[View], earlier: &Scope<'_>) {
    let soname = table.lib.soname();
    for object in objects {
        // Only objects linked against the library call it through their own slots; one
        // that reaches its names through another's DT_NEEDED keeps the trampolines
        // (correct, one jump slower), and the others' import tables are not read.
        if !object.needed().is_ok_and(|needed| needed.contains(&soname)) {
            continue;
        }
        let mut rewrites = Vec::new();
        // (import's symbol index, its rewrite), in index order.
        let mut symbols = Vec::new();
        for (index, name) in object.imports() {
            let functions = table.indices(name);
            if functions.is_empty() {
                continue;
            }
            let required = match object.symbol_version(index) {
                Ok(SymbolVersion::Required { name, .. } | SymbolVersion::Defined { name, .. }) => {
                    Some(name)
                }
                Ok(SymbolVersion::Unversioned) => None,
                Err(_) => continue,
            };
            // The first function the import binds to: one of its version, or one without.
            let rewrite = functions
                .filter_map(|i| Some((i, table.lib.function(i)?)))
                .find_map(|(i, sym)| {
                    let version = sym.texts()?.1;
                    if version.is_some() && version != required {
                        return None;
                    }
                    rewrite_for(&sym, table.target(i), earlier)
                });
            if let Some(rewrite) = rewrite {
                symbols.push((index, rewrites.len()));
                rewrites.push(rewrite);
            }
        }
        if rewrites.is_empty() {
            continue;
        }
        // SAFETY: `object` is live (the shim never unloads what it patches) and each
        // replacement is the function the trampoline forwards to, so every caller of the
        // slot reaches the same code with the same arguments; the capsule is never
        // unloaded, so it outlives them. The slots are the object's own, found for the
        // symbol of their rewrite.
        let rewrite = |found: Vec<_>| unsafe { patch::rewrite_found(object, &found, &rewrites) };
        let report = object.slots_of_symbols(&symbols).and_then(rewrite);
        match report {
            Ok(report) if report.rewritten > 0 => crate::debug!(
                Reloc,
                "shim {}: {}: {} slot(s) now call the host's functions directly",
                table.lib.soname(),
                object.name(),
                report.rewritten
            ),
            Ok(_) => {}
            Err(err) => crate::debug!(
                Reloc,
                "{err}; its callers keep going through the trampoline"
            ),
        }
    }
}

/// The rewrite of the slots that import `sym`, if they may go straight to its function.
fn rewrite_for(
    sym: &Symbol,
    target: Target,
    earlier: &Scope<'_>,
) -> Option<SymbolRewrite<'static>> {
    let real = target.real?;
    if !redirectable(sym, target.trampoline, earlier) {
        return None;
    }
    let (symbol, version) = sym.texts()?;
    Some(SymbolRewrite {
        symbol,
        version,
        replacement: real,
        expect: Expect::Target(target.trampoline),
    })
}
