//! Dynamic symbols: the raw `ElfN_Sym` records and the public description of a defined one.

pub(crate) use super::layout::SYM_SIZE;
use super::layout::{sym_bytes, sym_fields};
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

/// One `ElfN_Sym`, decoded.
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
    /// The `ElfN_Sym` that `b` begins with, or `None` if `b` is shorter than one.
    pub fn parse(b: &[u8]) -> Option<RawSymbol> {
        let (name, info, other, section, value, size) = sym_fields(b.get(..SYM_SIZE)?)?;
        Some(RawSymbol {
            name,
            info,
            other,
            section,
            value,
            size,
        })
    }

    /// The entry's bytes, as the forwarder writes its tables.
    pub fn to_bytes(self) -> Vec<u8> {
        sym_bytes(
            self.name,
            self.info,
            self.other,
            self.section,
            self.value,
            self.size,
        )
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

    /// The string table from symbol `index`'s name on (its name, its NUL, what follows):
    /// only `st_name`, the first field in both classes, is read.
    pub fn name_tail(&self, index: u32) -> Option<&'a [u8]> {
        if index >= self.count {
            return None;
        }
        let at = (index as usize).checked_mul(SYM_SIZE)?;
        let offset = crate::bytes::u32_at(self.entries, at)?;
        self.strings.get(offset as usize..)
    }
}
