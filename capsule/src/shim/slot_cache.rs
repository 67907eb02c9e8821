//! A shim's slot table, remembered between runs: for each function, its offset in the
//! host's library, so that a later load fills the slots without looking a symbol up
//! (libGL's 3,470 lookups were most of its shim's start-up; see BENCHMARKS.md).
//!
//! Kept in the cache directory as `slots-SONAME-HASH.bin`, HASH of the shim's and the host
//! library's paths; the file holds a key of both paths and identities, so a rebuilt shim or
//! an upgraded library does not use it, and replaces it. A file is used only if `disk_cache` trusts it, its header and size are right and
//! every offset lies in an executable segment of the loaded library; otherwise the slots
//! are looked up as on a first run and the file is written again.

use std::path::{Path, PathBuf};

use crate::disk_cache;
use crate::elf::Object;
use crate::fnv::fnv1a;
use crate::prefix::fs::Identity;

const MAGIC: &[u8; 8] = b"CPSLOTS1";
const HEADER: usize = 24;
/// An entry for a function that is not the library's own plain function (an IFUNC, one
/// the interposer answers, one a dependency defines, one the host lacks): looked up at
/// every load.
pub(crate) const LOOK_UP: u64 = u64::MAX;

/// Where the table of one (shim, host library) pair is kept, and the key it is filed by.
pub(super) struct Entry {
    dir: PathBuf,
    path: PathBuf,
    key: u64,
}

impl Entry {
    /// The entry for the shim at `shim` forwarding to the host library at `library`;
    /// `None` when there is no cache directory or a file cannot be looked at.
    pub fn new(soname: &str, shim: &Path, library: &Path) -> Option<Entry> {
        let dir = disk_cache::cache_dir().ok()?;
        let mut paths = Vec::new();
        let mut described = Vec::new();
        for file in [shim, library] {
            let id = Identity::of(&std::fs::metadata(file).ok()?);
            paths.extend_from_slice(file.as_os_str().as_encoded_bytes());
            paths.push(0);
            described.extend_from_slice(&id.to_le_bytes());
        }
        // Named by the paths, so that a rebuilt shim or an upgraded library replaces its
        // file; keyed by the paths and identities, so that it is not used for them.
        let path = dir.join(format!("slots-{soname}-{:016x}.bin", fnv1a(&paths)));
        described.extend_from_slice(&paths);
        let key = fnv1a(&described);
        Some(Entry { dir, path, key })
    }

    /// The remembered offsets of `functions` functions ([`LOOK_UP`]: look it up), if the
    /// file is there, sound, and fits `real` (the loaded library): every other offset is
    /// in its code. Read where they lie in the file's bytes, not copied.
    pub fn recall(&self, functions: usize, real: &Object<'_>) -> Option<Remembered> {
        let bytes = disk_cache::read_owned(&self.path)?;
        // The library's code as offsets from its load bias (one range, two at most).
        let code: Vec<std::ops::Range<u64>> = real
            .load_segments()
            .filter(|s| s.flags.execute)
            .filter_map(|s| {
                let range = s.range();
                let start = range.start.checked_sub(real.bias())?;
                Some(start as u64..(start + (range.end - range.start)) as u64)
            })
            .collect();
        let checked = parse(&bytes, self.key, functions).and_then(|offsets| {
            match offsets
                .iter()
                .find(|&offset| offset != LOOK_UP && !code.iter().any(|r| r.contains(&offset)))
            {
                Some(offset) => Err(format!("offset {offset:#x} is not in the library's code")),
                None => Ok(()),
            }
        });
        match checked {
            Ok(()) => Some(Remembered { bytes }),
            Err(why) => {
                crate::debug!(Libs, "{}: not used: {why}", self.path.display());
                None
            }
        }
    }

    /// Remember `offsets` (one per function, `None` where it is looked up).
    pub fn remember(&self, offsets: &[Option<usize>]) {
        let words: Vec<u64> = offsets
            .iter()
            .map(|o| o.map_or(LOOK_UP, |o| o as u64))
            .collect();
        if let Err(why) = disk_cache::store(&self.dir, &self.path, &encode(self.key, &words)) {
            crate::debug!(Libs, "slot table not remembered: {why}");
        }
    }
}

fn encode(key: u64, offsets: &[u64]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER + offsets.len() * 8);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&key.to_le_bytes());
    bytes.extend_from_slice(&(offsets.len() as u64).to_le_bytes());
    for offset in offsets {
        bytes.extend_from_slice(&offset.to_le_bytes());
    }
    bytes
}

/// The offsets a slot-table file holds, if it is one for `key` with `functions` entries;
/// `Err` says what is wrong with it. Public for the fuzz target.
pub fn parse(bytes: &[u8], key: u64, functions: usize) -> Result<Offsets<'_>, String> {
    let word = |at: usize| -> Option<u64> {
        let end = at.checked_add(8)?;
        Some(u64::from_le_bytes(bytes.get(at..end)?.try_into().ok()?))
    };
    if bytes.get(..8) != Some(MAGIC.as_slice()) {
        return Err("not a slot table (bad magic)".into());
    }
    let (Some(found_key), Some(count)) = (word(8), word(16)) else {
        return Err(format!("truncated header ({} bytes)", bytes.len()));
    };
    if found_key != key {
        return Err(format!("made for key {found_key:016x}, not {key:016x}"));
    }
    if usize::try_from(count).ok() != Some(functions) {
        return Err(format!(
            "{count} entries, the shim has {functions} functions"
        ));
    }
    let expected = functions.checked_mul(8).and_then(|n| n.checked_add(HEADER));
    if expected != Some(bytes.len()) {
        return Err(format!(
            "{} bytes, not the {} of {functions} entries",
            bytes.len(),
            expected.map_or_else(|| "size".to_string(), |n| n.to_string())
        ));
    }
    Ok(Offsets {
        entries: bytes.get(HEADER..).unwrap_or_default(),
    })
}

/// A slot table's entries as the file holds them: one little-endian `u64` per function.
#[derive(Debug)]
pub struct Offsets<'a> {
    entries: &'a [u8],
}

impl Offsets<'_> {
    pub fn len(&self) -> usize {
        self.entries.len() / 8
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entry `i`.
    pub fn get(&self, i: usize) -> Option<u64> {
        let bytes = self.entries.get(i.checked_mul(8)?..)?.get(..8)?;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }

    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.entries
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
    }
}

/// A slot table read from its file and checked ([`Entry::recall`]).
pub(super) struct Remembered {
    bytes: Vec<u8>,
}

impl Remembered {
    /// The offset of function `i` ([`LOOK_UP`]: look it up).
    pub fn get(&self, i: usize) -> Option<u64> {
        Offsets {
            entries: self.bytes.get(HEADER..)?,
        }
        .get(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let offsets = [0x1000, LOOK_UP, 0x2040];
        let bytes = encode(7, &offsets);
        let parsed = parse(&bytes, 7, 3).unwrap();
        assert_eq!(parsed.iter().collect::<Vec<_>>(), offsets);
        assert_eq!(
            (parsed.len(), parsed.get(1), parsed.get(3)),
            (3, Some(LOOK_UP), None)
        );
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let bytes = encode(7, &[0x1000, 0x2000]);
        assert!(parse(&bytes, 8, 2).unwrap_err().contains("key"));
        assert!(parse(&bytes, 7, 3).unwrap_err().contains("2 entries"));
        assert!(parse(&bytes[..bytes.len() - 1], 7, 2)
            .unwrap_err()
            .contains("39 bytes"));
        assert!(parse(&bytes[..20], 7, 2).unwrap_err().contains("truncated"));
        assert!(parse(b"CPSLOTS0", 7, 0).unwrap_err().contains("magic"));
    }
}
