//! What the program's namespace holds, found without loading anything: the one
//! `RTLD_NOLOAD` probe of the crate, and what is read through it (glibc's libraries the
//! program has loaded, for the search, which is handed them as
//! [`Running`](crate::prefix::glibc::Running) and reads no memory itself).

use std::ffi::CString;
use std::path::PathBuf;
use std::ptr::NonNull;

use crate::dlfcn::Handle;
use crate::elf::{LinkMap, Object};
use crate::elffile::ElfFile;
use crate::machine::Machine;

/// Whether the program's namespace holds `soname` (nothing is loaded).
pub(crate) fn has_loaded(soname: &str) -> bool {
    holding(soname, |_| ()).is_some()
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
pub fn glibc_facts(soname: &str) -> Option<(PathBuf, ElfFile)> {
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
/// namespace under an absolute path, holding a reference so that it cannot be unloaded
/// meanwhile.
fn with_loaded<T>(
    soname: &str,
    read: impl FnOnce(*const LinkMap, PathBuf) -> Option<T>,
) -> Option<T> {
    holding(soname, |handle| {
        let path = handle.path();
        path.is_absolute()
            .then(|| read(handle.link_map(), path))
            .flatten()
    })
    .flatten()
}

/// Run `use_it` on the handle of `soname` if the program's namespace holds it, with a
/// reference held meanwhile. libc and ld.so need none (see `never_unloaded`); any other
/// is held by a NOLOAD dlopen, which only looks the name up among the loaded objects of
/// the caller's namespace: nothing is mapped and no constructor runs.
fn holding<T>(soname: &str, use_it: impl FnOnce(Handle) -> T) -> Option<T> {
    if let Some(map) = never_unloaded(soname) {
        return Some(use_it(Handle(NonNull::new(map.cast_mut().cast())?)));
    }
    let name = CString::new(soname).ok()?;
    // SAFETY: see above; the name is NUL-terminated.
    let raw = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
    let handle = Handle(NonNull::new(raw)?);
    let result = use_it(handle);
    // SAFETY: drops the reference the NOLOAD dlopen took; the object stays loaded for
    // whoever loaded it.
    unsafe { libc::dlclose(handle.as_ptr()) };
    Some(result)
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
        _ if soname == Machine::NATIVE.ld_so() => __tls_get_addr as *const std::ffi::c_void,
        _ => return None,
    };
    crate::linkmap::containing(inside)
}

extern "C" {
    fn gnu_get_libc_version() -> *const libc::c_char;
    /// Defined by ld.so (only its address is taken).
    fn __tls_get_addr();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_libc_is_found() {
        let libc = running_libc_path().expect("libc.so.6 mapped in a test process");
        assert!(libc.to_string_lossy().contains("libc.so.6"), "{libc:?}");
    }

    #[test]
    fn the_probe_sees_what_is_loaded_and_loads_nothing() {
        assert!(has_loaded("libc.so.6"));
        assert!(has_loaded(Machine::NATIVE.ld_so()));
        // libz is on this machine but not in the test process: NOLOAD must not load it.
        assert!(!has_loaded("libz.so.1"));
        assert!(!has_loaded("libz.so.1"), "still not loaded after the probe");
        assert!(!has_loaded("bad\0name"));
    }
}
