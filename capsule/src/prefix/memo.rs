//! Closures remembered across processes, each with the files it was decided by.
//!
//! A capsule's first load resolves its library's closure: `ld.so.cache` opened and mapped,
//! every library's headers read. When the same library is loaded from the same prefix
//! again (the next run of the program), nothing of that changed in the common case, and
//! one `statx` per file says so: the closure is then taken from a small file in the cache
//! directory (see `disk_cache`), `closure-HASH.memo`, instead of searched again.
//!
//! A closure is remembered only when files alone decided it: every object a cache entry
//! taken at the first try (its file and `ld.so.cache`), or one of glibc's libraries read
//! from the running process (the running libc's path and glibc's version are part of the
//! key). An answer that also depended on what a directory did *not* hold (an RPATH,
//! RUNPATH or default directory tried first, a candidate passed over) is searched anew
//! each time. So is one whose files changed in the last two seconds: two writes within
//! one tick of the file system's clock leave the same identity (see `Identity::is_recent`).
//! The key also holds a hash of the resolver's own sources, so no build reads another
//! one's answers, and the closure's symbol versions were checked when it was found, against
//! the same files.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::fs::{self, Identity};
use super::search::Inputs;
use super::{glibc, Closure, Object, Origin, Prefix};
use crate::disk_cache;

const MAGIC: &[u8] = b"capsule closure memo 1\n";

/// The resolver build this runtime carries (see build.rs).
const RESOLVER_ID: &str = env!("CAPSULE_RESOLVER_ID");

/// Where one library of one prefix is remembered: its file and key. Made once per
/// resolution, for the recall and, on a miss, the remembering.
pub(super) struct Slot<'a> {
    prefix: &'a Prefix,
    library: &'a str,
    dir: PathBuf,
    path: PathBuf,
    key: Vec<u8>,
}

/// Where `library` of `prefix` would be remembered; None without a usable cache directory
/// or a known running libc (a prefix without the running glibc handed in, or of another
/// machine than this process's: capsule-gen's plans).
pub(super) fn slot<'a>(prefix: &'a Prefix, library: &'a str) -> Option<Slot<'a>> {
    let libc = (prefix.running()?.libc_path)()?;
    let dir = disk_cache::cache_dir().ok()?;
    let mut key = Vec::new();
    for part in [
        RESOLVER_ID.as_bytes(),
        prefix.root().as_os_str().as_bytes(),
        library.as_bytes(),
        libc.as_os_str().as_bytes(),
        glibc::running_version().as_bytes(),
    ] {
        put(&mut key, part);
    }
    let path = dir.join(format!("closure-{:016x}.memo", disk_cache::fnv1a(&key)));
    Some(Slot {
        prefix,
        library,
        dir,
        path,
        key,
    })
}

impl Slot<'_> {
    /// The closure remembered here, if none of the files it was decided by changed since.
    pub fn recall(&self) -> Option<Closure> {
        let (prefix, library) = (self.prefix, self.library);
        let bytes = disk_cache::read_owned(&self.path)?;
        let (inputs, closure) = decode(&bytes, &self.key)?;
        for (inside, identity) in &inputs {
            let now = fs::identity(prefix.root(), inside).ok().flatten();
            if now != Some(*identity) {
                crate::debug!(
                    Libs,
                    "{library}: remembered closure set aside: {} changed",
                    fs::host_path(prefix.root(), inside).display()
                );
                return None;
            }
        }
        crate::debug!(
            Libs,
            "{library}: closure remembered in {} ({} files unchanged)",
            self.path.display(),
            inputs.len()
        );
        Some(closure)
    }

    /// Remember `closure`, decided by `inputs`, unless a file of them changed too recently
    /// to be told apart from a next change.
    pub fn remember(&self, closure: &Closure, inputs: &Inputs) {
        let library = self.library;
        let now = std::time::SystemTime::now();
        if let Some((inside, _)) = inputs.iter().find(|(_, id)| id.is_recent(now)) {
            crate::debug!(
                Libs,
                "{library}: closure not remembered: {} changed in the last seconds",
                fs::host_path(self.prefix.root(), inside).display()
            );
            return;
        }
        let bytes = encode(&self.key, inputs, closure);
        if let Err(e) = disk_cache::store(&self.dir, &self.path, &bytes) {
            crate::debug!(Libs, "{library}: closure not remembered: {e}");
        }
    }
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn encode(key: &[u8], inputs: &Inputs, closure: &Closure) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    put(&mut out, key);
    put_u64(&mut out, inputs.len() as u64);
    for (inside, id) in inputs {
        put(&mut out, inside.as_os_str().as_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    put_u64(&mut out, closure.objects.len() as u64);
    for object in &closure.objects {
        put(&mut out, object.soname.as_bytes());
        put(&mut out, object.path.as_os_str().as_bytes());
        put(&mut out, object.origin.as_str().as_bytes());
        put_u64(&mut out, object.needed.len() as u64);
        for name in &object.needed {
            put(&mut out, name.as_bytes());
        }
        match &object.needed_by {
            Some(by) => {
                put_u64(&mut out, 1);
                put(&mut out, by.as_bytes());
            }
            None => put_u64(&mut out, 0),
        }
    }
    out
}

/// A reader over a memo's bytes; every read checks its bounds.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = tail;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// A count of items of at least `item` bytes each, no more than the bytes left hold.
    fn count(&mut self, item: usize) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        (n <= self.0.len() / item).then_some(n)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
        self.take(n as usize)
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }

    fn path(&mut self) -> Option<PathBuf> {
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(self.bytes()?)))
    }
}

/// The inputs and closure a memo holds, if it is whole and made for `key`.
fn decode(bytes: &[u8], key: &[u8]) -> Option<(Inputs, Closure)> {
    let mut r = Reader(bytes.strip_prefix(MAGIC)?);
    if r.bytes()? != key {
        return None;
    }
    let mut inputs = Vec::new();
    for _ in 0..r.count(4 + 7 * 8)? {
        let inside = r.path()?;
        let (dev, ino, size) = (r.u64()?, r.u64()?, r.u64()?);
        let mut time = || Some((r.u64()? as i64, r.u64()? as i64));
        let (mtime, ctime) = (time()?, time()?);
        inputs.push((
            inside,
            Identity {
                dev,
                ino,
                size,
                mtime,
                ctime,
            },
        ));
    }
    let mut objects = Vec::new();
    for _ in 0..r.count(4 * 3 + 8 * 2)? {
        let soname = r.string()?;
        let path = r.path()?;
        let origin = Origin::parse(&r.string()?)?;
        let mut needed = Vec::new();
        for _ in 0..r.count(4)? {
            needed.push(r.string()?);
        }
        let needed_by = match r.u64()? {
            0 => None,
            1 => Some(r.string()?),
            _ => return None,
        };
        objects.push(Object {
            soname,
            path,
            origin,
            needed,
            needed_by,
        });
    }
    (r.0.is_empty() && !objects.is_empty()).then_some((inputs, Closure { objects }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Inputs, Closure) {
        let id = Identity {
            dev: 1,
            ino: 2,
            size: 3,
            mtime: (4, 5),
            ctime: (6, 7),
        };
        let inputs = vec![(PathBuf::from("/etc/ld.so.cache"), id)];
        let objects = vec![
            Object {
                soname: "libc.so.6".into(),
                path: "/lib/libc.so.6".into(),
                origin: Origin::System,
                needed: vec!["ld-linux-x86-64.so.2".into()],
                needed_by: Some("libz.so.1".into()),
            },
            Object {
                soname: "libz.so.1".into(),
                path: "/lib/libz.so.1".into(),
                origin: Origin::Cache,
                needed: vec!["libc.so.6".into()],
                needed_by: None,
            },
        ];
        (inputs, Closure { objects })
    }

    #[test]
    fn a_memo_reads_back_what_was_written() {
        let (inputs, closure) = sample();
        let bytes = encode(b"key", &inputs, &closure);
        let (read_inputs, read) = decode(&bytes, b"key").expect("decoded");
        assert_eq!(read_inputs, inputs);
        assert_eq!(format!("{read:?}"), format!("{closure:?}"));
        assert!(decode(&bytes, b"other key").is_none(), "another key's memo");
    }

    #[test]
    fn every_cut_or_damaged_memo_is_refused_without_a_panic() {
        let (inputs, closure) = sample();
        let bytes = encode(b"key", &inputs, &closure);
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len], b"key").is_none(), "cut at {len}");
        }
        for at in 0..bytes.len() {
            for value in [0u8, 0x7f, 0xff] {
                let mut damaged = bytes.clone();
                damaged[at] = value;
                // Whatever it decodes to, it must not panic or allocate without bound.
                let _ = decode(&damaged, b"key");
            }
        }
    }
}
