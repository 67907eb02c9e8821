//! Symbol versions: DT_VERSYM gives each symbol a version index; DT_VERDEF names the indices
//! an object defines, DT_VERNEED the ones it requires from others.

use super::memory::Memory;
use super::symbol::SymbolTable;

const VERSYM_HIDDEN: u16 = 0x8000;
/// Index 0 is "local", 1 "global, unversioned"; named versions start at 2.
const FIRST_NAMED_INDEX: u16 = 2;
/// Verdef/verneed chains are bounded by their DT_*NUM count, or by this when it is absent.
const MAX_VERSION_ENTRIES: u64 = 0xffff;

/// The version of one symbol table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolVersion<'a> {
    /// No version information (no DT_VERSYM, or index 0/1).
    Unversioned,
    /// A definition in a version of this object (DT_VERDEF). `hidden` marks `name@VER`
    /// (not the default) as opposed to `name@@VER`.
    Defined { name: &'a str, hidden: bool },
    /// A reference that requires `name` from the object whose soname is `file`
    /// (DT_VERNEED).
    Required { name: &'a str, file: &'a str },
}

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
            return Err("DT_VERSYM index with no DT_VERDEF entry");
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
        let Some((mut entry, count)) = self.verdef else {
            return Ok(None);
        };
        for _ in 0..count.unwrap_or(MAX_VERSION_ENTRIES) {
            // Elf64_Verdef: vd_version, vd_flags, vd_ndx (u16), vd_cnt (u16), vd_hash,
            // vd_aux, vd_next (u32).
            let ndx = memory
                .u16_at(entry, 4)
                .ok_or("DT_VERDEF entry (outside the object)")?;
            let aux = memory
                .u32_at(entry, 12)
                .ok_or("DT_VERDEF entry (outside the object)")?;
            let next = memory
                .u32_at(entry, 16)
                .ok_or("DT_VERDEF entry (outside the object)")?;
            if ndx == number {
                let aux = entry
                    .checked_add(aux as usize)
                    .ok_or("DT_VERDEF aux offset")?;
                let name = memory
                    .u32(aux)
                    .ok_or("DT_VERDEF aux entry (outside the object)")?;
                return string(symbols, name, "DT_VERDEF version name").map(Some);
            }
            if next == 0 {
                break;
            }
            entry = entry
                .checked_add(next as usize)
                .ok_or("DT_VERDEF next offset")?;
        }
        Ok(None)
    }

    /// The name and file of the version this object requires with index `number`.
    fn required_name<'a>(
        &self,
        memory: &Memory<'a>,
        symbols: &SymbolTable<'a>,
        number: u16,
    ) -> Result<Option<(&'a str, &'a str)>, Failure> {
        let Some((mut entry, count)) = self.verneed else {
            return Ok(None);
        };
        let bad = "DT_VERNEED entry (outside the object)";
        for _ in 0..count.unwrap_or(MAX_VERSION_ENTRIES) {
            // Elf64_Verneed: vn_version, vn_cnt (u16), vn_file, vn_aux, vn_next (u32).
            let aux_count = memory.u16_at(entry, 2).ok_or(bad)?;
            let file = memory.u32_at(entry, 4).ok_or(bad)?;
            let mut aux = entry
                .checked_add(memory.u32_at(entry, 8).ok_or(bad)? as usize)
                .ok_or(bad)?;
            for _ in 0..aux_count {
                // Elf64_Vernaux: vna_hash (u32), vna_flags, vna_other (u16), vna_name,
                // vna_next (u32).
                let other = memory.u16_at(aux, 6).ok_or(bad)?;
                if other == number {
                    let name = memory.u32_at(aux, 8).ok_or(bad)?;
                    return Ok(Some((
                        string(symbols, name, "DT_VERNEED version name")?,
                        string(symbols, file, "DT_VERNEED file name")?,
                    )));
                }
                let next = memory.u32_at(aux, 12).ok_or(bad)?;
                if next == 0 {
                    break;
                }
                aux = aux.checked_add(next as usize).ok_or(bad)?;
            }
            let next = memory.u32_at(entry, 12).ok_or(bad)?;
            if next == 0 {
                break;
            }
            entry = entry.checked_add(next as usize).ok_or(bad)?;
        }
        Ok(None)
    }
}

fn string<'a>(symbols: &SymbolTable<'a>, offset: u32, what: Failure) -> Result<&'a str, Failure> {
    symbols
        .string(offset)
        .and_then(|s| std::str::from_utf8(s).ok())
        .ok_or(what)
}
