//! Symbol versions: DT_VERSYM gives each symbol a version index; DT_VERDEF names the indices
//! an object defines, DT_VERNEED the ones it requires from others.

use std::ops::ControlFlow;

use super::memory::Memory;
use super::symbol::SymbolTable;
use crate::elffile::VERSYM_HIDDEN;

/// Index 0 is "local", 1 "global, unversioned"; named versions start at 2.
const FIRST_NAMED_INDEX: u16 = 2;
/// Verdef/verneed chains are bounded by their DT_*NUM count, or by this when it is absent.
const MAX_VERSION_ENTRIES: u64 = 0xffff;

/// The version of one symbol table entry: the file reader's type, for both readers.
pub use crate::elffile::SymbolVersion;

/// Addresses of the version tables of one object.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct VersionTables {
    pub versym: Option<usize>,
    pub verdef: Option<(usize, Option<u64>)>,
    pub verneed: Option<(usize, Option<u64>)>,
}

/// Why a version lookup failed, for `Error::Malformed`.
pub(crate) type Failure = &'static str;

impl VersionTables {
    /// The version of symbol `index`; `defined` says which table its index refers to.
    pub fn of<'a>(
        &self,
        memory: &Memory<'a>,
        symbols: &SymbolTable<'a>,
        index: u32,
        defined: bool,
    ) -> Result<SymbolVersion<'a>, Failure> {
        let Some(versym) = self.versym else {
            return Ok(SymbolVersion::Unversioned);
        };
        let raw = memory
            .u16(
                versym
                    .checked_add(index as usize * 2)
                    .ok_or("DT_VERSYM entry")?,
            )
            .ok_or("DT_VERSYM entry (outside the object)")?;
        let number = raw & !VERSYM_HIDDEN;
        if number < FIRST_NAMED_INDEX {
            return Ok(SymbolVersion::Unversioned);
        }
        let hidden = raw & VERSYM_HIDDEN != 0;
        if defined {
            if let Some(name) = self.defined_name(memory, symbols, number)? {
                return Ok(SymbolVersion::Defined { name, hidden });
            }
            // An executable's copy-relocated definitions (`stdout@GLIBC_2.2.5`) carry the
            // index of the version they were required in: ld.so reads one index space.
            if let Some((name, _)) = self.required_name(memory, symbols, number)? {
                return Ok(SymbolVersion::Defined { name, hidden });
            }
            return Err("DT_VERSYM index with no DT_VERDEF or DT_VERNEED entry");
        }
        if let Some((name, file)) = self.required_name(memory, symbols, number)? {
            return Ok(SymbolVersion::Required { name, file });
        }
        Err("DT_VERSYM index with no DT_VERNEED entry")
    }

    /// The name of the version this object defines with index `number`.
    fn defined_name<'a>(
        &self,
        memory: &Memory<'a>,
        symbols: &SymbolTable<'a>,
        number: u16,
    ) -> Result<Option<&'a str>, Failure> {
        let found = self.walk_verdef(memory, |index, name| {
            if index == number {
                ControlFlow::Break(name)
            } else {
                ControlFlow::Continue(())
            }
        })?;
        found
            .map(|name| string(symbols, name, "DT_VERDEF version name"))
            .transpose()
    }

    /// The name and file of the version this object requires with index `number`.
    fn required_name<'a>(
        &self,
        memory: &Memory<'a>,
        symbols: &SymbolTable<'a>,
        number: u16,
    ) -> Result<Option<(&'a str, &'a str)>, Failure> {
        let found = self.walk_verneed(memory, |file, v| {
            if v.index == number {
                ControlFlow::Break((v.name, file))
            } else {
                ControlFlow::Continue(())
            }
        })?;
        let Some((name, file)) = found else {
            return Ok(None);
        };
        Ok(Some((
            string(symbols, name, "DT_VERNEED version name")?,
            string(symbols, file, "DT_VERNEED file name")?,
        )))
    }

    /// Every version name the object defines (DT_VERDEF order; its base name included).
    pub fn defined_names<'a>(
        &self,
        memory: &Memory<'a>,
        symbols: &SymbolTable<'a>,
    ) -> Result<Vec<&'a str>, Failure> {
        let mut names = Vec::new();
        self.walk_verdef(memory, |_, name| {
            names.push(name);
            ControlFlow::<()>::Continue(())
        })?;
        names
            .into_iter()
            .map(|name| string(symbols, name, "DT_VERDEF version name"))
            .collect()
    }

    /// Visit each DT_VERDEF record's index and name (a DT_STRTAB offset) until `visit`
    /// breaks, bounded by DT_VERDEFNUM.
    fn walk_verdef<T>(
        &self,
        memory: &Memory<'_>,
        mut visit: impl FnMut(u16, u32) -> ControlFlow<T>,
    ) -> Result<Option<T>, Failure> {
        let Some((mut entry, count)) = self.verdef else {
            return Ok(None);
        };
        let bad = "DT_VERDEF entry (outside the object)";
        for _ in 0..count.unwrap_or(MAX_VERSION_ENTRIES) {
            // Elf64_Verdef: vd_version, vd_flags, vd_ndx (u16), vd_cnt (u16), vd_hash,
            // vd_aux, vd_next (u32); its first Elf64_Verdaux names it.
            let index = memory.u16_at(entry, 4).ok_or(bad)?;
            let aux = memory.u32_at(entry, 12).ok_or(bad)?;
            let aux = entry
                .checked_add(aux as usize)
                .ok_or("DT_VERDEF aux offset")?;
            let name = memory
                .u32(aux)
                .ok_or("DT_VERDEF aux entry (outside the object)")?;
            if let ControlFlow::Break(found) = visit(index, name) {
                return Ok(Some(found));
            }
            match memory.u32_at(entry, 16).ok_or(bad)? {
                0 => break,
                next => {
                    entry = entry
                        .checked_add(next as usize)
                        .ok_or("DT_VERDEF next offset")?
                }
            }
        }
        Ok(None)
    }

    /// The index of the version this object defines as `name`.
    pub fn defined_index(
        &self,
        memory: &Memory<'_>,
        symbols: &SymbolTable<'_>,
        name: &str,
    ) -> Result<Option<u16>, Failure> {
        self.walk_verdef(memory, |index, offset| {
            if symbols.string(offset) == Some(name.as_bytes()) {
                ControlFlow::Break(index)
            } else {
                ControlFlow::Continue(())
            }
        })
    }

    /// DT_VERDEF's bytes (every record and name entry) and its record count.
    pub fn verdef_bytes<'a>(
        &self,
        memory: &Memory<'a>,
    ) -> Result<Option<(&'a [u8], u64)>, Failure> {
        let Some((start, _)) = self.verdef else {
            return Ok(None);
        };
        let bad = "DT_VERDEF entry (outside the object)";
        let mut end = start;
        let mut records = 0u64;
        // The records and their aux entries, each ending where its fields end.
        let mut entry = start;
        for _ in 0..self
            .verdef
            .and_then(|(_, n)| n)
            .unwrap_or(MAX_VERSION_ENTRIES)
        {
            records += 1;
            end = end.max(entry.checked_add(20).ok_or(bad)?);
            let mut aux = entry
                .checked_add(memory.u32_at(entry, 12).ok_or(bad)? as usize)
                .ok_or(bad)?;
            for _ in 0..memory.u16_at(entry, 6).ok_or(bad)? {
                end = end.max(aux.checked_add(8).ok_or(bad)?);
                match memory.u32_at(aux, 4).ok_or(bad)? {
                    0 => break,
                    next => aux = aux.checked_add(next as usize).ok_or(bad)?,
                }
            }
            match memory.u32_at(entry, 16).ok_or(bad)? {
                0 => break,
                next => entry = entry.checked_add(next as usize).ok_or(bad)?,
            }
        }
        let bytes = memory.bytes(start, end - start).ok_or(bad)?;
        Ok(Some((bytes, records)))
    }

    /// Visit each version of each DT_VERNEED record (with the record's file name, a
    /// DT_STRTAB offset) until `visit` breaks, bounded by DT_VERNEEDNUM.
    fn walk_verneed<T>(
        &self,
        memory: &Memory<'_>,
        mut visit: impl FnMut(u32, Needed) -> ControlFlow<T>,
    ) -> Result<Option<T>, Failure> {
        let Some((mut entry, count)) = self.verneed else {
            return Ok(None);
        };
        let bad = "DT_VERNEED entry (outside the object)";
        for _ in 0..count.unwrap_or(MAX_VERSION_ENTRIES) {
            // Elf64_Verneed: vn_version, vn_cnt (u16), vn_file, vn_aux, vn_next (u32).
            let file = memory.u32_at(entry, 4).ok_or(bad)?;
            let mut aux = entry
                .checked_add(memory.u32_at(entry, 8).ok_or(bad)? as usize)
                .ok_or(bad)?;
            for _ in 0..memory.u16_at(entry, 2).ok_or(bad)? {
                // Elf64_Vernaux: vna_hash (u32), vna_flags, vna_other (u16), vna_name,
                // vna_next (u32).
                let version = Needed {
                    index: memory.u16_at(aux, 6).ok_or(bad)?,
                    name: memory.u32_at(aux, 8).ok_or(bad)?,
                };
                if let ControlFlow::Break(found) = visit(file, version) {
                    return Ok(Some(found));
                }
                match memory.u32_at(aux, 12).ok_or(bad)? {
                    0 => break,
                    next => aux = aux.checked_add(next as usize).ok_or(bad)?,
                }
            }
            match memory.u32_at(entry, 12).ok_or(bad)? {
                0 => break,
                next => entry = entry.checked_add(next as usize).ok_or(bad)?,
            }
        }
        Ok(None)
    }
}

/// One version a DT_VERNEED record asks for: its index (`vna_other`) and its name (a
/// DT_STRTAB offset).
struct Needed {
    index: u16,
    name: u32,
}

fn string<'a>(symbols: &SymbolTable<'a>, offset: u32, what: Failure) -> Result<&'a str, Failure> {
    symbols
        .string(offset)
        .and_then(|s| std::str::from_utf8(s).ok())
        .ok_or(what)
}
