//! Reader of glibc's `ld.so.cache`.
//!
//! Two layouts exist. The current one (ldconfig since glibc 2.32) starts with the magic
//! `glibc-ld.so.cache` and version `1.1`: a 48-byte header (`nlibs`, `len_strings`, an
//! endianness byte, the offset of an extension area), then `nlibs` 24-byte entries
//! (`flags: i32`, `key: u32`, `value: u32`, `osversion: u32`, `hwcap: u64`); string offsets
//! count from the start of that header. Older ldconfig wrote the libc5-era layout
//! (`ld.so-1.7.0`, `nlibs`, 12-byte entries, strings counted from the end of the entries)
//! with the current layout appended at the next 8-byte boundary; ld.so then uses the
//! appended part, as this reader does. Everything here is bounds-checked: any byte
//! string gives a [`Cache`] or a [`CacheError`], never a panic.

use std::cmp::Ordering;
use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::ops::Deref;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;

use crate::bytes::{u32_at, u64_at};
use crate::machine::Machine;

const MAGIC_OLD: &[u8] = b"ld.so-1.7.0";
const MAGIC_NEW: &[u8] = b"glibc-ld.so.cache1.1";
const OLD_HEADER: usize = 16;
const OLD_ENTRY: usize = 12;
const NEW_HEADER: usize = 48;
const NEW_ENTRY: usize = 24;
/// Alignment of the appended new-format part (its entries hold a `u64`).
const NEW_ALIGN: usize = 8;
/// The endianness byte of the new header: 0 (unset, old ldconfig) or 2 (little) are ours.
const ENDIAN_BIG: u8 = 3;
const ENDIAN_INVALID: u8 = 1;

/// Set in `hwcap` when the entry lives in a `glibc-hwcaps/` subdirectory (its low 32 bits
/// index the subdirectory names in the extension area).
pub const HWCAP_EXTENSION: u64 = 1 << 62;

/// One entry: a library name and the absolute path (of the host tree) it maps to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Architecture/ABI flags ([`Machine::ld_cache_flags`] of the library's machine).
    pub flags: i32,
    /// The name looked up: a soname.
    pub name: String,
    /// The file, as an absolute path of the tree the cache was made for.
    pub path: PathBuf,
    /// Hardware capabilities the entry needs; 0 for a plain library directory.
    pub hwcap: u64,
}

/// A parsed cache. Like ld.so, it keeps the file's bytes and binary-searches them: no
/// string is copied or indexed when it is opened, which happens on every namespace's
/// first load. Every entry was checked at parse time, so lookups cannot fail.
#[derive(Clone, Debug, Default)]
pub struct Cache {
    bytes: Bytes,
    /// Where the entry table starts, how many entries, and the size of one.
    table: usize,
    count: usize,
    entry_size: usize,
    /// Whether entries carry a `hwcap` (the new layout).
    has_hwcap: bool,
    /// Where string offsets count from.
    strings: usize,
    /// The offset (from `strings`) of the file's last NUL: a string that starts after it
    /// runs off the end of the file.
    last_nul: Option<usize>,
}

/// The bytes of a cache: a copy, or the file mapped read-only as ld.so maps it (a
/// lookup touches a few of its pages, and nothing is copied). ldconfig replaces the file
/// by renaming a new one over it, so a mapped cache never changes under a reader.
#[derive(Clone, Debug, Default)]
pub enum Bytes {
    #[default]
    Empty,
    Owned(Vec<u8>),
    Mapped(Arc<Mapping>),
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Empty => &[],
            Bytes::Owned(bytes) => bytes,
            Bytes::Mapped(mapping) => mapping.bytes(),
        }
    }
}

/// A read-only private mapping of a whole file, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    start: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this value alone.
unsafe impl Send for Mapping {}
// SAFETY: as above: shared readers only ever read it.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn bytes(&self) -> &[u8] {
        // SAFETY: start..start+len is a live PROT_READ mapping for as long as self lives.
        unsafe { std::slice::from_raw_parts(self.start.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping this value owns; no borrow of it outlives self.
        unsafe { libc::munmap(self.start.as_ptr().cast(), self.len) };
    }
}

/// The whole of `file` (an `ld.so.cache`), mapped.
/// `file` (of `len` bytes) mapped read-only.
pub fn map(file: &File, len: u64) -> std::io::Result<Bytes> {
    let len = usize::try_from(len).map_err(std::io::Error::other)?;
    if len == 0 {
        return Ok(Bytes::Empty);
    }
    // SAFETY: a fresh private read-only mapping of an open file; the kernel picks the
    // address.
    let start = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    if start == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let start = NonNull::new(start.cast()).ok_or_else(std::io::Error::last_os_error)?;
    Ok(Bytes::Mapped(Arc::new(Mapping { start, len })))
}

/// What is wrong with a cache file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheError(pub String);

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CacheError {}

fn malformed<T>(reason: impl Into<String>) -> Result<T, CacheError> {
    Err(CacheError(reason.into()))
}

impl Cache {
    /// The paths (of the host tree) for `name` that `machine`'s ld.so would use, best
    /// first: entries of other machines (an i386 and an x86_64 `libz.so.1` share a cache)
    /// are passed over by their flags, as ld.so passes them over.
    /// Entries in `glibc-hwcaps/` subdirectories and legacy hwcap entries are left out:
    /// choosing among them needs the CPU checks ld.so makes, and the plain entry of the
    /// same library is always there too.
    ///
    /// ldconfig sorts the entries by [`libcmp`], descending; ld.so relies on that with a
    /// binary search, and so does this (an unsorted cache misleads both alike).
    pub fn lookup<'a>(
        &'a self,
        name: &'a str,
        machine: Machine,
    ) -> impl Iterator<Item = &'a Path> + 'a {
        let name = name.as_bytes();
        (self.first_equal(name)..self.count)
            .map(|i| self.entry(i))
            .take_while(move |e| libcmp(self.string(e.key), name).is_eq())
            .filter(move |e| {
                machine.accepts_cache_flags(e.flags)
                    && e.hwcap == 0
                    && self.strings_in_file(e)
                    && self.string(e.key) == name
            })
            .map(|e| Path::new(OsStr::from_bytes(self.string(e.value))))
    }

    /// The first entry whose name compares equal to `name`, or `count` if none does.
    fn first_equal(&self, name: &[u8]) -> usize {
        // Descending order: the entries greater than `name` come first.
        let (mut low, mut high) = (0, self.count);
        while low < high {
            let middle = low + (high - low) / 2;
            if libcmp(self.string(self.entry(middle).key), name).is_gt() {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }

    /// Every entry whose strings lie in the file, in file order.
    pub fn entries(&self) -> Vec<Entry> {
        (0..self.count)
            .map(|i| self.entry(i))
            .filter(|e| self.strings_in_file(e))
            .map(|e| Entry {
                flags: e.flags,
                name: String::from_utf8_lossy(self.string(e.key)).into_owned(),
                path: PathBuf::from(OsStr::from_bytes(self.string(e.value))),
                hwcap: e.hwcap,
            })
            .collect()
    }

    /// Whether both strings of `entry` start inside the file and end with a NUL there. ld.so
    /// checks each entry it uses the same way (`_dl_cache_verify_ptr`) and passes over a
    /// bad one; checking all of them up front would cost a pass over the whole table.
    fn strings_in_file(&self, entry: &RawEntry) -> bool {
        let area = self.bytes.len().saturating_sub(self.strings);
        [entry.key, entry.value]
            .iter()
            .all(|&offset| offset < area && self.last_nul.is_some_and(|nul| offset <= nul))
    }

    /// Entry `i` (< count); `parse` checked that the table holds it, so no field reads
    /// past the file (one would read as 0).
    fn entry(&self, i: usize) -> RawEntry {
        let at = self.table + i * self.entry_size;
        let u32_at = |field| u32_at(&self.bytes, at + field).unwrap_or(0);
        RawEntry {
            flags: u32_at(0) as i32,
            key: u32_at(4) as usize,
            value: u32_at(8) as usize,
            hwcap: if self.has_hwcap {
                u64_at(&self.bytes, at + 16).unwrap_or(0)
            } else {
                0
            },
        }
    }

    /// The string at `offset` of the string area, without its NUL; empty outside the file
    /// (see `strings_in_file`).
    fn string(&self, offset: usize) -> &[u8] {
        let tail = self
            .bytes
            .get(self.strings.saturating_add(offset)..)
            .unwrap_or_default();
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        &tail[..end]
    }
}

/// One entry's fields.
struct RawEntry {
    flags: i32,
    key: usize,
    value: usize,
    hwcap: u64,
}

/// ld.so's order of cache names (`_dl_cache_libcmp`): bytes compare as bytes, except that
/// runs of digits compare as numbers and a digit sorts after any other byte.
pub fn libcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() {
        let (x, y) = (a[i], b.get(j).copied().unwrap_or(0));
        match (x.is_ascii_digit(), y.is_ascii_digit()) {
            (true, true) => {
                let (n, next_i) = number(a, i);
                let (m, next_j) = number(b, j);
                if n != m {
                    return n.cmp(&m);
                }
                (i, j) = (next_i, next_j);
            }
            (true, false) => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            (false, false) if x != y => return x.cmp(&y),
            (false, false) => (i, j) = (i + 1, j + 1),
        }
    }
    0u8.cmp(&b.get(j).copied().unwrap_or(0))
}

/// The number of the digit run at `at`, and where the run ends. Like ld.so's, it wraps
/// on absurdly long runs rather than fail.
fn number(s: &[u8], at: usize) -> (u64, usize) {
    let end = s[at..]
        .iter()
        .position(|c| !c.is_ascii_digit())
        .map_or(s.len(), |n| at + n);
    let value = s[at..end].iter().fold(0u64, |v, &c| {
        v.wrapping_mul(10).wrapping_add(u64::from(c - b'0'))
    });
    (value, end)
}

/// Parse the bytes of an `ld.so.cache` file of either layout.
pub fn parse(bytes: &[u8]) -> Result<Cache, CacheError> {
    parse_bytes(Bytes::Owned(bytes.to_vec()))
}

/// [`parse`], keeping `bytes` (a mapped file) rather than a copy.
pub fn parse_bytes(bytes: Bytes) -> Result<Cache, CacheError> {
    if bytes.starts_with(MAGIC_NEW) {
        return parse_new(bytes, 0);
    }
    if bytes.starts_with(MAGIC_OLD) {
        return parse_old_with_new(bytes);
    }
    malformed(format!(
        "not an ld.so.cache: the file starts with neither {:?} nor {:?}",
        String::from_utf8_lossy(MAGIC_NEW),
        String::from_utf8_lossy(MAGIC_OLD)
    ))
}

fn parse_old_with_new(bytes: Bytes) -> Result<Cache, CacheError> {
    let nlibs = read_u32(&bytes, 12, "old-format header")? as usize;
    let entries_end = nlibs
        .checked_mul(OLD_ENTRY)
        .and_then(|n| n.checked_add(OLD_HEADER))
        .filter(|&end| end <= bytes.len());
    let Some(entries_end) = entries_end else {
        return malformed(format!(
            "truncated: the old-format header announces {nlibs} entries, more than the {} bytes of the file hold",
            bytes.len()
        ));
    };
    let new_start = entries_end.next_multiple_of(NEW_ALIGN);
    if bytes.len() >= new_start && bytes[new_start..].starts_with(MAGIC_NEW) {
        return parse_new(bytes, new_start);
    }
    Ok(with_strings_end(Cache {
        bytes,
        table: OLD_HEADER,
        count: nlibs,
        entry_size: OLD_ENTRY,
        has_hwcap: false,
        strings: entries_end,
        last_nul: None,
    }))
}

/// The new-format header is at `start` of `bytes`; string offsets count from there.
fn parse_new(bytes: Bytes, start: usize) -> Result<Cache, CacheError> {
    let part = &bytes[start..];
    if part.len() < NEW_HEADER {
        return malformed(format!(
            "truncated: {} bytes, shorter than the {NEW_HEADER}-byte header",
            part.len()
        ));
    }
    let nlibs = read_u32(part, 20, "header")? as usize;
    match part[28] & 3 {
        ENDIAN_BIG => return malformed("made for a big-endian machine"),
        ENDIAN_INVALID => return malformed("its endianness byte is marked invalid"),
        _ => {}
    }
    let fits = nlibs
        .checked_mul(NEW_ENTRY)
        .and_then(|n| n.checked_add(NEW_HEADER))
        .is_some_and(|end| end <= part.len());
    if !fits {
        return malformed(format!(
            "truncated: the header announces {nlibs} entries, more than the {} bytes of the file hold",
            part.len()
        ));
    }
    // The string table follows the entries; its size in the header finds a cut file at
    // once, where checking every entry's strings would cost a pass over the table.
    let len_strings = read_u32(part, 24, "header")? as usize;
    let strings_end = (NEW_HEADER + nlibs * NEW_ENTRY).checked_add(len_strings);
    if strings_end.is_none_or(|end| end > part.len()) {
        return malformed(format!(
            "truncated: the header announces {nlibs} entries and {len_strings} bytes of strings, more than the {} bytes of the file hold",
            part.len()
        ));
    }
    Ok(with_strings_end(Cache {
        bytes,
        table: start + NEW_HEADER,
        count: nlibs,
        entry_size: NEW_ENTRY,
        has_hwcap: true,
        strings: start,
        last_nul: None,
    }))
}

/// `cache` with the end of its strings found: where the file's last NUL is. A string ends
/// in the file exactly when it starts at or before that NUL, so checking an entry as it is
/// used costs O(1) (see `strings_in_file`).
fn with_strings_end(mut cache: Cache) -> Cache {
    cache.last_nul = cache.bytes[cache.strings.min(cache.bytes.len())..]
        .iter()
        .rposition(|&b| b == 0);
    cache
}

fn read_u32(bytes: &[u8], at: usize, what: &str) -> Result<u32, CacheError> {
    match u32_at(bytes, at) {
        Some(value) => Ok(value),
        None => malformed(format!("truncated {what} at byte {at}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS_X86_64: i32 = Machine::X86_64.ld_cache_flags();
    const X86_64: Machine = Machine::X86_64;

    /// A new-format cache holding `entries` (flags, name, path, hwcap).
    fn new_cache(entries: &[(i32, &str, &str, u64)]) -> Vec<u8> {
        let strings_at = NEW_HEADER + entries.len() * NEW_ENTRY;
        let mut strings = Vec::new();
        let mut table = Vec::new();
        for &(flags, name, path, hwcap) in entries {
            let key = strings_at + strings.len();
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
            let value = strings_at + strings.len();
            strings.extend_from_slice(path.as_bytes());
            strings.push(0);
            table.extend_from_slice(&flags.to_le_bytes());
            table.extend_from_slice(&(key as u32).to_le_bytes());
            table.extend_from_slice(&(value as u32).to_le_bytes());
            table.extend_from_slice(&0u32.to_le_bytes());
            table.extend_from_slice(&hwcap.to_le_bytes());
        }
        let mut out = MAGIC_NEW.to_vec();
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        out.extend_from_slice(&[2, 0, 0, 0]);
        out.extend_from_slice(&[0; 16]);
        assert_eq!(out.len(), NEW_HEADER);
        out.extend(table);
        out.extend(strings);
        out
    }

    #[test]
    fn new_format_lookup_takes_the_plain_entries_of_the_machine() {
        let bytes = new_cache(&[
            (FLAGS_X86_64, "libz.so.1", "/hw/libz.so.1", HWCAP_EXTENSION),
            (0x0003, "libz.so.1", "/lib32/libz.so.1", 0),
            (0x0001, "libz.so.1", "/old/libz.so.1", 0),
            (FLAGS_X86_64, "libz.so.1", "/usr/lib/libz.so.1", 0),
            (0x0a03, "libz.so.1", "/arm/libz.so.1", 0),
        ]);
        let cache = parse(&bytes).unwrap();
        assert_eq!(cache.entries().len(), 5);
        let found = |machine| cache.lookup("libz.so.1", machine).collect::<Vec<_>>();
        assert_eq!(found(X86_64), [Path::new("/usr/lib/libz.so.1")]);
        // i386's ld.so also takes FLAG_ELF entries (glibc's generic `_dl_cache_check_flags`).
        assert_eq!(
            found(Machine::X86),
            [Path::new("/lib32/libz.so.1"), Path::new("/old/libz.so.1")]
        );
        assert_eq!(found(Machine::Aarch64), [Path::new("/arm/libz.so.1")]);
        assert_eq!(cache.lookup("libq.so.1", X86_64).count(), 0);
    }

    /// An old-format header and one entry naming `liba.so.1`, strings not included.
    fn old_header() -> Vec<u8> {
        let mut bytes = MAGIC_OLD.to_vec();
        bytes.push(0);
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&FLAGS_X86_64.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&10u32.to_le_bytes());
        bytes
    }

    #[test]
    fn old_format_alone() {
        let mut bytes = old_header();
        bytes.extend_from_slice(b"liba.so.1\0/old/a\0");
        let cache = parse(&bytes).unwrap();
        assert_eq!(cache.entries()[0].path, Path::new("/old/a"));
        assert_eq!(cache.lookup("liba.so.1", X86_64).count(), 1);
    }

    #[test]
    fn old_format_with_new_appended_uses_the_new_part() {
        // ldconfig's compat layout: the new part starts at the first 8-byte boundary
        // after the old entries; the strings follow the new entries.
        let mut bytes = old_header();
        bytes.resize(bytes.len().next_multiple_of(NEW_ALIGN), 0);
        bytes.extend(new_cache(&[(
            FLAGS_X86_64,
            "liba.so.1",
            "/new/liba.so.1",
            0,
        )]));
        let cache = parse(&bytes).unwrap();
        let found: Vec<_> = cache.lookup("liba.so.1", X86_64).collect();
        assert_eq!(found, vec![Path::new("/new/liba.so.1")]);
    }

    #[test]
    fn lookup_keeps_file_order_among_equal_names() {
        // In ldconfig's order: descending by libcmp.
        let bytes = new_cache(&[
            (FLAGS_X86_64, "libc.so.6", "/c", 0),
            (FLAGS_X86_64, "libb.so.1", "/first/libb.so.1", 0),
            (FLAGS_X86_64, "libb.so.1", "/hw/libb.so.1", HWCAP_EXTENSION),
            (FLAGS_X86_64, "libb.so.1", "/second/libb.so.1", 0),
            (FLAGS_X86_64, "liba.so.1", "/a", 0),
        ]);
        let cache = parse(&bytes).unwrap();
        let found: Vec<_> = cache.lookup("libb.so.1", X86_64).collect();
        assert_eq!(
            found,
            vec![
                Path::new("/first/libb.so.1"),
                Path::new("/second/libb.so.1")
            ]
        );
        assert_eq!(cache.entries()[2].hwcap, HWCAP_EXTENSION);
        assert_eq!(cache.lookup("libb.so", X86_64).count(), 0);
        assert_eq!(cache.lookup("liba.so.1", X86_64).count(), 1);
        assert_eq!(cache.lookup("libc.so.6", X86_64).count(), 1);
        assert_eq!(cache.lookup("libd.so.1", X86_64).count(), 0);
    }

    #[test]
    fn libcmp_compares_digit_runs_as_numbers() {
        let cmp = |a: &str, b: &str| libcmp(a.as_bytes(), b.as_bytes());
        assert!(cmp("libx.so.10", "libx.so.9").is_gt());
        assert!(cmp("libx.so.1", "libx.so.1").is_eq());
        assert!(cmp("libx.so.1", "libx.so.1.2").is_lt());
        assert!(
            cmp("libx1.so", "libxa.so").is_gt(),
            "a digit sorts after a letter"
        );
        assert!(cmp("liba.so", "libb.so").is_lt());
        assert!(cmp("", "a").is_lt());
    }

    #[test]
    fn every_usable_entry_of_the_system_cache_is_found() {
        // The binary search relies on ldconfig's order: check it against a real cache.
        let bytes = std::fs::read("/etc/ld.so.cache")
            .expect("this test needs the system's /etc/ld.so.cache (run ldconfig)");
        let cache = parse(&bytes).unwrap();
        let entries = cache.entries();
        assert!(entries.len() > 10, "only {} entries", entries.len());
        for machine in Machine::ALL {
            for entry in entries
                .iter()
                .filter(|e| e.flags == machine.ld_cache_flags() && e.hwcap == 0)
            {
                assert!(
                    cache.lookup(&entry.name, machine).any(|p| p == entry.path),
                    "{} => {:?} not found for {machine:?}",
                    entry.name,
                    entry.path
                );
            }
        }
        // The i386 libraries (libc6:i386, which the tests need) are in the cache beside the
        // x86_64 ones (and x32's, gcc-multilib's), and each machine's lookup takes its own.
        let i386: Vec<_> = cache.lookup("libc.so.6", Machine::X86).collect();
        let x86_64: Vec<_> = cache.lookup("libc.so.6", X86_64).collect();
        assert!(
            i386.first()
                .is_some_and(|p| p.to_string_lossy().contains("i386-linux-gnu"))
                && i386.iter().all(|p| !p.to_string_lossy().contains("x86_64")),
            "i386 libc.so.6 in /etc/ld.so.cache (apt-get install libc6:i386): {i386:?}"
        );
        assert!(
            x86_64
                .iter()
                .all(|p| p.to_string_lossy().contains("x86_64-linux-gnu"))
                && !x86_64.is_empty(),
            "{x86_64:?}"
        );
    }

    #[test]
    fn bad_magic_is_an_error() {
        let err = parse(b"hello world, this is not a cache at all....").unwrap_err();
        assert!(err.0.contains("not an ld.so.cache"), "{err}");
        assert!(parse(b"").is_err());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = new_cache(&[
            (FLAGS_X86_64, "liba.so.1", "/a", 0),
            (FLAGS_X86_64, "libb.so.1", "/b", 0),
        ]);
        for len in 0..bytes.len() {
            assert!(
                parse(&bytes[..len]).is_err(),
                "prefix of {len} bytes parsed"
            );
        }
        assert!(parse(&bytes).is_ok());
    }

    #[test]
    fn huge_entry_count_is_an_error() {
        let mut bytes = new_cache(&[]);
        bytes[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = parse(&bytes).unwrap_err();
        assert!(err.0.contains("truncated"), "{err}");
    }

    #[test]
    fn an_entry_whose_strings_leave_the_file_is_passed_over() {
        let entries = [
            (FLAGS_X86_64, "liba.so.1", "/a", 0),
            (FLAGS_X86_64, "liba.so.1", "/b", 0),
        ];
        let damaged = |field: usize| {
            let mut bytes = new_cache(&entries);
            let at = NEW_HEADER + field;
            bytes[at..at + 4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
            parse(&bytes).expect("parsed: entries are checked as they are used")
        };
        // The path of the first entry lies past the end: the second answers.
        let cache = damaged(8);
        assert_eq!(
            cache.lookup("liba.so.1", X86_64).collect::<Vec<_>>(),
            ["/b"]
        );
        assert_eq!(cache.entries().len(), 1);
        // Its name does: the search may stop there (as ld.so's may), but never answers
        // with the bad entry.
        let cache = damaged(4);
        assert!(cache
            .lookup("liba.so.1", X86_64)
            .all(|p| p == Path::new("/b")));
        assert_eq!(cache.entries().len(), 1);
        // The last string ("/b") has lost its NUL: only "/a" is whole.
        let mut bytes = new_cache(&entries);
        let last = bytes.len() - 1;
        bytes[last] = b'x';
        let cache = parse(&bytes).unwrap();
        assert_eq!(
            cache.lookup("liba.so.1", X86_64).collect::<Vec<_>>(),
            ["/a"]
        );
    }

    #[test]
    fn big_endian_cache_is_an_error() {
        let mut bytes = new_cache(&[]);
        bytes[28] = ENDIAN_BIG;
        assert!(parse(&bytes).unwrap_err().0.contains("big-endian"));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap stand-in for the fuzzer: mutate a valid cache byte by byte.
        let bytes = new_cache(&[(FLAGS_X86_64, "liba.so.1", "/a", 0)]);
        for i in 0..bytes.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = bytes.clone();
                b[i] = v;
                let _ = parse(&b);
            }
        }
    }
}
