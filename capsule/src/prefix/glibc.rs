//! glibc's own libraries, which a capsule takes from the running system, and the check
//! that every symbol version the closure needs is defined by whoever provides it.

use std::ffi::CStr;
use std::path::{Path, PathBuf};

use crate::elffile::ElfFile;
use crate::error::{Error, Result, VersionProvider};
use crate::machine::Machine;

/// Sonames built from glibc's source, besides the dynamic linker's own
/// ([`Machine::ld_so`]). They share GLIBC_PRIVATE interfaces with the dynamic linker of
/// the same build, so a copy from another tree would not work with the running ld.so:
/// they are always taken from the running system.
pub const GLIBC_SONAMES: &[&str] = &[
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

/// Whether `soname` is one of glibc's own libraries on this process's machine.
pub fn is_glibc(soname: &str) -> bool {
    is_glibc_on(Machine::NATIVE, soname)
}

/// Whether `soname` is one of glibc's own libraries on `machine`.
pub fn is_glibc_on(machine: Machine, soname: &str) -> bool {
    soname == machine.ld_so() || GLIBC_SONAMES.contains(&soname)
}

/// The version of the running glibc, e.g. `2.36`.
pub fn running_version() -> String {
    // SAFETY: gnu_get_libc_version takes no arguments and returns a pointer to a static
    // NUL-terminated string inside libc.
    let version = unsafe { CStr::from_ptr(gnu_get_libc_version()) };
    version.to_string_lossy().into_owned()
}

/// What the search takes from the running process about its own glibc, handed in by the
/// runtime (the prefix module reads no memory and loads nothing). With it, glibc's
/// libraries of this process's machine are the program's loaded copies, read from
/// memory, and closures are remembered under the running libc's name; without it (a
/// [`Prefix::open`](super::Prefix::open), capsule-gen's), glibc's libraries are searched
/// for in the files of `/`, as for another machine, and nothing is remembered.
#[derive(Clone, Copy, Debug)]
pub struct Running {
    /// The file of the program's libc.so.6 (several may be installed).
    pub libc_path: fn() -> Option<PathBuf>,
    /// A glibc library the program has loaded: the path ld.so opened it under, and what
    /// the search needs of it. None when the program has not loaded it, or it cannot be
    /// read (the search then takes it from the files).
    pub loaded: fn(&str) -> Option<(PathBuf, ElfFile)>,
}

extern "C" {
    fn gnu_get_libc_version() -> *const libc::c_char;
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
/// `machine` is the closure's: the glibc an error names is the running one only for this
/// process's machine.
pub fn check_versions(objects: &[Versioned<'_>], machine: Machine) -> Result<()> {
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
                        running_glibc: glibc_version(objects, machine),
                    }),
                });
            }
        }
    }
    Ok(())
}

/// The version of the glibc that `objects` run on: the running one for this process's
/// machine; for another, the newest `GLIBC_2.N` its libc (taken from the system's files)
/// defines, the same number for every release that added symbols.
fn glibc_version(objects: &[Versioned<'_>], machine: Machine) -> String {
    if machine == Machine::NATIVE {
        return running_version();
    }
    let number = |v: &str| -> Option<Vec<u32>> {
        v.strip_prefix("GLIBC_")?
            .split('.')
            .map(|n| n.parse().ok())
            .collect()
    };
    objects
        .iter()
        .filter(|o| o.soname == "libc.so.6")
        .flat_map(|o| o.file.verdef.iter())
        .filter_map(|v| Some((number(v)?, v)))
        .max()
        .map_or_else(
            || format!("of this system's {} libc", machine.name()),
            |(_, v)| v["GLIBC_".len()..].to_string(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elffile::NeededVersion;

    #[test]
    fn running_glibc_is_known() {
        assert!(running_version().starts_with("2."));
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
                        index: 2,
                    },
                    NeededVersion {
                        name: "GLIBC_2.98".into(),
                        weak: true,
                        index: 3,
                    },
                    NeededVersion {
                        name: "GLIBC_2.99".into(),
                        weak: false,
                        index: 4,
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
        let err = check_versions(&objects, Machine::NATIVE)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("GLIBC_2.99") && !err.contains("GLIBC_2.98"),
            "{err}"
        );
        assert!(
            err.contains("libfoo.so.1") && err.contains("/lib/libc.so.6"),
            "{err}"
        );
        assert!(err.contains("glibc"), "{err}");
        assert!(
            err.contains(&format!("glibc {} or older", running_version())),
            "{err}"
        );
        // A closure of another machine runs on that machine's glibc, not the running one.
        let other = Machine::ALL
            .into_iter()
            .find(|&m| m != Machine::NATIVE)
            .unwrap();
        let err = check_versions(&objects, other).unwrap_err().to_string();
        assert!(err.contains("glibc 2.2.5 or older"), "{err}");
    }
}
