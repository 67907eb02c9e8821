//! The ELF class of this process: sizes and field offsets of the records the views read
//! and the forwarder writes (`Elf64_*` on 64-bit machines, `Elf32_*` on 32-bit ones). A
//! live object is always of the process's own class, and so is every file image the
//! runtime reads (a forwarder's program copy, the host's copy of a shared library).
//!
//! Elf32 and Elf64 differ in more than word size: `Elf32_Sym` puts value and size before
//! info, `Elf32_Phdr` puts `p_flags` last, and `r_info` splits at bit 8, not 32.

use crate::bytes::{u16_at, u32_at, u64_at};

/// Bytes in an address (`ElfN_Addr`, `ElfN_Off`, the `d_val` of a dynamic entry).
pub(crate) const WORD: usize = std::mem::size_of::<usize>();

/// `EI_CLASS` of this process's objects.
pub(crate) const CLASS: u8 = crate::machine::Machine::NATIVE.elf_class();

/// The word at `at`: 4 or 8 bytes as [`WORD`] says.
pub(crate) fn word_at(bytes: &[u8], at: usize) -> Option<u64> {
    if WORD == 8 {
        u64_at(bytes, at)
    } else {
        u32_at(bytes, at).map(u64::from)
    }
}

/// `value` as [`WORD`] little-endian bytes (truncated to the class: values written are
/// addresses and sizes of this process's class).
pub(crate) fn word_bytes(value: u64) -> Vec<u8> {
    value.to_le_bytes()[..WORD].to_vec()
}

/// Program header and ELF header facts of the class.
#[cfg(target_pointer_width = "64")]
mod class {
    pub const EHDR_SIZE: usize = 64;
    pub const PHDR_SIZE: usize = 56;
    pub const SYM_SIZE: usize = 24;
    /// Offsets of `e_phoff`, `e_phentsize`, `e_phnum`.
    pub const E_PHOFF: usize = 32;
    pub const E_PHENTSIZE: usize = 54;
    pub const E_PHNUM: usize = 56;
    pub type Phdr = libc::Elf64_Phdr;
    /// `r_info`'s symbol and type.
    pub fn split_info(info: u64) -> (u32, u32) {
        ((info >> 32) as u32, info as u32)
    }
    pub fn make_info(symbol: u32, kind: u32) -> u64 {
        u64::from(symbol) << 32 | u64::from(kind)
    }
}

#[cfg(target_pointer_width = "32")]
mod class {
    pub const EHDR_SIZE: usize = 52;
    pub const PHDR_SIZE: usize = 32;
    pub const SYM_SIZE: usize = 16;
    pub const E_PHOFF: usize = 28;
    pub const E_PHENTSIZE: usize = 42;
    pub const E_PHNUM: usize = 44;
    pub type Phdr = libc::Elf32_Phdr;
    pub fn split_info(info: u64) -> (u32, u32) {
        ((info >> 8) as u32, (info & 0xff) as u32)
    }
    pub fn make_info(symbol: u32, kind: u32) -> u64 {
        u64::from(symbol) << 8 | u64::from(kind & 0xff)
    }
}

pub(crate) use class::{
    make_info, split_info, Phdr, EHDR_SIZE, E_PHENTSIZE, E_PHNUM, E_PHOFF, PHDR_SIZE, SYM_SIZE,
};

/// Bytes of one dynamic section entry (`d_tag`, `d_val`).
pub(crate) const DYN_SIZE: usize = 2 * WORD;

/// Bytes of one relocation entry of this architecture: `ElfN_Rela` (offset, info, addend)
/// or `ElfN_Rel` (offset, info).
pub(crate) const RELOC_SIZE: usize = if crate::arch::native::RELA {
    3 * WORD
} else {
    2 * WORD
};

/// The fields of a program header that the views use, whatever the class's field order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawPhdr {
    pub kind: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
    pub align: u64,
}

impl RawPhdr {
    pub fn parse(p: &[u8]) -> Option<RawPhdr> {
        let w = |i: usize| word_at(p, i);
        if WORD == 8 {
            Some(RawPhdr {
                kind: u32_at(p, 0)?,
                flags: u32_at(p, 4)?,
                offset: w(8)?,
                vaddr: w(16)?,
                filesz: w(32)?,
                memsz: w(40)?,
                align: w(48)?,
            })
        } else {
            Some(RawPhdr {
                kind: u32_at(p, 0)?,
                offset: w(4)?,
                vaddr: w(8)?,
                filesz: w(16)?,
                memsz: w(20)?,
                flags: u32_at(p, 24)?,
                align: w(28)?,
            })
        }
    }

    /// The header's bytes (`p_paddr` = `p_vaddr`).
    pub fn to_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PHDR_SIZE);
        out.extend_from_slice(&self.kind.to_le_bytes());
        if WORD == 8 {
            out.extend_from_slice(&self.flags.to_le_bytes());
        }
        for v in [self.offset, self.vaddr, self.vaddr, self.filesz, self.memsz] {
            out.extend(word_bytes(v));
        }
        if WORD == 4 {
            out.extend_from_slice(&self.flags.to_le_bytes());
        }
        out.extend(word_bytes(self.align));
        out
    }

    /// The header as `dl_iterate_phdr` hands it.
    #[allow(clippy::useless_conversion)] // u32 -> u64 on 32-bit machines
    pub fn from_libc(p: &Phdr) -> RawPhdr {
        RawPhdr {
            kind: p.p_type,
            flags: p.p_flags,
            offset: p.p_offset.into(),
            vaddr: p.p_vaddr.into(),
            filesz: p.p_filesz.into(),
            memsz: p.p_memsz.into(),
            align: p.p_align.into(),
        }
    }
}

/// A symbol table entry's bytes from its fields, in the class's order.
pub(crate) fn sym_bytes(
    name: u32,
    info: u8,
    other: u8,
    section: u16,
    value: u64,
    size: u64,
) -> Vec<u8> {
    let mut e = Vec::with_capacity(SYM_SIZE);
    e.extend_from_slice(&name.to_le_bytes());
    if WORD == 8 {
        e.extend([info, other]);
        e.extend_from_slice(&section.to_le_bytes());
        e.extend(word_bytes(value));
        e.extend(word_bytes(size));
    } else {
        e.extend(word_bytes(value));
        e.extend(word_bytes(size));
        e.extend([info, other]);
        e.extend_from_slice(&section.to_le_bytes());
    }
    e
}

/// A symbol table entry's fields: (name, info, other, section, value, size).
pub(crate) fn sym_fields(b: &[u8]) -> Option<(u32, u8, u8, u16, u64, u64)> {
    let name = u32_at(b, 0)?;
    if WORD == 8 {
        Some((
            name,
            *b.get(4)?,
            *b.get(5)?,
            u16_at(b, 6)?,
            word_at(b, 8)?,
            word_at(b, 16)?,
        ))
    } else {
        Some((
            name,
            *b.get(12)?,
            *b.get(13)?,
            u16_at(b, 14)?,
            word_at(b, 4)?,
            word_at(b, 8)?,
        ))
    }
}

/// A relocation entry's bytes: `ElfN_Rela` with `addend`, or `ElfN_Rel` (the addend then
/// belongs in the slot).
pub(crate) fn reloc_bytes(offset: u64, symbol: u32, kind: u32, addend: i64) -> Vec<u8> {
    let mut e = word_bytes(offset);
    e.extend(word_bytes(make_info(symbol, kind)));
    if crate::arch::native::RELA {
        e.extend(word_bytes(addend as u64));
    }
    e
}

/// A relocation entry's (offset, symbol, type, addend); the addend is 0 for `ElfN_Rel`.
pub(crate) fn reloc_fields(e: &[u8]) -> Option<(u64, u32, u32, i64)> {
    let offset = word_at(e, 0)?;
    let (symbol, kind) = split_info(word_at(e, WORD)?);
    let addend = if crate::arch::native::RELA {
        let raw = word_at(e, 2 * WORD)?;
        // Sign-extend a 32-bit addend.
        if WORD == 4 {
            i64::from(raw as u32 as i32)
        } else {
            raw as i64
        }
    } else {
        0
    };
    Some((offset, symbol, kind, addend))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let p = RawPhdr {
            kind: 1,
            flags: 5,
            offset: 0x10,
            vaddr: 0x2000,
            filesz: 0x30,
            memsz: 0x40,
            align: 0x1000,
        };
        let bytes = p.to_bytes();
        assert_eq!(bytes.len(), PHDR_SIZE);
        assert_eq!(RawPhdr::parse(&bytes), Some(p));
        let s = sym_bytes(3, 0x12, 1, 7, 0x1234, 8);
        assert_eq!(s.len(), SYM_SIZE);
        assert_eq!(sym_fields(&s), Some((3, 0x12, 1, 7, 0x1234, 8)));
        let r = reloc_bytes(0x3000, 5, 6, 0);
        assert_eq!(r.len(), RELOC_SIZE);
        assert_eq!(reloc_fields(&r), Some((0x3000, 5, 6, 0)));
        assert_eq!(split_info(make_info(9, 7)), (9, 7));
    }
}
