//! Program headers: the PT_LOAD ranges with their protections, PT_DYNAMIC, PT_GNU_RELRO and
//! PT_TLS, read from a raw program header table.

use std::ops::Range;

use super::layout::RawPhdr;
pub(crate) use super::layout::PHDR_SIZE;

pub(crate) const PT_LOAD: u32 = 1;
pub(crate) const PT_DYNAMIC: u32 = 2;
pub(crate) const PT_NOTE: u32 = 4;
pub(crate) const PT_TLS: u32 = 7;
pub(crate) const PT_GNU_RELRO: u32 = 0x6474_e552;

/// The `p_flags` of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentFlags {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

impl SegmentFlags {
    fn from_p_flags(p_flags: u32) -> SegmentFlags {
        SegmentFlags {
            execute: p_flags & 1 != 0,
            write: p_flags & 2 != 0,
            read: p_flags & 4 != 0,
        }
    }

    /// The `PROT_*` bits glibc maps a segment with.
    pub fn to_prot(self) -> libc::c_int {
        let mut prot = libc::PROT_NONE;
        if self.read {
            prot |= libc::PROT_READ;
        }
        if self.write {
            prot |= libc::PROT_WRITE;
        }
        if self.execute {
            prot |= libc::PROT_EXEC;
        }
        prot
    }
}

/// One program header, with its virtual address already biased (for a live object: where it
/// lies in this process; for a file image: its `p_vaddr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// `p_type` (`PT_LOAD` = 1, `PT_DYNAMIC` = 2, `PT_TLS` = 7, ...).
    pub kind: u32,
    pub flags: SegmentFlags,
    /// `p_vaddr` plus the load bias.
    pub address: usize,
    /// `p_memsz`.
    pub mem_size: usize,
    /// `p_offset`.
    pub file_offset: u64,
    /// `p_filesz`.
    pub file_size: u64,
}

impl Segment {
    /// The addresses the segment covers in memory.
    pub fn range(&self) -> Range<usize> {
        self.address..self.address.saturating_add(self.mem_size)
    }

    /// Whether this is the thread-local storage template (PT_TLS).
    pub fn is_tls(&self) -> bool {
        self.kind == PT_TLS
    }
}

/// Decode a program header table (`count` entries of `PHDR_SIZE` bytes) and add `bias` to
/// every address. `None` if the table is shorter than `count` entries or an address
/// overflows.
pub(crate) fn parse_program_headers(
    table: &[u8],
    count: usize,
    bias: usize,
) -> Option<Vec<Segment>> {
    let table = table.get(..count.checked_mul(PHDR_SIZE)?)?;
    table
        .chunks_exact(PHDR_SIZE)
        .map(|p| Segment::from_raw(RawPhdr::parse(p)?, bias))
        .collect()
}

impl Segment {
    /// The segment a program header describes, `bias` added; `None` if an address
    /// overflows.
    pub(crate) fn from_raw(p: RawPhdr, bias: usize) -> Option<Segment> {
        Some(Segment {
            kind: p.kind,
            flags: SegmentFlags::from_p_flags(p.flags),
            file_offset: p.offset,
            address: usize::try_from(p.vaddr).ok()?.checked_add(bias)?,
            file_size: p.filesz,
            mem_size: usize::try_from(p.memsz).ok()?,
        })
    }
}

/// The pages glibc makes read-only after relocation: like `_dl_protect_relro`, the start is
/// rounded down and the end rounded down to a page boundary (the partial last page stays
/// writable because it shares the page with ordinary data).
pub(crate) fn relro_pages(segments: &[Segment], page_size: usize) -> Option<Range<usize>> {
    let relro = segments.iter().find(|s| s.kind == PT_GNU_RELRO)?;
    let start = relro.address & !(page_size - 1);
    let end = relro.address.checked_add(relro.mem_size)? & !(page_size - 1);
    (start < end).then_some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phdr(kind: u32, flags: u32, vaddr: u64, memsz: u64) -> Vec<u8> {
        RawPhdr {
            kind,
            flags,
            offset: 0,
            vaddr,
            filesz: memsz,
            memsz,
            align: 0x1000,
        }
        .to_bytes()
    }

    #[test]
    fn relro_is_rounded_down_at_both_ends() {
        let mut table = phdr(PT_LOAD, 6, 0x3000, 0x2000);
        table.extend(phdr(PT_GNU_RELRO, 4, 0x3010, 0x1ff0 - 0x10));
        let segments = parse_program_headers(&table, 2, 0x10_0000).unwrap();
        assert_eq!(segments[0].range(), 0x10_3000..0x10_5000);
        assert!(segments[0].flags.write && !segments[0].flags.execute);
        assert_eq!(relro_pages(&segments, 0x1000), Some(0x10_3000..0x10_4000));
    }

    #[test]
    fn short_tables_and_overflowing_addresses_are_rejected() {
        let table = phdr(PT_LOAD, 5, usize::MAX as u64 - 1, 1);
        assert!(parse_program_headers(&table[..PHDR_SIZE - 1], 1, 0).is_none());
        assert!(parse_program_headers(&table, 1, 0x1000).is_none());
    }
}
