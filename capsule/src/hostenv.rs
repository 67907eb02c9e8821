//! The capsule's own environment, which points the host's driver loaders at the host's
//! data files.
//!
//! Loaders find their drivers through data files, not only through `DT_NEEDED`: libglvnd
//! reads vendor JSON files from `/etc/glvnd/egl_vendor.d` and `/usr/share/glvnd/egl_vendor.d`,
//! the Vulkan loader reads driver and layer manifests from `vulkan/icd.d` (and
//! `implicit_layer.d`, ...) under the XDG directories. With a prefix other than `/` (a
//! host mounted at `/run/host` inside a container), those fixed paths are the runtime's,
//! which has no host driver.
//!
//! The capsule shares the program's libc, and with it the environment. The interposer
//! (the namespace's global scope) defines `getenv` and `secure_getenv` for the code
//! inside: [`prepare`] gives it the variables of [`overrides`] as an overlay, so the
//! loaders inside look in the prefix while the program keeps its own environment, and
//! every other variable is the program's, live.
//!
//! Paths *inside* the manifests (`library_path`, absolute or not) need no rewriting: the
//! capsule's `dlopen` maps absolute paths into the prefix (see `dl.rs`), so a manifest of
//! the host names the host's file. For the same reason `LIBGL_DRIVERS_PATH` and Mesa's
//! built-in DRI directory need nothing here.
//!
//! The overlay's values are fixed when the namespace is created; the program's `setenv`
//! of any other variable is seen inside at once (one environment).
//!
//! # Data files at fixed paths
//!
//! Some data files have no variable: Mesa's `drirc` files (`/etc/drirc`,
//! `/usr/share/drirc.d/*.conf`), the Vulkan loader's `/etc/vulkan`, libdrm's
//! `/usr/share/libdrm/amdgpu.ids`, ... For those, the interposer (the namespace's global
//! scope, see `interpose/interpose.c`) wraps the path-taking libc functions that driver
//! stacks read files with (`open`, `openat`, their `_2` fortified and `64` variants,
//! `fopen`, `opendir`, `scandir`, `access`, `faccessat`, `stat`, `lstat`, `fstatat`,
//! `statx`, the old `__xstat` family, `realpath`) and rewrites an absolute path under one
//! of [`DATA_PATHS`] to the same path inside the prefix. [`map_data_files`] fills the
//! list when the namespace is created: the driver stack inside the capsule sees the
//! host's files, the program (whose calls never enter the interposer) the runtime's.
//!
//! - The rule when the host lacks a file: it is missing. Data directories are the host's,
//!   and the runtime's copy is never used instead (its settings describe another build of
//!   the stack). A whole directory the host lacks is an empty one for the capsule.
//! - Matching follows path components (`/etc/vulkanfoo` is not under `/etc/vulkan`);
//!   repeated slashes count as one. Relative paths, and paths relative to a directory
//!   descriptor, are not rewritten (a directory opened through the wrappers is already
//!   the host's).
//! - A rewritten path longer than `PATH_MAX` fails with `ENAMETOOLONG`, as the kernel
//!   would fail it, rather than falling back to the runtime's file.
//! - With the prefix `/` there is nothing to map: the namespace gets an interposer built
//!   without the wrappers, so these functions are libc's own there, at no cost.
//! - Symlinks are followed inside the prefix, absolute ones included (Debian's
//!   alternatives: `/usr/share/vulkan/icd.d/nvidia_icd.json` -> `/etc/alternatives/...`
//!   -> `/usr/lib/...` all of the host): the wrapper resolves the rewritten path with
//!   `openat2(RESOLVE_IN_ROOT)` and hands libc the result; `lstat`, `O_NOFOLLOW` and
//!   `AT_SYMLINK_NOFOLLOW` keep the last component as it is.
//! - Not covered: libc's own internal opens made on the capsule's behalf by functions
//!   not wrapped here (`glob`, `ftw`, `freopen`, `canonicalize_file_name`, ...), and the
//!   program's calls, which never enter the capsule's namespace.
//!
//! `CAPSULE_DEBUG=libs` lists the mapped paths once, when the namespace is created;
//! `CAPSULE_DEBUG=files` prints every rewritten path as it is opened.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::interposer::Interposer;

/// What the capsule's environment says about one variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Setting {
    /// Set to this value (a colon-separated list of paths inside the prefix).
    Set(OsString),
    /// Removed: the program's value names files of the runtime, and there is nothing in
    /// the prefix to put instead (or a variable of higher precedence is set).
    Unset,
}

/// One variable of the capsule's environment that differs from the program's, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    pub name: &'static str,
    pub setting: Setting,
    pub why: &'static str,
}

/// libglvnd's built-in vendor directories (`/etc` first, as it searches them).
const EGL_VENDOR_DIRS: &[&str] = &["/etc/glvnd/egl_vendor.d", "/usr/share/glvnd/egl_vendor.d"];

/// The Vulkan loader's driver manifest directories on the XDG defaults and `/etc`, in the
/// loader's order.
const VULKAN_ICD_DIRS: &[&str] = &[
    "/etc/xdg/vulkan/icd.d",
    "/etc/vulkan/icd.d",
    "/usr/local/share/vulkan/icd.d",
    "/usr/share/vulkan/icd.d",
];

/// Host-tree paths (directories, or single files like `/etc/drirc`) whose files the
/// driver stack reads at fixed paths: inside a capsule with a prefix other than `/`, an
/// absolute path under one of them is rewritten into the prefix (see the module doc).
pub const DATA_PATHS: &[&str] = &[
    // Mesa's driconf.
    "/etc/drirc",
    "/usr/share/drirc.d",
    // libglvnd's vendor JSON files (also pointed at by the environment).
    "/etc/glvnd",
    "/usr/share/glvnd",
    // The Vulkan loader's manifests: `/etc/vulkan` is searched whatever the environment.
    "/etc/vulkan",
    "/usr/share/vulkan",
    // EGL external platforms (NVIDIA's eglexternalplatform).
    "/etc/egl",
    "/usr/share/egl",
    // libdrm's GPU name table.
    "/usr/share/libdrm",
    // The OpenCL ICD loader's vendor files.
    "/etc/OpenCL/vendors",
    // NVIDIA's application profiles.
    "/usr/share/nvidia",
];

/// The data paths rewritten into `prefix` (none for `/`, where they are the same files).
pub fn data_paths(prefix: &Path) -> &'static [&'static str] {
    if prefix == Path::new("/") {
        &[]
    } else {
        DATA_PATHS
    }
}

/// Make the interposer of a new namespace rewrite [`data_paths`] into its prefix, and
/// log each mapping (`CAPSULE_DEBUG=libs`). Called when the namespace is created, before
/// anything but the interposer is loaded into it.
fn map_data_files(interposer: &Interposer) -> Result<()> {
    let prefix = interposer.prefix().to_path_buf();
    let paths = data_paths(&prefix);
    for path in paths {
        crate::debug!(
            Libs,
            "namespace {}: data files under {path} are read from {}",
            interposer.lmid(),
            inside(&prefix, path).display()
        );
    }
    let trace = crate::config::debug_enabled(crate::config::Topic::Files);
    interposer.map_data_dirs(paths, trace)
}

/// The XDG defaults (XDG Base Directory specification).
const XDG_DATA_DIRS: &[&str] = &["/usr/local/share", "/usr/share"];
const XDG_CONFIG_DIRS: &[&str] = &["/etc/xdg"];

/// The variables that point the host's loaders at `prefix` (nothing for `/`, where the
/// program's and the host's files are the same).
pub fn overrides(prefix: &Path) -> Vec<Override> {
    if prefix == Path::new("/") {
        return Vec::new();
    }
    let mut out = vec![
        Override {
            name: "__EGL_VENDOR_LIBRARY_DIRS",
            setting: Setting::Set(join_inside(prefix, EGL_VENDOR_DIRS)),
            why: "libglvnd's EGL vendor directories",
        },
        Override {
            name: "__EGL_VENDOR_LIBRARY_FILENAMES",
            setting: Setting::Unset,
            why: "would take precedence over the vendor directories",
        },
        Override {
            name: "XDG_DATA_DIRS",
            setting: Setting::Set(join_inside(prefix, XDG_DATA_DIRS)),
            why: "where the Vulkan loader looks for layer manifests",
        },
        Override {
            name: "XDG_CONFIG_DIRS",
            setting: Setting::Set(join_inside(prefix, XDG_CONFIG_DIRS)),
            why: "where the Vulkan loader looks for manifests first",
        },
        Override {
            name: "VK_ADD_DRIVER_FILES",
            setting: Setting::Unset,
            why: "names the runtime's driver manifests",
        },
    ];
    let manifests = vulkan_manifests(prefix);
    let drivers = if manifests.is_empty() {
        Setting::Unset
    } else {
        Setting::Set(join_paths(&manifests))
    };
    for name in ["VK_DRIVER_FILES", "VK_ICD_FILENAMES"] {
        out.push(Override {
            name,
            setting: drivers.clone(),
            why: "the Vulkan loader's driver manifests (their library_path is mapped into the prefix by dlopen)",
        });
    }
    out
}

/// Give code inside the capsule of `interposer`'s namespace the [`overrides`] for its
/// prefix, as an overlay on the program's environment (`getenv` and `secure_getenv`
/// inside read it first), and map the data files. Nothing changes for the prefix `/`.
pub(crate) fn prepare(interposer: &Interposer) -> Result<()> {
    let prefix = interposer.prefix().to_path_buf();
    let overrides = overrides(&prefix);
    for o in &overrides {
        log(&prefix, o);
    }
    interposer.set_environment_overlay(&overlay(&overrides));
    map_data_files(interposer)
}

fn log(prefix: &Path, o: &Override) {
    match &o.setting {
        Setting::Set(value) => crate::debug!(
            Libs,
            "namespace environment: {}={} ({}, mapped into prefix {})",
            o.name,
            value.to_string_lossy(),
            o.why,
            prefix.display()
        ),
        Setting::Unset => {
            crate::debug!(Libs, "namespace environment: {} unset ({})", o.name, o.why)
        }
    }
}

/// The overlay's entries: `NAME=value` for a variable set, `NAME` for one removed.
fn overlay(overrides: &[Override]) -> Vec<Vec<u8>> {
    overrides
        .iter()
        .map(|o| {
            let mut entry = o.name.as_bytes().to_vec();
            if let Setting::Set(value) = &o.setting {
                entry.push(b'=');
                entry.extend_from_slice(value.as_bytes());
            }
            entry
        })
        .filter(|e| !e.contains(&0))
        .collect()
}

/// The driver manifests (`*.json`) of the prefix's Vulkan ICD directories, in the
/// loader's directory order, sorted by name within a directory.
fn vulkan_manifests(prefix: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in VULKAN_ICD_DIRS {
        let dir = inside(prefix, dir);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension() == Some(OsStr::new("json")))
            .collect();
        files.sort();
        found.extend(files);
    }
    found
}

/// `dir`, a path of the host tree, as a path on this machine.
fn inside(prefix: &Path, dir: &str) -> PathBuf {
    crate::prefix::fs::host_path(prefix, Path::new(dir))
}

fn join_inside(prefix: &Path, dirs: &[&str]) -> OsString {
    let paths: Vec<PathBuf> = dirs.iter().map(|d| inside(prefix, d)).collect();
    join_paths(&paths)
}

fn join_paths(paths: &[PathBuf]) -> OsString {
    let mut out = OsString::new();
    for (i, p) in paths.iter().enumerate() {
        if i > 0 {
            out.push(":");
        }
        out.push(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<'a>(overrides: &'a [Override], name: &str) -> &'a Setting {
        &overrides
            .iter()
            .find(|o| o.name == name)
            .unwrap_or_else(|| panic!("{name} is not overridden"))
            .setting
    }

    #[test]
    fn root_prefix_changes_nothing() {
        assert!(overrides(Path::new("/")).is_empty());
        assert!(data_paths(Path::new("/")).is_empty());
    }

    #[test]
    fn data_paths_are_plain_absolute_paths() {
        for path in DATA_PATHS {
            assert!(path.starts_with('/'), "{path}");
            assert!(!path.ends_with('/') && !path.contains("//"), "{path}");
            assert!(!path.split('/').any(|c| c == "." || c == ".."), "{path}");
        }
        assert_eq!(data_paths(Path::new("/run/host")), DATA_PATHS);
    }

    #[test]
    fn data_directories_are_mapped_into_the_prefix() {
        let host = tempfile::tempdir().unwrap();
        let o = overrides(host.path());
        let h = host.path().display();
        assert_eq!(
            value(&o, "__EGL_VENDOR_LIBRARY_DIRS"),
            &Setting::Set(
                format!("{h}/etc/glvnd/egl_vendor.d:{h}/usr/share/glvnd/egl_vendor.d").into()
            )
        );
        assert_eq!(
            value(&o, "XDG_DATA_DIRS"),
            &Setting::Set(format!("{h}/usr/local/share:{h}/usr/share").into())
        );
        // No manifests in the host tree: the runtime's must not be used either.
        assert_eq!(value(&o, "VK_DRIVER_FILES"), &Setting::Unset);
    }

    #[test]
    fn vulkan_manifests_are_listed_in_loader_order() {
        let host = tempfile::tempdir().unwrap();
        for (dir, file) in [
            ("usr/share/vulkan/icd.d", "b.json"),
            ("usr/share/vulkan/icd.d", "a.json"),
            ("usr/share/vulkan/icd.d", "README"),
            ("etc/vulkan/icd.d", "z.json"),
        ] {
            std::fs::create_dir_all(host.path().join(dir)).unwrap();
            std::fs::write(host.path().join(dir).join(file), "{}").unwrap();
        }
        let h = host.path().display();
        let want = format!(
            "{h}/etc/vulkan/icd.d/z.json:{h}/usr/share/vulkan/icd.d/a.json:{h}/usr/share/vulkan/icd.d/b.json"
        );
        let o = overrides(host.path());
        assert_eq!(
            value(&o, "VK_DRIVER_FILES"),
            &Setting::Set(want.clone().into())
        );
        assert_eq!(value(&o, "VK_ICD_FILENAMES"), &Setting::Set(want.into()));
    }

    #[test]
    fn overlay_sets_and_removes() {
        let overrides = [
            Override {
                name: "XDG_DATA_DIRS",
                setting: Setting::Set("/run/host/usr/share".into()),
                why: "",
            },
            Override {
                name: "VK_ADD_DRIVER_FILES",
                setting: Setting::Unset,
                why: "",
            },
        ];
        assert_eq!(
            overlay(&overrides),
            [
                b"XDG_DATA_DIRS=/run/host/usr/share".to_vec(),
                b"VK_ADD_DRIVER_FILES".to_vec()
            ]
        );
    }
}
