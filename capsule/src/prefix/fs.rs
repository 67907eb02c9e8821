//! Paths confined to the prefix.
//!
//! A host tree is full of absolute symlinks (`/usr/lib/libfoo.so.1 -> /opt/foo/...`) that
//! mean "inside the host tree", not "on this machine". So paths are resolved one component
//! at a time with `lstat`/`readlink`, treating the prefix root as `/`: an absolute target
//! restarts at the prefix root and `..` stops there. `canonicalize` would follow such links
//! out of the tree.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// As many symlinks as Linux follows in one path walk (`MAXSYMLINKS`) before `ELOOP`.
const MAX_SYMLINKS: usize = 40;

/// `root` joined with `inside`, an absolute path of the host tree.
pub fn host_path(root: &Path, inside: &Path) -> PathBuf {
    root.join(inside.strip_prefix("/").unwrap_or(inside))
}

/// Resolve `inside` (a path of the host tree; relative paths are taken from its root)
/// to the host-tree path of the file it names, every symlink followed inside `root`.
///
/// `Ok(None)` when some component does not exist (or is not a directory where one is
/// needed, or cannot be read); `Error::BadPath` for a symlink loop.
pub fn resolve(root: &Path, inside: &Path) -> Result<Option<PathBuf>> {
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
                return Err(Error::BadPath {
                    path: host_path(root, inside),
                    prefix: root.to_path_buf(),
                    reason: format!(
                        "more than {MAX_SYMLINKS} symbolic links followed (a symlink loop at {}?)",
                        on_host.display()
                    ),
                });
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

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("opt/x")).unwrap();
        std::fs::create_dir_all(dir.path().join("usr/lib")).unwrap();
        std::fs::write(dir.path().join("opt/x/libx.so.1.0"), b"x").unwrap();
        dir
    }

    #[test]
    fn absolute_symlink_stays_in_tree() {
        let dir = tree();
        symlink("/opt/x/libx.so.1.0", dir.path().join("usr/lib/libx.so.1")).unwrap();
        let got = resolve(dir.path(), Path::new("/usr/lib/libx.so.1")).unwrap();
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
        let got = resolve(dir.path(), Path::new("usr/lib/up")).unwrap();
        assert_eq!(got, Some(PathBuf::from("/opt/x/libx.so.1.0")));
    }

    #[test]
    fn loop_is_an_error() {
        let dir = tree();
        symlink("b", dir.path().join("usr/lib/a")).unwrap();
        symlink("a", dir.path().join("usr/lib/b")).unwrap();
        let err = resolve(dir.path(), Path::new("/usr/lib/a")).unwrap_err();
        assert!(matches!(err, Error::BadPath { .. }), "{err}");
        assert!(err.to_string().contains("symlink loop"), "{err}");
    }

    #[test]
    fn missing_and_file_as_directory_are_none() {
        let dir = tree();
        assert_eq!(resolve(dir.path(), Path::new("/nope/x")).unwrap(), None);
        assert_eq!(
            resolve(dir.path(), Path::new("/opt/x/libx.so.1.0/y")).unwrap(),
            None
        );
    }
}
