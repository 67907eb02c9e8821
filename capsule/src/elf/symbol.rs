//! Dynamic symbols: the raw `Elf64_Sym` records and the public description of a defined one.

use crate::bytes::{u16_at, u32_at, u64_at};

/// Size of one `Elf64_Sym`.
pub(crate) const SYM_SIZE: usize = 24;
pub(crate) const SHN_UNDEF: u16 = 0;
pub(crate) const SHN_ABS: u16 = 0xfff1;

/// What a symbol names (`ELF64_ST_TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolKind {
    NoType,
    Object,
    Function,
    /// A thread-local variable: the address is an offset in the object's TLS block, not a
    /// process address.
    Tls,
    Common,
    /// `STT_GNU_IFUNC`: the address is the *resolver*; call it to get the implementation.
    Ifunc,
    Other(u8),
}

/// How a symbol binds (`ELF64_ST_BIND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    Local,
    Global,
    Weak,
    /// `STB_GNU_UNIQUE`: one definition per process, whatever the namespace rules say.
    Unique,
    Other(u8),
}

/// One `Elf64_Sym`, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawSymbol {
    pub name: u32,
    pub info: u8,
    /// `st_other`: the visibility.
    pub other: u8,
    pub section: u16,
    pub value: u64,
    pub size: u64,
}

impl RawSymbol {
    /// The `Elf64_Sym` that `b` begins with, or `None` if `b` is shorter than one.
    pub fn parse(b: &[u8]) -> Option<RawSymbol> {
        Some(RawSymbol {
            name: u32_at(b, 0)?,
            info: *b.get(4)?,
            other: *b.get(5)?,
            section: u16_at(b, 6)?,
            value: u64_at(b, 8)?,
            size: u64_at(b, 16)?,
        })
    }

    /// The entry's bytes, as the forwarder writes its tables.
    pub fn to_bytes(self) -> [u8; SYM_SIZE] {
        let mut e = [0u8; SYM_SIZE];
        e[0..4].copy_from_slice(&self.name.to_le_bytes());
        e[4] = self.info;
        e[5] = self.other;
        e[6..8].copy_from_slice(&self.section.to_le_bytes());
        e[8..16].copy_from_slice(&self.value.to_le_bytes());
        e[16..24].copy_from_slice(&self.size.to_le_bytes());
        e
    }

    pub fn kind(&self) -> SymbolKind {
        match self.info & 0xf {
            0 => SymbolKind::NoType,
            1 => SymbolKind::Object,
            2 => SymbolKind::Function,
            5 => SymbolKind::Common,
            6 => SymbolKind::Tls,
            10 => SymbolKind::Ifunc,
            other => SymbolKind::Other(other),
        }
    }

    pub fn binding(&self) -> Binding {
        match self.info >> 4 {
            0 => Binding::Local,
            1 => Binding::Global,
            2 => Binding::Weak,
            10 => Binding::Unique,
            other => Binding::Other(other),
        }
    }

    pub fn is_defined(&self) -> bool {
        self.section != SHN_UNDEF
    }

    /// Whether other objects can bind to it: defined, and global, weak or unique.
    pub fn is_exported(&self) -> bool {
        self.is_defined()
            && matches!(
                self.binding(),
                Binding::Global | Binding::Weak | Binding::Unique
            )
    }
}

/// A defined, exported dynamic symbol of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol<'a> {
    pub name: &'a str,
    /// The version it is defined in; `None` for an unversioned definition.
    pub version: Option<&'a str>,
    /// `name@VERSION` (true) rather than `name@@VERSION`: a non-default version, which
    /// only a versioned reference (or `dlvsym`) can bind to.
    pub hidden: bool,
    pub kind: SymbolKind,
    pub binding: Binding,
    /// Load bias plus `st_value`; `st_value` itself for an absolute symbol (`SHN_ABS`), and
    /// for [`SymbolKind::Tls`] the offset in the TLS block. For [`SymbolKind::Ifunc`] this
    /// is the resolver, not the function.
    pub address: usize,
    pub size: u64,
    /// Defined with `SHN_ABS` (e.g. the version-name symbols GNU ld emits).
    pub absolute: bool,
    /// Index in the dynamic symbol table.
    pub index: u32,
}

/// The dynamic symbol table and its string table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SymbolTable<'a> {
    pub address: usize,
    pub count: u32,
    /// The `count` entries, read once (checked to lie in the object when it was viewed).
    pub entries: &'a [u8],
    pub strings: &'a [u8],
}

impl<'a> SymbolTable<'a> {
    /// The symbol at `index`, or `None` if it lies outside the table or the memory.
    pub fn get(&self, index: u32) -> Option<RawSymbol> {
        if index >= self.count {
            return None;
        }
        let at = (index as usize).checked_mul(SYM_SIZE)?;
        RawSymbol::parse(self.entries.get(at..at.checked_add(SYM_SIZE)?)?)
    }

    /// A string of the string table, or `None` if it does not end inside the table.
    pub fn string(&self, offset: u32) -> Option<&'a [u8]> {
        super::memory::c_str_at(self.strings, offset as usize)
    }
}
