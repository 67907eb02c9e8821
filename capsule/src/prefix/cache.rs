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

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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

/// `FLAG_ELF_LIBC6 | FLAG_X8664_LIB64`: the only entries x86_64 ld.so accepts.
pub const FLAGS_X86_64: i32 = 0x0303;
/// Set in `hwcap` when the entry lives in a `glibc-hwcaps/` subdirectory (its low 32 bits
/// index the subdirectory names in the extension area).
pub const HWCAP_EXTENSION: u64 = 1 << 62;

/// One entry: a library name and the absolute path (of the host tree) it maps to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Architecture/ABI flags ([`FLAGS_X86_64`] for x86_64 glibc libraries).
    pub flags: i32,
    /// The name looked up: a soname.
    pub name: String,
    /// The file, as an absolute path of the tree the cache was made for.
    pub path: PathBuf,
    /// Hardware capabilities the entry needs; 0 for a plain library directory.
    pub hwcap: u64,
}

/// A parsed cache: its entries in file order (ldconfig sorts them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cache {
    pub entries: Vec<Entry>,
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
    /// The paths (of the host tree) for `name` that x86_64 ld.so would use, best first.
    /// Entries in `glibc-hwcaps/` subdirectories and legacy hwcap entries are left out:
    /// choosing among them needs the CPU checks ld.so makes, and the plain entry of the
    /// same library is always there too.
    pub fn lookup<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Path> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.flags == FLAGS_X86_64 && e.hwcap == 0 && e.name == name)
            .map(|e| e.path.as_path())
    }
}

/// Parse the bytes of an `ld.so.cache` file of either layout.
pub fn parse(bytes: &[u8]) -> Result<Cache, CacheError> {
    if bytes.starts_with(MAGIC_NEW) {
        return parse_new(bytes);
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

fn parse_old_with_new(bytes: &[u8]) -> Result<Cache, CacheError> {
    let nlibs = read_u32(bytes, 12, "old-format header")? as usize;
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
        return parse_new(&bytes[new_start..]);
    }
    let strings = &bytes[entries_end..];
    let mut entries = Vec::with_capacity(nlibs);
    for i in 0..nlibs {
        let at = OLD_HEADER + i * OLD_ENTRY;
        entries.push(read_entry(bytes, at, 0, strings, i)?);
    }
    Ok(Cache { entries })
}

/// `bytes` starts at the new-format header; string offsets count from there.
fn parse_new(bytes: &[u8]) -> Result<Cache, CacheError> {
    if bytes.len() < NEW_HEADER {
        return malformed(format!(
            "truncated: {} bytes, shorter than the {NEW_HEADER}-byte header",
            bytes.len()
        ));
    }
    let nlibs = read_u32(bytes, 20, "header")? as usize;
    match bytes[28] & 3 {
        ENDIAN_BIG => return malformed("made for a big-endian machine"),
        ENDIAN_INVALID => return malformed("its endianness byte is marked invalid"),
        _ => {}
    }
    let fits = nlibs
        .checked_mul(NEW_ENTRY)
        .and_then(|n| n.checked_add(NEW_HEADER))
        .is_some_and(|end| end <= bytes.len());
    if !fits {
        return malformed(format!(
            "truncated: the header announces {nlibs} entries, more than the {} bytes of the file hold",
            bytes.len()
        ));
    }
    let mut entries = Vec::with_capacity(nlibs);
    for i in 0..nlibs {
        let at = NEW_HEADER + i * NEW_ENTRY;
        let hwcap = read_u64(bytes, at + 16, "entry")?;
        entries.push(read_entry(bytes, at, hwcap, bytes, i)?);
    }
    Ok(Cache { entries })
}

/// The `flags, key, value` triple both layouts start their entries with.
fn read_entry(
    bytes: &[u8],
    at: usize,
    hwcap: u64,
    strings: &[u8],
    index: usize,
) -> Result<Entry, CacheError> {
    let flags = read_u32(bytes, at, "entry")? as i32;
    let key = read_u32(bytes, at + 4, "entry")? as usize;
    let value = read_u32(bytes, at + 8, "entry")? as usize;
    let name = read_str(strings, key, index, "name")?;
    let path = read_str(strings, value, index, "path")?;
    Ok(Entry {
        flags,
        name: String::from_utf8_lossy(name).into_owned(),
        path: PathBuf::from(OsStr::from_bytes(path)),
        hwcap,
    })
}

fn read_u32(bytes: &[u8], at: usize, what: &str) -> Result<u32, CacheError> {
    match bytes.get(at..at + 4) {
        Some(b) => Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        None => malformed(format!("truncated {what} at byte {at}")),
    }
}

fn read_u64(bytes: &[u8], at: usize, what: &str) -> Result<u64, CacheError> {
    match bytes.get(at..at + 8) {
        Some(b) => Ok(u64::from_le_bytes(b.try_into().expect("8-byte slice"))),
        None => malformed(format!("truncated {what} at byte {at}")),
    }
}

/// The NUL-terminated string at `offset` of `strings`.
fn read_str<'a>(
    strings: &'a [u8],
    offset: usize,
    index: usize,
    what: &str,
) -> Result<&'a [u8], CacheError> {
    let Some(tail) = strings.get(offset..) else {
        return malformed(format!(
            "entry {index}: its {what} offset {offset} is past the end of the strings ({} bytes)",
            strings.len()
        ));
    };
    match tail.iter().position(|&b| b == 0) {
        Some(end) => Ok(&tail[..end]),
        None => malformed(format!(
            "entry {index}: its {what} at offset {offset} has no terminating NUL"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn new_format_lookup_prefers_plain_x86_64_entries() {
        let bytes = new_cache(&[
            (FLAGS_X86_64, "libz.so.1", "/hw/libz.so.1", HWCAP_EXTENSION),
            (0x0003, "libz.so.1", "/lib32/libz.so.1", 0),
            (FLAGS_X86_64, "libz.so.1", "/usr/lib/libz.so.1", 0),
        ]);
        let cache = parse(&bytes).unwrap();
        assert_eq!(cache.entries.len(), 3);
        let found: Vec<_> = cache.lookup("libz.so.1").collect();
        assert_eq!(found, vec![Path::new("/usr/lib/libz.so.1")]);
        assert_eq!(cache.lookup("libq.so.1").count(), 0);
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
        assert_eq!(cache.entries[0].path, Path::new("/old/a"));
        assert_eq!(cache.lookup("liba.so.1").count(), 1);
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
        let found: Vec<_> = cache.lookup("liba.so.1").collect();
        assert_eq!(found, vec![Path::new("/new/liba.so.1")]);
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
    fn string_offset_out_of_range_is_an_error() {
        let mut bytes = new_cache(&[(FLAGS_X86_64, "liba.so.1", "/a", 0)]);
        let key_at = NEW_HEADER + 4;
        bytes[key_at..key_at + 4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        let err = parse(&bytes).unwrap_err();
        assert!(err.0.contains("past the end"), "{err}");
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
