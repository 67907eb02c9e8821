//! Which symbols of a shared library's program copy the program's global scope takes
//! from an object before the copy (the executable's copy-relocated data, its own `malloc`,
//! an `LD_PRELOAD`): the forwarder makes those absolute, with that object's address.

use crate::elf::{Object, SymbolKind};
use crate::error::Result;
use crate::sharing::Scope;

/// The symbols of the program's copy that an earlier object of the program's global scope
/// defines, as ld.so's lookup there would find them: (index, address, is a function
/// resolved from an IFUNC).
///
/// For each earlier object, the smaller of the two symbol lists is walked and its hashes
/// probed in the other's hash table, which rejects most of them by its Bloom filter alone
/// (no name read): libc's forwarder walks the executable's few names, the copy's against a
/// shim's thousands; a late `libxcb-*` forwarder walks its own few against each object.
pub(super) fn interposed(
    program: &Object<'_>,
    scope: &Scope<'_>,
) -> Result<Vec<(u32, usize, bool)>> {
    // The copy's list, made only if some earlier object has more symbols than the copy.
    let own = std::cell::OnceCell::new();
    let own_len = program.symbol_count() as usize;
    let own_table = program.gnu_table();
    let mut found: Vec<(u32, usize, bool)> = Vec::new();
    let known = |found: &[(u32, usize, bool)], target: u32| found.iter().any(|f| f.0 == target);
    for i in 0..scope.len() {
        let Some(object) = scope.object(i) else {
            continue;
        };
        match (object.gnu_table(), own_table) {
            // The object's names looked up in the copy.
            (Some(theirs), Some(ours)) if own_len > object.symbol_count() as usize => {
                for (index, hash) in theirs.hashes() {
                    if !ours.has_hash(hash) {
                        continue;
                    }
                    let targets = program.symbols_named(object.symbol_name_bytes(index)?)?;
                    if targets.is_empty() {
                        continue;
                    }
                    let Some(definition) = object.symbol_at(index)? else {
                        continue;
                    };
                    for target in targets {
                        if known(&found, target) {
                            continue;
                        }
                        if let Some(value) = interposes(program, target, &definition)? {
                            found.push(value);
                        }
                    }
                }
            }
            // The copy's names looked up in the object (DT_HASH alone: its own lookup).
            (theirs, _) => {
                for &(target, hash) in own.get_or_init(|| hashed_or_named(program)) {
                    let may_define = match &theirs {
                        Some(table) => table.has_hash(hash),
                        None => object.may_define(hash),
                    };
                    if !may_define || known(&found, target) {
                        continue;
                    }
                    let name = program.symbol_name_bytes(target)?;
                    let mut winner = None;
                    for index in object.symbols_named(name)? {
                        if let Some(definition) = object.symbol_at(index)? {
                            winner = winner.or(interposes(program, target, &definition)?);
                        }
                    }
                    found.extend(winner);
                }
            }
        }
    }
    Ok(found)
}

/// `object`'s hashed symbols (index, GNU hash without its lowest bit); for a table of
/// DT_HASH alone, which keeps no GNU hashes, its symbols with hashes made from their names.
fn hashed_or_named(object: &Object<'_>) -> Vec<(u32, u32)> {
    if let Some(table) = object.gnu_table() {
        return table.hashes().collect();
    }
    (1..object.symbol_count())
        .filter_map(|index| {
            let name = object.symbol_name_bytes(index).ok()?;
            Some((index, crate::elf::gnu_hash(name) & !1))
        })
        .collect()
}

/// Whether `definition` (of an earlier object) wins over the copy's symbol `target` of the
/// same name, and with which address.
fn interposes(
    program: &Object<'_>,
    target: u32,
    definition: &crate::elf::Symbol<'_>,
) -> Result<Option<(u32, usize, bool)>> {
    if definition.absolute || definition.kind == SymbolKind::Tls {
        return Ok(None);
    }
    let Some(own) = program.symbol_at(target)? else {
        return Ok(None);
    };
    // An unversioned definition takes every version of the name; a versioned one only its
    // own. Thread-local symbols are left out of the forwarder.
    if definition.version.is_some() && definition.version != own.version
        || own.kind == SymbolKind::Tls
    {
        return Ok(None);
    }
    let ifunc = definition.kind == SymbolKind::Ifunc;
    let address = if ifunc {
        resolve_ifunc(definition.address)
    } else {
        definition.address
    };
    Ok(Some((target, address, ifunc)))
}

/// An IFUNC's implementation, asked of its resolver as ld.so asks it.
fn resolve_ifunc(resolver: usize) -> usize {
    // SAFETY: `resolver` is the address of an STT_GNU_IFUNC symbol of a loaded, relocated
    // object (the program's global scope).
    unsafe { crate::arch::native::resolve_ifunc(resolver) }
}
