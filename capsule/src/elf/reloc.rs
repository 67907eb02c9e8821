//! Relocations: the RELA tables (DT_JMPREL, DT_RELA) whose entries name symbols, and the
//! RELR table, which only holds relative relocations.

use super::memory::Memory;
use crate::bytes::u64_at;

/// Size of one `Elf64_Rela`.
pub(crate) const RELA_SIZE: usize = 24;

const R_X86_64_64: u32 = 1;
const R_X86_64_GLOB_DAT: u32 = 6;
const R_X86_64_JUMP_SLOT: u32 = 7;

/// The relocation types that store a symbol's address in a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SlotKind {
    /// `R_X86_64_JUMP_SLOT`: a PLT's GOT entry; holds S (or, lazily bound, a PLT address).
    JumpSlot,
    /// `R_X86_64_GLOB_DAT`: a GOT entry for a data or function pointer; holds S.
    GlobDat,
    /// `R_X86_64_64`: a pointer in data (`int (*fp)(void) = value;`); holds S + A.
    Absolute64,
}

impl SlotKind {
    fn from_type(r_type: u32) -> Option<SlotKind> {
        match r_type {
            R_X86_64_JUMP_SLOT => Some(SlotKind::JumpSlot),
            R_X86_64_GLOB_DAT => Some(SlotKind::GlobDat),
            R_X86_64_64 => Some(SlotKind::Absolute64),
            _ => None,
        }
    }
}

/// One relocation slot that holds a symbol's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Where the slot is: load bias plus `r_offset`.
    pub address: usize,
    pub kind: SlotKind,
    /// `r_addend`; only meaningful for [`SlotKind::Absolute64`], whose value is S + A.
    pub addend: i64,
    /// Index of the symbol in the dynamic symbol table.
    pub symbol: u32,
}

impl Slot {
    /// The value the slot holds when its symbol resolves to `target`.
    pub fn value_for(&self, target: usize) -> usize {
        match self.kind {
            SlotKind::Absolute64 => target.wrapping_add(self.addend as usize),
            SlotKind::JumpSlot | SlotKind::GlobDat => target,
        }
    }
}

/// A RELA table: `size` bytes at `address`, entries of `entry_size` bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RelaTable {
    pub address: usize,
    pub size: usize,
    pub entry_size: usize,
}

impl RelaTable {
    /// Every symbol slot of the table (other relocation types are left out). `None` if the
    /// table lies outside the object.
    pub fn slots(&self, memory: &Memory<'_>, bias: usize) -> Option<Vec<Slot>> {
        if self.entry_size < RELA_SIZE {
            return None;
        }
        let table = memory.bytes(self.address, self.size)?;
        let mut slots = Vec::new();
        for entry in table.chunks_exact(self.entry_size) {
            let offset = u64_at(entry, 0)?;
            let info = u64_at(entry, 8)?;
            let addend = u64_at(entry, 16)? as i64;
            let Some(kind) = SlotKind::from_type(info as u32) else {
                continue;
            };
            slots.push(Slot {
                address: usize::try_from(offset).ok()?.wrapping_add(bias),
                kind,
                addend,
                symbol: (info >> 32) as u32,
            });
        }
        Some(slots)
    }
}

/// The addresses a RELR table relocates (each gets the load bias added at load time). An
/// even entry is an address; an odd one a bitmap of the 63 words after the last address.
pub(crate) fn relr_addresses(
    memory: &Memory<'_>,
    address: usize,
    size: usize,
    bias: usize,
) -> Option<Vec<usize>> {
    let table = memory.bytes(address, size)?;
    let mut addresses = Vec::new();
    let mut next = 0usize;
    for entry in table.chunks_exact(8).filter_map(|c| u64_at(c, 0)) {
        if entry & 1 == 0 {
            let at = usize::try_from(entry).ok()?.wrapping_add(bias);
            addresses.push(at);
            next = at.checked_add(8)?;
        } else {
            let mut bits = entry >> 1;
            let mut at = next;
            while bits != 0 {
                if bits & 1 != 0 {
                    addresses.push(at);
                }
                bits >>= 1;
                at = at.checked_add(8)?;
            }
            next = next.checked_add(63 * 8)?;
        }
    }
    Some(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relr_expands_addresses_and_bitmaps() {
        let words: Vec<u8> = [0x1000u64, 0b1011]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let mut memory = Memory::image(&words);
        memory.add_file_segment(0, 0, 16);
        assert_eq!(
            relr_addresses(&memory, 0, 16, 0x10),
            Some(vec![0x1010, 0x1018, 0x1028])
        );
    }

    #[test]
    fn rela_table_outside_the_object_is_rejected() {
        let memory = Memory::image(&[]);
        let table = RelaTable {
            address: 0,
            size: 24,
            entry_size: 24,
        };
        assert!(table.slots(&memory, 0).is_none());
    }
}
