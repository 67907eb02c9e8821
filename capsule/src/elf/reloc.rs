//! Relocations: the tables (DT_JMPREL, and DT_RELA or on REL architectures DT_REL) whose
//! entries name symbols, and the RELR table, which only holds relative relocations.

use super::layout::{reloc_fields, word_at, RELOC_SIZE, WORD};
use super::memory::Memory;
use crate::arch::native::{RELA, R_ABSOLUTE, R_GLOB_DAT, R_JUMP_SLOT};

/// The relocation types that store a symbol's address in a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SlotKind {
    /// A PLT's GOT entry (`R_X86_64_JUMP_SLOT`, `R_386_JMP_SLOT`); holds S (or, lazily
    /// bound, a PLT address).
    JumpSlot,
    /// A GOT entry for a data or function pointer (`R_X86_64_GLOB_DAT`,
    /// `R_386_GLOB_DAT`); holds S.
    GlobDat,
    /// A pointer in data (`int (*fp)(void) = value;`: `R_X86_64_64`, `R_386_32`); holds
    /// S + A.
    Absolute,
}

impl SlotKind {
    fn from_type(r_type: u32) -> Option<SlotKind> {
        match r_type {
            R_JUMP_SLOT => Some(SlotKind::JumpSlot),
            R_GLOB_DAT => Some(SlotKind::GlobDat),
            R_ABSOLUTE => Some(SlotKind::Absolute),
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
    /// `r_addend`; only meaningful for [`SlotKind::Absolute`], whose value is S + A. On a
    /// REL architecture (i386) the addend was the slot's content before ld.so added S, so
    /// it is not known here: `None` (see [`Slot::addend_given`]).
    pub addend: Option<i64>,
    /// Index of the symbol in the dynamic symbol table.
    pub symbol: u32,
}

impl Slot {
    /// The addend of an absolute slot that holds `current` while its symbol resolves to
    /// `target`: the entry's own, or, where the slot carried it (REL), what `current`
    /// holds beyond `target`.
    pub fn addend_given(&self, current: usize, target: usize) -> i64 {
        match self.addend {
            Some(addend) => addend,
            None => current.wrapping_sub(target) as isize as i64,
        }
    }

    /// The value the slot holds when its symbol resolves to `target`; for an absolute
    /// slot of a REL architecture, with the addend 0 (see [`Slot::addend_given`]).
    pub fn value_for(&self, target: usize) -> usize {
        match self.kind {
            SlotKind::Absolute => target.wrapping_add(self.addend.unwrap_or(0) as usize),
            SlotKind::JumpSlot | SlotKind::GlobDat => target,
        }
    }
}

/// A relocation table: `size` bytes at `address`, entries of `entry_size` bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RelocTable {
    pub address: usize,
    pub size: usize,
    pub entry_size: usize,
}

impl RelocTable {
    /// Every symbol slot of the table that `pick` chooses by its symbol index, with what
    /// `pick` said of it (other relocation types are left out). `pick`'s error is returned
    /// as it is; a table that lies outside the object is `outside()`.
    pub fn slots<T, E>(
        &self,
        memory: &Memory<'_>,
        bias: usize,
        mut pick: impl FnMut(u32) -> Result<Option<T>, E>,
        outside: impl Fn() -> E,
    ) -> Result<Vec<(T, Slot)>, E> {
        if self.entry_size < RELOC_SIZE {
            return Err(outside());
        }
        let table = memory.bytes(self.address, self.size).ok_or_else(&outside)?;
        let mut slots = Vec::new();
        for entry in table.chunks_exact(self.entry_size) {
            let (offset, symbol, r_type, addend) = reloc_fields(entry).ok_or_else(&outside)?;
            let Some(kind) = SlotKind::from_type(r_type) else {
                continue;
            };
            let Some(picked) = pick(symbol)? else {
                continue;
            };
            let offset = usize::try_from(offset).map_err(|_| outside())?;
            slots.push((
                picked,
                Slot {
                    address: offset.wrapping_add(bias),
                    kind,
                    addend: RELA.then_some(addend),
                    symbol,
                },
            ));
        }
        Ok(slots)
    }
}

/// The addresses a RELR table relocates (each gets the load bias added at load time). An
/// even entry is an address; an odd one a bitmap of the words after the last address (63
/// on 64-bit machines, 31 on 32-bit ones).
pub(crate) fn relr_addresses(
    memory: &Memory<'_>,
    address: usize,
    size: usize,
    bias: usize,
) -> Option<Vec<usize>> {
    let table = memory.bytes(address, size)?;
    let bits = WORD * 8 - 1;
    let mut addresses = Vec::new();
    let mut next = 0usize;
    for entry in table.chunks_exact(WORD).filter_map(|c| word_at(c, 0)) {
        if entry & 1 == 0 {
            let at = usize::try_from(entry).ok()?.wrapping_add(bias);
            addresses.push(at);
            next = at.checked_add(WORD)?;
        } else {
            let mut bitmap = entry >> 1;
            let mut at = next;
            while bitmap != 0 {
                if bitmap & 1 != 0 {
                    addresses.push(at);
                }
                bitmap >>= 1;
                at = at.checked_add(WORD)?;
            }
            next = next.checked_add(bits * WORD)?;
        }
    }
    Some(addresses)
}

#[cfg(test)]
mod tests {
    use super::super::layout::word_bytes;
    use super::*;

    #[test]
    fn relr_expands_addresses_and_bitmaps() {
        let words: Vec<u8> = [0x1000u64, 0b1011]
            .iter()
            .flat_map(|&w| word_bytes(w))
            .collect();
        let mut memory = Memory::image(&words);
        memory.add_file_segment(0, 0, words.len() as u64);
        assert_eq!(
            relr_addresses(&memory, 0, words.len(), 0x10),
            Some(vec![0x1010, 0x1010 + WORD, 0x1010 + 3 * WORD])
        );
    }

    #[test]
    fn reloc_table_outside_the_object_is_rejected() {
        let memory = Memory::image(&[]);
        let table = RelocTable {
            address: 0,
            size: RELOC_SIZE,
            entry_size: RELOC_SIZE,
        };
        assert!(table
            .slots(&memory, 0, |_| Ok::<_, ()>(Some(())), || ())
            .is_err());
    }

    #[test]
    fn absolute_addends_come_from_the_entry_or_the_slot() {
        let mut slot = Slot {
            address: 0x1000,
            kind: SlotKind::Absolute,
            addend: Some(16),
            symbol: 1,
        };
        assert_eq!(slot.value_for(0x10), 0x20);
        assert_eq!(slot.addend_given(0x99, 0x10), 16);
        slot.addend = None;
        assert_eq!(slot.addend_given(0x18, 0x10), 8);
        assert_eq!(slot.value_for(0x10), 0x10);
    }
}
