//! The dynamic section: the tags the views need, with their pointer entries turned into
//! addresses in the view's address space.

use super::layout::{word_at, DYN_SIZE, WORD};
use super::memory::Memory;
use crate::dynamic_tags::{
    DF_TEXTREL, DT_FLAGS, DT_GNU_HASH, DT_HASH, DT_JMPREL, DT_NEEDED, DT_NULL, DT_PLTREL,
    DT_PLTRELSZ, DT_REL, DT_RELA, DT_RELACOUNT, DT_RELAENT, DT_RELASZ, DT_RELCOUNT, DT_RELENT,
    DT_RELR, DT_RELRENT, DT_RELRSZ, DT_RELSZ, DT_SONAME, DT_STRSZ, DT_STRTAB, DT_SYMENT, DT_SYMTAB,
    DT_TEXTREL, DT_VERDEF, DT_VERDEFNUM, DT_VERNEED, DT_VERNEEDNUM, DT_VERSYM,
};

/// What the views use from the dynamic section. Pointer entries are addresses in the
/// memory source's address space; absent tags are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DynamicInfo {
    pub entries: usize,
    pub symtab: Option<usize>,
    pub syment: Option<u64>,
    pub strtab: Option<usize>,
    pub strsz: Option<u64>,
    pub soname: Option<u64>,
    /// String offsets of the DT_NEEDED entries, in order.
    pub needed: Vec<u64>,
    pub hash: Option<usize>,
    pub gnu_hash: Option<usize>,
    pub versym: Option<usize>,
    pub verdef: Option<usize>,
    pub verdefnum: Option<u64>,
    pub verneed: Option<usize>,
    pub verneednum: Option<u64>,
    pub jmprel: Option<usize>,
    pub pltrelsz: Option<u64>,
    pub pltrel: Option<u64>,
    /// The architecture's symbol relocations: DT_RELA/DT_RELASZ/DT_RELAENT, or on a REL
    /// architecture (i386) DT_REL/DT_RELSZ/DT_RELENT.
    pub rela: Option<usize>,
    pub relasz: Option<u64>,
    pub relaent: Option<u64>,
    /// DT_RELACOUNT (DT_RELCOUNT on a REL architecture): how many relative relocations
    /// open the table (ld.so applies that many without reading their types).
    pub relcount: Option<u64>,
    pub relr: Option<usize>,
    pub relrsz: Option<u64>,
    pub relrent: Option<u64>,
    pub textrel: bool,
}

/// The tags of the architecture's relocation table (DT_RELA or DT_REL, its size and
/// entry size); DT_PLTREL must name the first.
pub(crate) const RELOC_TAGS: (u64, u64, u64) = if crate::arch::native::RELA {
    (DT_RELA, DT_RELASZ, DT_RELAENT)
} else {
    (DT_REL, DT_RELSZ, DT_RELENT)
};

/// The tag counting the relative relocations that open the architecture's table.
const RELATIVE_COUNT: u64 = if crate::arch::native::RELA {
    DT_RELACOUNT
} else {
    DT_RELCOUNT
};

/// How the relocation table's tags are named in messages.
pub(crate) const RELOC_TAG_NAMES: &str = if crate::arch::native::RELA {
    "DT_RELA/DT_RELASZ/DT_RELAENT"
} else {
    "DT_REL/DT_RELSZ/DT_RELENT"
};

/// Read the dynamic section at `address` up to its DT_NULL.
///
/// glibc rewrites most pointer entries of a loaded object's dynamic section to absolute
/// addresses (`elf_get_dynamic_info`), but not all of them (DT_VERDEF and DT_VERNEED stay
/// as link-time addresses) and none at all where the section is read-only (the vDSO). So a
/// pointer that already lies inside the object is taken as is, and any other one has
/// `bias` added. A file image has bias 0 and unrelocated entries, which the same rule reads.
pub(crate) fn read_dynamic(
    memory: &Memory<'_>,
    address: usize,
    bias: usize,
) -> Result<DynamicInfo, &'static str> {
    let pointer = |value: u64| -> Option<usize> {
        let value = usize::try_from(value).ok()?;
        if memory.contains(value) {
            Some(value)
        } else {
            value.checked_add(bias).or(Some(value))
        }
    };
    let mut info = DynamicInfo::default();
    // Entry by entry rather than one slice to the segment's end: the GOT usually follows
    // the dynamic section, and its slots are written while views exist.
    for (index, entry) in memory.records(address, DYN_SIZE).enumerate() {
        let (Some(tag), Some(value)) = (word_at(entry, 0), word_at(entry, WORD)) else {
            break;
        };
        let (reloc, reloc_size, reloc_entry) = RELOC_TAGS;
        match tag {
            DT_NULL => {
                info.entries = index;
                return Ok(info);
            }
            DT_SYMTAB => info.symtab = pointer(value),
            DT_SYMENT => info.syment = Some(value),
            DT_STRTAB => info.strtab = pointer(value),
            DT_STRSZ => info.strsz = Some(value),
            DT_SONAME => info.soname = Some(value),
            DT_NEEDED => info.needed.push(value),
            DT_HASH => info.hash = pointer(value),
            DT_GNU_HASH => info.gnu_hash = pointer(value),
            DT_VERSYM => info.versym = pointer(value),
            DT_VERDEF => info.verdef = pointer(value),
            DT_VERDEFNUM => info.verdefnum = Some(value),
            DT_VERNEED => info.verneed = pointer(value),
            DT_VERNEEDNUM => info.verneednum = Some(value),
            DT_JMPREL => info.jmprel = pointer(value),
            DT_PLTRELSZ => info.pltrelsz = Some(value),
            DT_PLTREL => info.pltrel = Some(value),
            t if t == reloc => info.rela = pointer(value),
            t if t == reloc_size => info.relasz = Some(value),
            t if t == reloc_entry => info.relaent = Some(value),
            RELATIVE_COUNT => info.relcount = Some(value),
            DT_RELR => info.relr = pointer(value),
            DT_RELRSZ => info.relrsz = Some(value),
            DT_RELRENT => info.relrent = Some(value),
            DT_TEXTREL => info.textrel = true,
            DT_FLAGS => info.textrel |= value & DF_TEXTREL != 0,
            _ => {}
        }
    }
    if info.entries == 0 && memory.bytes(address, DYN_SIZE).is_none() {
        return Err("dynamic section (address outside the object's segments)");
    }
    Err("dynamic section (no DT_NULL before the end of its segment)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dyn_bytes(entries: &[(u64, u64)]) -> Vec<u8> {
        use super::super::layout::word_bytes;
        entries
            .iter()
            .flat_map(|&(t, v)| word_bytes(t).into_iter().chain(word_bytes(v)))
            .collect()
    }

    #[test]
    fn pointers_inside_the_object_are_kept_others_get_the_bias() {
        let bytes = dyn_bytes(&[
            (DT_SYMTAB, 0x10),
            (DT_STRTAB, 0x5000),
            (DT_STRSZ, 3),
            (DT_NULL, 0),
        ]);
        let mut memory = Memory::image(&bytes);
        memory.add_file_segment(0, 0, bytes.len() as u64);
        let info = read_dynamic(&memory, 0, 0x100).unwrap();
        assert_eq!(info.symtab, Some(0x10));
        assert_eq!(info.strtab, Some(0x5100));
        assert_eq!(info.strsz, Some(3));
        assert_eq!(info.entries, 3);
    }

    #[test]
    fn truncated_dynamic_section_is_an_error() {
        let bytes = dyn_bytes(&[(DT_SYMTAB, 0x10), (DT_STRSZ, 3)]);
        let mut memory = Memory::image(&bytes);
        memory.add_file_segment(0, 0, bytes.len() as u64 - 3);
        assert!(read_dynamic(&memory, 0, 0).is_err());
        assert!(read_dynamic(&memory, 0x999, 0).is_err());
    }
}
