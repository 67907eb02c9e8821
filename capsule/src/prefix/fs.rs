//! Paths confined to the prefix.
//!
//! A host tree is full of absolute symlinks (`/usr/lib/libfoo.so.1 -> /opt/foo/...`) that
//! mean "inside the host tree", not "on this machine". So paths are resolved treating the
//! prefix root as `/`: an absolute target restarts at the prefix root and `..` stops
//! there. `canonicalize` would follow such links out of the tree.
//!
//! The kernel does this in one system call (`openat2` with `RESOLVE_IN_ROOT`, Linux 5.6),
//! and `/proc/self/fd` names what it found. Where either is missing (an old kernel, a
//! seccomp filter, no `/proc`), paths are walked one component at a time with
//! `lstat`/`readlink` instead, with the same rules.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// As many symlinks as Linux follows in one path walk (`MAXSYMLINKS`) before `ELOOP`.
const MAX_SYMLINKS: usize = 40;

/// `root` joined with `inside`, an absolute path of the host tree.
pub fn host_path(root: &Path, inside: &Path) -> PathBuf {
    root.join(inside.strip_prefix("/").unwrap_or(inside))
}

/// Open the file `inside` names (a path of the host tree) for reading, every symlink
/// followed inside `root`, with a host-tree path that names it safely: the resolved one,
/// except under the root `/`, where the path as given already does (the kernel's own
/// resolution is the confined one there) and is the name ld.so itself would use.
/// `Ok(None)` and errors as for [`resolve`].
pub fn open(root: &Path, inside: &Path) -> Result<Option<(PathBuf, File)>> {
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
    let as_given = root == Path::new("/")
        && inside.is_absolute()
        && inside
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    match kernel_open(root, inside, flags, !as_given)? {
        Kernel::Found(path, fd) => Ok(Some((path, File::from(fd)))),
        Kernel::Missing => Ok(None),
        Kernel::Unavailable => {
            let Some(real) = walk(root, inside)? else {
                return Ok(None);
            };
            match File::open(host_path(root, &real)) {
                Ok(file) => Ok(Some((real, file))),
                Err(e) => {
                    crate::debug!(Libs, "{}: {e}; treated as missing", real.display());
                    Ok(None)
                }
            }
        }
    }
}

/// Resolve `inside` (a path of the host tree; relative paths are taken from its root)
/// to the host-tree path of the file it names, every symlink followed inside `root`.
///
/// `Ok(None)` when some component does not exist (or is not a directory where one is
/// needed, or cannot be read); `Error::BadPath` for a symlink loop.
pub fn resolve(root: &Path, inside: &Path) -> Result<Option<PathBuf>> {
    match kernel_open(root, inside, libc::O_PATH, true)? {
        Kernel::Found(path, _) => Ok(Some(path)),
        Kernel::Missing => Ok(None),
        Kernel::Unavailable => walk(root, inside),
    }
}

/// What identifies a file's content without reading it: its device and inode, its size,
/// and both change times (ctime moves on every write, rename or chmod, even one that sets
/// mtime back). Timestamps are as fine as the file system keeps them; see `is_recent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl Identity {
    pub fn of(meta: &std::fs::Metadata) -> Identity {
        use std::os::unix::fs::MetadataExt;
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Its fields as little-endian words (device, inode, size, then each time's seconds
    /// and nanoseconds), as cache files record it.
    pub fn to_le_bytes(&self) -> [u8; 56] {
        let words = [
            self.dev,
            self.ino,
            self.size,
            self.mtime.0 as u64,
            self.mtime.1 as u64,
            self.ctime.0 as u64,
            self.ctime.1 as u64,
        ];
        let mut bytes = [0; 56];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        bytes
    }

    /// Whether the file changed so recently (within 2 s of `now`, or after it) that a
    /// further change could leave the same identity: file systems stamp times from a
    /// clock that ticks every few milliseconds, so two writes in one tick look alike. Git
    /// distrusts its index the same way ("racy" entries).
    pub fn is_recent(&self, now: std::time::SystemTime) -> bool {
        let Ok(now) = now.duration_since(std::time::UNIX_EPOCH) else {
            return true;
        };
        let nanos = |(seconds, nanoseconds): (i64, i64)| {
            i128::from(seconds) * 1_000_000_000 + i128::from(nanoseconds)
        };
        let settled = now.as_nanos() as i128 - 2_000_000_000;
        nanos(self.mtime) > settled || nanos(self.ctime) > settled
    }
}

/// The identity of the file `inside` names (a path of the host tree), symlinks followed
/// inside `root` as [`open`] follows them; None where there is no such file.
pub fn identity(root: &Path, inside: &Path) -> Result<Option<Identity>> {
    if root == Path::new("/") {
        // The kernel's own resolution is the confined one.
        return Ok(std::fs::metadata(inside).ok().map(|m| Identity::of(&m)));
    }
    let real = match kernel_open(root, inside, libc::O_PATH, false)? {
        Kernel::Found(_, fd) => {
            return Ok(File::from(fd).metadata().ok().map(|m| Identity::of(&m)))
        }
        Kernel::Missing => return Ok(None),
        Kernel::Unavailable => walk(root, inside)?,
    };
    Ok(real
        .and_then(|real| std::fs::metadata(host_path(root, &real)).ok())
        .map(|m| Identity::of(&m)))
}

/// What the kernel's confined lookup gave.
enum Kernel {
    /// The host-tree path, and the file opened with the flags asked for.
    Found(PathBuf, OwnedFd),
    Missing,
    /// `openat2` or `/proc/self/fd` cannot do it here: walk instead.
    Unavailable,
}

/// Cleared for good when `openat2` or `/proc/self/fd` turns out to be missing.
static KERNEL_LOOKUP: AtomicBool = AtomicBool::new(true);

/// Open `inside` confined to `root`; with `resolved`, name it by its resolved path (one
/// more system call), else by `inside` itself.
fn kernel_open(root: &Path, inside: &Path, flags: libc::c_int, resolved: bool) -> Result<Kernel> {
    if !KERNEL_LOOKUP.load(Ordering::Relaxed) {
        return Ok(Kernel::Unavailable);
    }
    let relative = inside.strip_prefix("/").unwrap_or(inside);
    // Under `/` the absolute path; under another root the path relative to it.
    let name = match (root == Path::new("/"), relative.as_os_str().is_empty()) {
        (true, _) => Path::new("/").join(relative),
        (false, true) => PathBuf::from("."),
        (false, false) => relative.to_path_buf(),
    };
    let Ok(name) = CString::new(name.into_os_string().into_vec()) else {
        return Ok(Kernel::Missing);
    };
    let flags = flags | libc::O_CLOEXEC;
    let root_fd = if root == Path::new("/") {
        // The process's own root is the tree's root: the ordinary lookup is the confined one.
        None
    } else {
        let Ok(root_name) = CString::new(root.as_os_str().as_bytes()) else {
            return Ok(Kernel::Missing);
        };
        // SAFETY: a NUL-terminated path; the descriptor returned is owned below.
        let fd = unsafe {
            libc::open(
                root_name.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Ok(Kernel::Unavailable);
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        Some(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    let fd = match &root_fd {
        // SAFETY: a NUL-terminated absolute path; the descriptor returned is owned below.
        None => unsafe { libc::openat(libc::AT_FDCWD, name.as_ptr(), flags) },
        Some(dir) => {
            // SAFETY: open_how is plain integers, for which zero is valid ("no mode").
            let mut how: libc::open_how = unsafe { std::mem::zeroed() };
            how.flags = flags as u64;
            how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
            // SAFETY: openat2 reads `how` (of the size passed) and the NUL-terminated
            // path; it returns a fresh descriptor or -1.
            unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    &how as *const libc::open_how,
                    std::mem::size_of::<libc::open_how>(),
                ) as libc::c_int
            }
        }
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => Ok(Kernel::Missing),
            Some(libc::ELOOP) => Err(symlink_loop(root, inside, &host_path(root, inside))),
            Some(libc::ENOSYS | libc::EPERM | libc::EINVAL | libc::E2BIG) => {
                KERNEL_LOOKUP.store(false, Ordering::Relaxed);
                Ok(Kernel::Unavailable)
            }
            // EAGAIN/EXDEV: a rename raced with `..`; the walk has no such limit.
            Some(libc::EAGAIN | libc::EXDEV) => Ok(Kernel::Unavailable),
            _ => {
                crate::debug!(
                    Libs,
                    "{}: {e}; treated as missing",
                    host_path(root, inside).display()
                );
                Ok(Kernel::Missing)
            }
        };
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if !resolved {
        return Ok(Kernel::Found(inside.to_path_buf(), fd));
    }
    let Ok(full) = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) else {
        KERNEL_LOOKUP.store(false, Ordering::Relaxed);
        return Ok(Kernel::Unavailable);
    };
    // The kernel names the file by its path on this machine, which lies under the root it
    // was confined to, unless the root is a path the kernel spells otherwise (or the file
    // was just deleted): then walk.
    match full.strip_prefix(root) {
        Ok(tail) => Ok(Kernel::Found(Path::new("/").join(tail), fd)),
        Err(_) => Ok(Kernel::Unavailable),
    }
}

fn symlink_loop(root: &Path, inside: &Path, at: &Path) -> Error {
    Error::BadPath {
        path: host_path(root, inside),
        prefix: root.to_path_buf(),
        reason: format!(
            "more than {MAX_SYMLINKS} symbolic links followed (a symlink loop at {}?)",
            at.display()
        ),
    }
}

/// [`resolve`] by hand: one `lstat` per component, `readlink` per symlink.
fn walk(root: &Path, inside: &Path) -> Result<Option<PathBuf>> {
    let mut pending = components_reversed(inside);
    let mut done = PathBuf::from("/");
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            done.pop();
            continue;
        }
        let candidate = done.join(&part);
        let on_host = host_path(root, &candidate);
        let meta = match std::fs::symlink_metadata(&on_host) {
            Ok(meta) => meta,
            Err(e) => {
                if e.kind() != ErrorKind::NotFound {
                    crate::debug!(Libs, "{}: {e}; treated as missing", on_host.display());
                }
                return Ok(None);
            }
        };
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(symlink_loop(root, inside, &on_host));
            }
            let target = match std::fs::read_link(&on_host) {
                Ok(target) => target,
                Err(e) => {
                    crate::debug!(Libs, "{}: readlink: {e}", on_host.display());
                    return Ok(None);
                }
            };
            if target.is_absolute() {
                done = PathBuf::from("/");
            }
            pending.extend(components_reversed(&target));
        } else {
            if !pending.is_empty() && !meta.is_dir() {
                return Ok(None);
            }
            done = candidate;
        }
    }
    Ok(Some(done))
}

/// The normal and `..` components of `path`, last first, so that `pop` walks it in order.
fn components_reversed(path: &Path) -> Vec<OsString> {
    let mut parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    parts.reverse();
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// `resolve` (the kernel's lookup here) after checking that the walk agrees.
    fn both(root: &Path, inside: &Path) -> Result<Option<PathBuf>> {
        let kernel = resolve(root, inside);
        if !KERNEL_LOOKUP.load(Ordering::Relaxed) {
            // qemu-user before 9.1 has no openat2 (ENOSYS): under it (the cargo runner
            // names it, see .cargo/config.toml) the walk is the lookup, checked alone.
            let emulator = std::env::var("CAPSULE_TESTS_EMULATOR").unwrap_or_else(|_| {
                panic!("openat2(RESOLVE_IN_ROOT) and /proc/self/fd must work on this machine")
            });
            eprintln!("no openat2 under {emulator}: the walk alone is checked");
            return kernel;
        }
        let walked = walk(root, inside);
        match (&kernel, &walked) {
            (Ok(k), Ok(w)) => assert_eq!(k, w, "kernel and walk differ for {inside:?}"),
            // Both name the loop; only the link they stopped at may differ.
            (Err(Error::BadPath { .. }), Err(Error::BadPath { .. })) => {}
            _ => panic!("kernel {kernel:?} but walk {walked:?} for {inside:?}"),
        }
        kernel
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("opt/x")).unwrap();
        std::fs::create_dir_all(dir.path().join("usr/lib")).unwrap();
        std::fs::write(dir.path().join("opt/x/libx.so.1.0"), b"x").unwrap();
        dir
    }

    #[test]
    fn identity_follows_symlinks_inside_the_tree_and_knows_recent_changes() {
        let dir = tree();
        symlink("/opt/x/libx.so.1.0", dir.path().join("usr/lib/libx.so.1")).unwrap();
        let id = identity(dir.path(), Path::new("/usr/lib/libx.so.1"))
            .unwrap()
            .expect("found");
        let direct = std::fs::metadata(dir.path().join("opt/x/libx.so.1.0")).unwrap();
        assert_eq!(id, Identity::of(&direct));
        assert_eq!(identity(dir.path(), Path::new("/nope")).unwrap(), None);
        let now = std::time::SystemTime::now();
        assert!(id.is_recent(now), "just written");
        assert!(!id.is_recent(now + std::time::Duration::from_secs(3)));
        assert!(id.is_recent(now + std::time::Duration::from_millis(1500)));
    }

    #[test]
    fn open_reads_the_file_a_symlink_names_inside_the_tree() {
        let dir = tree();
        symlink("/opt/x/libx.so.1.0", dir.path().join("usr/lib/libx.so.1")).unwrap();
        let (path, file) = open(dir.path(), Path::new("/usr/lib/libx.so.1"))
            .unwrap()
            .expect("found");
        assert_eq!(path, PathBuf::from("/opt/x/libx.so.1.0"));
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut &file, &mut bytes).unwrap();
        assert_eq!(bytes, b"x");
        assert!(open(dir.path(), Path::new("/usr/lib/nope"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn absolute_symlink_stays_in_tree() {
        let dir = tree();
        symlink("/opt/x/libx.so.1.0", dir.path().join("usr/lib/libx.so.1")).unwrap();
        let got = both(dir.path(), Path::new("/usr/lib/libx.so.1")).unwrap();
        assert_eq!(got, Some(PathBuf::from("/opt/x/libx.so.1.0")));
    }

    #[test]
    fn dotdot_stops_at_root() {
        let dir = tree();
        symlink(
            "../../../../../opt/x/libx.so.1.0",
            dir.path().join("usr/lib/up"),
        )
        .unwrap();
        let got = both(dir.path(), Path::new("usr/lib/up")).unwrap();
        assert_eq!(got, Some(PathBuf::from("/opt/x/libx.so.1.0")));
    }

    #[test]
    fn loop_is_an_error() {
        let dir = tree();
        symlink("b", dir.path().join("usr/lib/a")).unwrap();
        symlink("a", dir.path().join("usr/lib/b")).unwrap();
        let err = both(dir.path(), Path::new("/usr/lib/a")).unwrap_err();
        assert!(matches!(err, Error::BadPath { .. }), "{err}");
        assert!(err.to_string().contains("symlink loop"), "{err}");
    }

    #[test]
    fn missing_and_file_as_directory_are_none() {
        let dir = tree();
        assert_eq!(both(dir.path(), Path::new("/nope/x")).unwrap(), None);
        assert_eq!(
            both(dir.path(), Path::new("/opt/x/libx.so.1.0/y")).unwrap(),
            None
        );
    }
}
