//! The public face of the runtime: a host library loaded into a capsule.

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use crate::error::Result;

/// A host library and its dependency closure, loaded into a private link-map namespace.
/// Capsules loaded from the same prefix share one namespace.
pub struct Capsule {
    soname: String,
    path: PathBuf,
    lmid: i64,
}

/// One object of a namespace, as its link map lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedObject {
    /// The path the object was loaded from (its `l_name`).
    pub path: PathBuf,
    /// Its load bias (`l_addr`).
    pub base: usize,
}

impl Capsule {
    /// Load `library` (a soname, or a path inside the prefix) and its closure from the host
    /// tree at `prefix` into a capsule.
    pub fn load(library: &str, prefix: &Path) -> Result<Capsule> {
        let _ = (library, prefix);
        unimplemented!("namespace loader")
    }

    /// Load `soname` with the prefix the environment names for it:
    /// `CAPSULE_<SONAME>_PREFIX`, then `CAPSULE_PREFIX`, then `/`. This is what shims call.
    pub fn load_from_env(soname: &str) -> Result<Capsule> {
        Capsule::load(soname, &crate::config::prefix_for(soname))
    }

    /// The address of `name` as `dlsym` on the library's handle finds it.
    pub fn symbol(&self, name: &str) -> Result<NonNull<c_void>> {
        let _ = name;
        unimplemented!("namespace loader")
    }

    /// The address of `name` in exactly `version`, as `dlvsym` finds it.
    pub fn symbol_versioned(&self, name: &str, version: &str) -> Result<NonNull<c_void>> {
        let _ = (name, version);
        unimplemented!("namespace loader")
    }

    /// Every object in the capsule's namespace, in link-map order.
    pub fn objects(&self) -> Vec<LoadedObject> {
        unimplemented!("namespace loader")
    }

    /// The glibc namespace id (`Lmid_t`); never 0 (the program's own namespace).
    pub fn namespace_id(&self) -> i64 {
        self.lmid
    }

    /// The library's soname.
    pub fn soname(&self) -> &str {
        &self.soname
    }

    /// Where the library was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
