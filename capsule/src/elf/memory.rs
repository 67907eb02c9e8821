//! The byte source every view reads through: either the live process (an object's mapped
//! PT_LOAD segments) or an ELF file image held in a slice. Every read is checked against
//! the source's ranges, so a malformed table yields `None` (turned into
//! `Error::Malformed` by the caller) instead of touching unmapped memory.

use std::marker::PhantomData;

use crate::bytes::{u16_at, u32_at};

/// One readable range of the address space the views use: for a live object the
/// biased addresses of a PT_LOAD segment, for a file image its unbiased virtual addresses.
#[derive(Clone, Copy, Debug)]
struct Range {
    start: usize,
    /// Bytes readable from `start` on. For a file image this is `p_filesz`: the zero-filled
    /// tail (`.bss`) has no bytes in the file, and no table the views read lives there.
    len: usize,
    /// Offset of `start` in the file image; unused for live memory.
    file_offset: usize,
}

#[derive(Clone, Copy, Debug)]
enum Source<'a> {
    Live(PhantomData<&'a [u8]>),
    Image(&'a [u8]),
}

/// Readable memory of one object, valid for `'a`.
#[derive(Clone, Debug)]
pub(crate) struct Memory<'a> {
    source: Source<'a>,
    ranges: Vec<Range>,
}

impl<'a> Memory<'a> {
    /// Memory of a loaded object whose segments occupy `ranges` (`(address, length)`).
    ///
    /// # Safety
    /// Every range must stay mapped and readable for `'a`, and no byte of a slice returned
    /// by [`Memory::bytes`] may be written while that slice is alive. The views only slice
    /// tables that glibc finished writing at load time; relocation slots, which patching
    /// writes, are never sliced (the patcher reads them with atomic loads).
    pub(crate) unsafe fn live(ranges: impl IntoIterator<Item = (usize, usize)>) -> Memory<'a> {
        Memory {
            source: Source::Live(PhantomData),
            ranges: ranges
                .into_iter()
                .filter(|&(start, len)| start.checked_add(len).is_some())
                .map(|(start, len)| Range {
                    start,
                    len,
                    file_offset: 0,
                })
                .collect(),
        }
    }

    /// An empty file image source; add segments with [`Memory::add_file_segment`].
    pub(crate) fn image(bytes: &'a [u8]) -> Memory<'a> {
        Memory {
            source: Source::Image(bytes),
            ranges: Vec::new(),
        }
    }

    /// Map virtual addresses `vaddr .. vaddr + filesz` to file offsets `offset ..`. Ranges
    /// reaching past the end of the image are cut short, so they can never read past it.
    pub(crate) fn add_file_segment(&mut self, vaddr: u64, offset: u64, filesz: u64) {
        let Source::Image(bytes) = self.source else {
            return;
        };
        let (Ok(start), Ok(offset), Ok(filesz)) = (
            usize::try_from(vaddr),
            usize::try_from(offset),
            usize::try_from(filesz),
        ) else {
            return;
        };
        let available = bytes.len().saturating_sub(offset);
        let len = filesz.min(available);
        if len > 0 && start.checked_add(len).is_some() {
            self.ranges.push(Range {
                start,
                len,
                file_offset: offset,
            });
        }
    }

    /// Whether this is the live process (as opposed to a file image).
    pub(crate) fn is_live(&self) -> bool {
        matches!(self.source, Source::Live(_))
    }

    /// Whether `address` lies inside one of the ranges.
    pub(crate) fn contains(&self, address: usize) -> bool {
        self.bytes(address, 1).is_some()
    }

    /// `len` bytes at `address`, or `None` unless they all lie within one range.
    pub(crate) fn bytes(&self, address: usize, len: usize) -> Option<&'a [u8]> {
        let end = address.checked_add(len)?;
        let range = self
            .ranges
            .iter()
            .find(|r| address >= r.start && end <= r.start + r.len)?;
        self.bytes_in(range, address, len)
    }

    /// The bytes of `len`-byte records from `address` on, one at a time, as long as they
    /// lie in the range that holds the first: [`Memory::bytes`] with one range search for
    /// them all (a live view never holds a slice of more than one record).
    pub(crate) fn records(
        &self,
        address: usize,
        len: usize,
    ) -> impl Iterator<Item = &'a [u8]> + '_ {
        let range = self
            .ranges
            .iter()
            .find(|r| address >= r.start && address < r.start + r.len);
        let count = range.map_or(0, |r| (r.start + r.len - address) / len.max(1));
        (0..count).map_while(move |i| self.bytes_in(range?, address + i * len, len))
    }

    /// `len` bytes at `address`, which the caller found to lie in `range`.
    fn bytes_in(&self, range: &Range, address: usize, len: usize) -> Option<&'a [u8]> {
        let offset = address - range.start;
        match self.source {
            Source::Image(bytes) => bytes.get(range.file_offset + offset..)?.get(..len),
            // SAFETY: the range lies inside a segment that the caller of `live` promised
            // stays mapped, readable and unmodified for 'a.
            Source::Live(_) => {
                Some(unsafe { std::slice::from_raw_parts(address as *const u8, len) })
            }
        }
    }

    pub(crate) fn u16(&self, address: usize) -> Option<u16> {
        u16_at(self.bytes(address, 2)?, 0)
    }

    pub(crate) fn u32(&self, address: usize) -> Option<u32> {
        u32_at(self.bytes(address, 4)?, 0)
    }

    /// The u16 at `base + offset`, guarding the addition as well as the read.
    pub(crate) fn u16_at(&self, base: usize, offset: usize) -> Option<u16> {
        self.u16(base.checked_add(offset)?)
    }

    /// The u32 at `base + offset`, guarding the addition as well as the read.
    pub(crate) fn u32_at(&self, base: usize, offset: usize) -> Option<u32> {
        self.u32(base.checked_add(offset)?)
    }
}

/// The NUL-terminated string starting at `offset` of `table`, if it ends inside the table.
pub(crate) fn c_str_at(table: &[u8], offset: usize) -> Option<&[u8]> {
    let tail = table.get(offset..)?;
    let end = tail.iter().position(|&b| b == 0)?;
    Some(&tail[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_reads_stay_inside_the_file_backed_part() {
        let bytes: Vec<u8> = (0..32).collect();
        let mut memory = Memory::image(&bytes);
        memory.add_file_segment(0x1000, 8, 16);
        assert_eq!(memory.bytes(0x1000, 2), Some(&[8u8, 9][..]));
        assert_eq!(
            memory.u32(0x100c),
            Some(u32::from_le_bytes([20, 21, 22, 23]))
        );
        assert_eq!(memory.u32(0x100d), None, "crosses the end of the segment");
        assert_eq!(memory.bytes(usize::MAX, 2), None, "address overflow");
        assert_eq!(memory.bytes(0xfff, 1), None);
    }

    #[test]
    fn image_segments_past_the_end_of_file_are_cut() {
        let bytes = [1u8; 10];
        let mut memory = Memory::image(&bytes);
        memory.add_file_segment(0, 4, 100);
        memory.add_file_segment(0x100, 50, 10);
        assert!(memory.bytes(0, 6).is_some());
        assert!(memory.bytes(0, 7).is_none());
        assert!(!memory.contains(0x100));
    }

    #[test]
    fn c_strings_must_end_inside_the_table() {
        assert_eq!(c_str_at(b"ab\0cd", 0), Some(&b"ab"[..]));
        assert_eq!(c_str_at(b"ab\0cd", 3), None);
        assert_eq!(c_str_at(b"ab\0cd", 9), None);
    }
}
