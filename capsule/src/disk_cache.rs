//! Files the runtime keeps in the user's cache directory (`CAPSULE_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/capsule`, else `~/.cache/capsule`): the interposer's image, and the
//! closures `prefix::memo` remembers. A file there is used only if it is a regular file of
//! this user that no one else can write; files are replaced atomically (written beside,
//! then renamed over), and only into a directory no one else can write.
//!
//! Where the interposer's image is loaded from: its file in the cache directory, written
//! once per user and build, else a memfd.
//!
//! ld.so loads only files. An image written to a memfd costs `memfd_create`, the write
//! and, above all, procfs's lookup of the `/proc/PID/fd/N` name ld.so opens, a good part
//! of a small library's whole load, where a file already on disk costs nothing beyond
//! the open and mappings every object has. So the image is kept as `interpose-KIND-HASH.so`, the hash of its bytes keeping
//! builds apart, and used only if it also has the image's size.
//!
//! The memfd stays the way where no cache can be used: a setuid program (its environment
//! is not trusted), `CAPSULE_CACHE_DIR=none`, a read-only home, a cache mounted `noexec`.

use std::ffi::CStr;
use std::ffi::OsString;
use std::fs::{DirBuilder, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::secure_var;
use crate::error::{Error, Result};

/// The value of `CAPSULE_CACHE_DIR` that keeps everything in memory.
const NO_CACHE: &str = "none";

/// The cache directory: `CAPSULE_CACHE_DIR`, else `$XDG_CACHE_HOME/capsule`, else
/// `$HOME/.cache/capsule`; `Err` says why there is none. Relative paths do not count
/// (the XDG rule), and under AT_SECURE none of these variables is read.
pub(crate) fn cache_dir() -> std::result::Result<PathBuf, String> {
    if let Some(dir) = secure_var("CAPSULE_CACHE_DIR") {
        if dir == NO_CACHE {
            return Err(format!("CAPSULE_CACHE_DIR is {NO_CACHE}"));
        }
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            Ok(dir)
        } else {
            Err(format!(
                "CAPSULE_CACHE_DIR={} is not an absolute path",
                dir.display()
            ))
        };
    }
    let absolute = |value: Option<OsString>| value.map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(cache) = absolute(secure_var("XDG_CACHE_HOME")) {
        return Ok(cache.join("capsule"));
    }
    if let Some(home) = absolute(secure_var("HOME")) {
        return Ok(home.join(".cache/capsule"));
    }
    Err("no CAPSULE_CACHE_DIR, XDG_CACHE_HOME or HOME (or a setuid program)".into())
}

/// The file holding `image` in the cache directory, written there first if it is missing
/// or not usable; `Err` says why the cache cannot be used.
/// `id` is [`fnv1a`] of `image`, computed at build time.
pub(crate) fn cached(image: &[u8], kind: &str, id: u64) -> std::result::Result<PathBuf, String> {
    let dir = cache_dir()?;
    let path = dir.join(format!("interpose-{kind}-{id:016x}.so"));
    match usable(&path, image.len()) {
        Ok(()) => Ok(path),
        Err(why) => {
            crate::debug!(Libs, "{}: {why}; writing it", path.display());
            store(&dir, &path, image)?;
            Ok(path)
        }
    }
}

/// Where a generated object is loaded from.
pub(crate) enum Stored {
    /// A file of the cache directory.
    File(PathBuf),
    /// A memfd (kept open: its name is how ld.so and debuggers read it) and its name.
    Memory(OwnedFd, PathBuf),
}

impl Stored {
    pub fn path(&self) -> &Path {
        match self {
            Stored::File(path) | Stored::Memory(_, path) => path,
        }
    }
}

/// The file `file_name` of the cache directory, written from `build()` first if it is
/// missing or not usable (see `owned`); where the cache cannot be used, `build()` in a
/// memfd named `memfd_name`. The name must say everything `build()` depends on.
pub(crate) fn cached_or_built(
    file_name: &str,
    memfd_name: &CStr,
    build: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<Stored> {
    let dir = match cache_dir() {
        Ok(dir) => dir,
        Err(why) => {
            crate::debug!(
                Libs,
                "{file_name} not cached: {why}; loading it from memory"
            );
            let (fd, path) = in_memory(memfd_name, &build()?)?;
            return Ok(Stored::Memory(fd, path));
        }
    };
    let path = dir.join(file_name);
    if usable_file(&path) {
        return Ok(Stored::File(path));
    }
    let image = build()?;
    match store(&dir, &path, &image) {
        Ok(()) => Ok(Stored::File(path)),
        Err(why) => {
            crate::debug!(
                Libs,
                "{file_name} not cached: {why}; loading it from memory"
            );
            let (fd, path) = in_memory(memfd_name, &image)?;
            Ok(Stored::Memory(fd, path))
        }
    }
}

/// The file `file_name` of the cache directory, if it is there and may be loaded (see
/// `owned`).
pub(crate) fn find(file_name: &str) -> Option<PathBuf> {
    let path = cache_dir().ok()?.join(file_name);
    usable_file(&path).then_some(path)
}

fn usable_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .map_err(|e| e.to_string())
        .and_then(|meta| owned(&meta))
        .is_ok()
}

/// The cache directory, if this process may write there (it exists and is private, or
/// its parent lets it be made); `Err` says why not.
pub(crate) fn writable_dir() -> std::result::Result<PathBuf, String> {
    let dir = cache_dir()?;
    private_dir(&dir)?;
    let existing = if dir.exists() {
        dir.as_path()
    } else {
        dir.parent().unwrap_or(&dir)
    };
    let c = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{} holds a NUL byte", existing.display()))?;
    // SAFETY: a NUL-terminated path; access only reads it.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
        return Err(format!(
            "cannot write in {}: {}",
            existing.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(dir)
}

/// Write `bytes` to `path` in the cache directory `dir` (see `write_atomically`), only if
/// no one else can write there: the file written stays the one that is read. `Err` says
/// why not.
pub(crate) fn store(dir: &Path, path: &Path, bytes: &[u8]) -> std::result::Result<(), String> {
    private_dir(dir)?;
    write_atomically(dir, path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Whether `dir`, if it exists, is this user's and writable by no one else (then no one
/// else can replace the files in it). Checked when writing there: a file found there later
/// passes `owned` only if this user wrote it.
fn private_dir(dir: &Path) -> std::result::Result<(), String> {
    let Ok(meta) = std::fs::metadata(dir) else {
        // Not there yet (it is made private), or not reachable (the write says why).
        return Ok(());
    };
    this_users_alone(&meta).map_err(|why| {
        format!(
            "the cache directory {} is not private: {why}",
            dir.display()
        )
    })
}

/// Whether the file at `path` may be loaded as an image of `len` bytes: see `owned`.
fn usable(path: &Path, len: usize) -> std::result::Result<(), String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    owned(&meta)?;
    if meta.len() != len as u64 {
        return Err(format!("{} bytes, not {len}", meta.len()));
    }
    Ok(())
}

/// Whether a cache file (its `lstat`, or `fstat` of it opened without following links)
/// may be trusted: a regular file of this user, writable by no one else.
pub(crate) fn owned(meta: &std::fs::Metadata) -> std::result::Result<(), String> {
    if !meta.file_type().is_file() {
        return Err("not a regular file".into());
    }
    this_users_alone(meta)
}

/// The one trust check of the cache directory and its files: this user's, and writable
/// by no one else (group or others).
fn this_users_alone(meta: &std::fs::Metadata) -> std::result::Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid {
        Err(format!("owned by uid {}, not {euid}", meta.uid()))
    } else if meta.mode() & 0o022 != 0 {
        Err(format!(
            "mode {:o} lets others write it",
            meta.mode() & 0o7777
        ))
    } else {
        Ok(())
    }
}

/// The bytes of the cache file at `path`, if it is a file of this user that no one else can
/// write (opened without following a symlink).
pub(crate) fn read_owned(path: &Path) -> Option<Vec<u8>> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if let Err(why) = owned(&meta) {
        crate::debug!(Libs, "{}: not read: {why}", path.display());
        return None;
    }
    // The size fstat gave (File::read_to_end would ask fstat and lseek again for it, then
    // read once more to see the end): cache files are replaced whole by a rename, never
    // written in place, and every reader checks the size its contents imply.
    let mut bytes = vec![0; usize::try_from(meta.len()).ok()?];
    file.read_exact(&mut bytes).ok()?;
    Some(bytes)
}

/// Write `image` beside `path`, then rename it over `path`: a reader sees the old file or
/// the whole new one, never a part.
fn write_atomically(dir: &Path, path: &Path, image: &[u8]) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    // Unique among the processes and threads that may write at once.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = dir.join(format!(
        ".{name}.{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC)
        .open(&temporary)
        .and_then(|mut file| file.write_all(image))
        .and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// `image` in a memfd, and the name ld.so opens it by: through this process's pid, not
/// /proc/self, since a debugger reads link-map names in its own process, where
/// /proc/self/fd/N is one of *its* descriptors. The name works while the descriptor is open.
pub(crate) fn in_memory(name: &CStr, image: &[u8]) -> Result<(OwnedFd, PathBuf)> {
    let io_error = |source| Error::Io {
        path: format!("memfd:{}", name.to_string_lossy()).into(),
        source,
    };
    // SAFETY: the name is NUL-terminated; MFD_CLOEXEC keeps it out of child processes.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io_error(std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.write_all(image).map_err(io_error)?;
    let fd = OwnedFd::from(file);
    let path = PathBuf::from(format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        fd.as_raw_fd()
    ));
    Ok((fd, path))
}

pub(crate) use crate::fnv::fnv1a;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn fnv1a_matches_the_reference_values() {
        // The published test vectors of FNV-1a 64.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn a_written_image_is_usable_and_others_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("a/b");
        let path = cache.join("image.so");
        write_atomically(&cache, &path, b"image bytes").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"image bytes");
        assert_eq!(usable(&path, 11), Ok(()));
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the cache directory is private");
        // Nothing is left beside it.
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);

        assert!(usable(&path, 12).unwrap_err().contains("11 bytes, not 12"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(usable(&path, 11).unwrap_err().contains("lets others write"));
        let link = cache.join("link.so");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(usable(&link, 11)
            .unwrap_err()
            .contains("not a regular file"));
        assert!(usable(&cache.join("missing.so"), 11).is_err());

        assert_eq!(private_dir(&cache), Ok(()));
        assert_eq!(private_dir(&cache.join("not yet")), Ok(()));
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(private_dir(&cache).unwrap_err().contains("not private"));
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();

        // Rewriting replaces the file whole.
        write_atomically(&cache, &path, b"other").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"other");
        assert_eq!(usable(&path, 5), Ok(()));
    }

    #[test]
    fn a_memory_image_reads_back_through_its_name() {
        let (_fd, path) = in_memory(c"capsule-test", b"\x7fELF in memory").unwrap();
        assert!(path.starts_with("/proc"), "{}", path.display());
        assert_eq!(std::fs::read(&path).unwrap(), b"\x7fELF in memory");
    }
}
