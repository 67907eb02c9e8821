//! glibc's own libraries, which a capsule takes from the running system, and the check
//! that every symbol version the closure needs is defined by whoever provides it.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use super::elffile::ElfFile;
use crate::dlfcn::Handle;
use crate::elf::{LinkMap, Object};
use crate::error::{Error, Result, VersionProvider};

/// Sonames built from glibc's source. They share GLIBC_PRIVATE interfaces with the
/// dynamic linker of the same build, so a copy from another tree would not work with the
/// running ld.so: they are always taken from the running system.
pub const GLIBC_SONAMES: &[&str] = &[
    "ld-linux-x86-64.so.2",
    "libc.so.6",
    "libm.so.6",
    "libmvec.so.1",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libresolv.so.2",
    "libutil.so.1",
    "libanl.so.1",
    "libBrokenLocale.so.1",
    "libnsl.so.1",
    "libthread_db.so.1",
    "libc_malloc_debug.so.0",
    "libmemusage.so",
    "libpcprofile.so",
    "libnss_files.so.2",
    "libnss_dns.so.2",
    "libnss_compat.so.2",
    "libnss_hesiod.so.2",
];

/// Whether `soname` is one of glibc's own libraries.
pub fn is_glibc(soname: &str) -> bool {
    GLIBC_SONAMES.contains(&soname)
}

/// The version of the running glibc, e.g. `2.36`.
pub fn running_version() -> String {
    // SAFETY: gnu_get_libc_version takes no arguments and returns a pointer to a static
    // NUL-terminated string inside libc.
    let version = unsafe { CStr::from_ptr(gnu_get_libc_version()) };
    version.to_string_lossy().into_owned()
}

/// The file of the libc.so.6 mapped in this process, so that the capsule's libc is the
/// very build the running ld.so belongs to (several may be installed).
pub fn running_libc_path() -> Option<PathBuf> {
    with_loaded("libc.so.6", |_, path| Some(path))
}

/// A glibc library the program has loaded: the path ld.so opened it under, and what the
/// search needs of it, read from its memory (no file I/O): its soname, DT_NEEDED and
/// DT_VERDEF. Its DT_VERNEED and search paths are left out: glibc's libraries come from
/// the running system as one build, whose versions ld.so matched when it loaded them, and
/// what they need is taken from the running system too. None when the program has not
/// loaded it, or its dynamic section cannot be read (the caller then searches the files).
pub fn loaded(soname: &str) -> Option<(PathBuf, ElfFile)> {
    with_loaded(soname, |map, path| {
        // SAFETY: `with_loaded` keeps the object loaded while this runs.
        let facts = unsafe { Object::from_link_map(map) }.and_then(|object| {
            let owned = |v: Vec<&str>| v.into_iter().map(str::to_string).collect();
            Ok(ElfFile {
                soname: object.soname()?.map(str::to_string),
                needed: owned(object.needed()?),
                verdef: owned(object.defined_versions()?),
                ..ElfFile::default()
            })
        });
        match facts {
            Ok(file) if file.soname.as_deref() == Some(soname) => Some((path, file)),
            Ok(file) => {
                crate::debug!(
                    Libs,
                    "{}: its soname is {:?}, not {soname}",
                    path.display(),
                    file.soname
                );
                None
            }
            Err(e) => {
                crate::debug!(Libs, "{}: not read from memory: {e}", path.display());
                None
            }
        }
    })
}

/// Run `read` on the link map and path of `soname`, loaded in this (the program's)
/// namespace, holding a reference so that it cannot be unloaded meanwhile.
fn with_loaded<T>(
    soname: &str,
    read: impl FnOnce(*const LinkMap, PathBuf) -> Option<T>,
) -> Option<T> {
    // libc and ld.so need no reference held (see `never_unloaded`); any other is held by
    // a NOLOAD dlopen, which only looks the name up among the loaded objects of the
    // caller's namespace: nothing is mapped and no constructor runs.
    let (handle, held) = match never_unloaded(soname) {
        Some(map) => (Handle(NonNull::new(map.cast_mut().cast())?), false),
        None => {
            let name = CString::new(soname).ok()?;
            // SAFETY: see above; the name is NUL-terminated.
            let raw = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
            (Handle(NonNull::new(raw)?), true)
        }
    };
    let path = handle.path();
    let result = path
        .is_absolute()
        .then(|| read(handle.link_map(), path))
        .flatten();
    if held {
        // SAFETY: drops the reference the NOLOAD dlopen took; the object stays loaded
        // for whoever loaded it.
        unsafe { libc::dlclose(handle.as_ptr()) };
    }
    result
}

/// The link map of the program's libc.
pub(crate) fn program_libc_link_map() -> Option<*const LinkMap> {
    never_unloaded("libc.so.6")
}

/// libc's and ld.so's link maps, found by a function inside each: both are loaded before
/// the program starts and never unloaded, so no reference needs holding (the NOLOAD
/// dlopen that takes one costs microseconds, on every first load of a capsule).
fn never_unloaded(soname: &str) -> Option<*const LinkMap> {
    let inside = match soname {
        "libc.so.6" => gnu_get_libc_version as *const std::ffi::c_void,
        "ld-linux-x86-64.so.2" => __tls_get_addr as *const std::ffi::c_void,
        _ => return None,
    };
    crate::linkmap::containing(inside)
}

extern "C" {
    fn gnu_get_libc_version() -> *const libc::c_char;
    /// Defined by ld.so (only its address is taken).
    fn __tls_get_addr();
}

/// What the version check needs of one closure object.
pub struct Versioned<'a> {
    pub soname: &'a str,
    pub path: &'a Path,
    pub system: bool,
    pub file: &'a ElfFile,
}

/// Check, before anything is mapped, every version each object needs against the
/// DT_VERDEF of the object providing it, as ld.so's `_dl_check_map_versions` will.
/// A provider outside `objects` (already loaded, or not needed) is not checked here.
pub fn check_versions(objects: &[Versioned<'_>]) -> Result<()> {
    for user in objects {
        for (provider_name, versions) in &user.file.verneed {
            let Some(provider) = objects.iter().find(|o| o.soname == provider_name) else {
                continue;
            };
            if let Some(missing) = versions
                .iter()
                .find(|v| !v.weak && !provider.file.verdef.contains(&v.name))
            {
                return Err(Error::MissingVersion {
                    library: user.soname.to_string(),
                    path: user.path.to_path_buf(),
                    version: missing.name.clone(),
                    provider: Box::new(VersionProvider {
                        name: provider_name.clone(),
                        path: provider.path.to_path_buf(),
                        kind: if provider.system {
                            "glibc"
                        } else {
                            "host library"
                        },
                        running_glibc: running_version(),
                    }),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prefix::elffile::NeededVersion;

    #[test]
    fn running_glibc_is_known() {
        assert!(running_version().starts_with("2."));
        let libc = running_libc_path().expect("libc.so.6 mapped in a test process");
        assert!(libc.to_string_lossy().contains("libc.so.6"), "{libc:?}");
    }

    #[test]
    fn missing_version_names_both_sides() {
        let provider = ElfFile {
            verdef: vec!["libc.so.6".into(), "GLIBC_2.2.5".into()],
            ..ElfFile::default()
        };
        let user = ElfFile {
            verneed: vec![(
                "libc.so.6".into(),
                vec![
                    NeededVersion {
                        name: "GLIBC_2.2.5".into(),
                        weak: false,
                    },
                    NeededVersion {
                        name: "GLIBC_2.98".into(),
                        weak: true,
                    },
                    NeededVersion {
                        name: "GLIBC_2.99".into(),
                        weak: false,
                    },
                ],
            )],
            ..ElfFile::default()
        };
        let objects = [
            Versioned {
                soname: "libc.so.6",
                path: Path::new("/lib/libc.so.6"),
                system: true,
                file: &provider,
            },
            Versioned {
                soname: "libfoo.so.1",
                path: Path::new("/p/libfoo.so.1"),
                system: false,
                file: &user,
            },
        ];
        let err = check_versions(&objects).unwrap_err().to_string();
        assert!(
            err.contains("GLIBC_2.99") && !err.contains("GLIBC_2.98"),
            "{err}"
        );
        assert!(
            err.contains("libfoo.so.1") && err.contains("/lib/libc.so.6"),
            "{err}"
        );
        assert!(err.contains("glibc"), "{err}");
    }
}
