//! The public face of the runtime: a host library loaded into a capsule.

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use std::ffi::CString;

use crate::error::{Error, Result};
use crate::namespace::{self, Handle, Namespace};

/// A host library and its dependency closure, loaded into a private link-map namespace.
/// Capsules loaded from the same prefix share one namespace.
///
/// A capsule is never unloaded: its namespace lives until the process ends (see the
/// `namespace` module for why).
pub struct Capsule {
    soname: String,
    path: PathBuf,
    namespace: &'static Namespace,
    handle: Handle,
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
        crate::config::phase_start();
        let namespace = namespace::for_prefix(prefix)?;
        let loaded = namespace.load_library(library)?;
        Ok(Capsule {
            soname: loaded.soname,
            path: loaded.path,
            namespace,
            handle: loaded.handle,
        })
    }

    /// Load `soname` with the prefix the environment names for it:
    /// `CAPSULE_<SONAME>_PREFIX`, then `CAPSULE_PREFIX`, then `/`. This is what shims call.
    pub fn load_from_env(soname: &str) -> Result<Capsule> {
        Capsule::load(soname, &crate::config::prefix_for(soname))
    }

    /// The address of `name` as `dlsym` on the library's handle finds it (the library,
    /// then its dependencies). The dl functions (and, for a prefix other than `/`,
    /// `getenv` and the data-file functions) are the interposer's, which the whole
    /// namespace uses.
    pub fn symbol(&self, name: &str) -> Result<NonNull<c_void>> {
        let cname = self.c_name(name)?;
        if let Some(own) = self.namespace.interposer.own_symbol(&cname) {
            return NonNull::new(own).ok_or_else(|| self.not_found(name, None));
        }
        self.handle
            .symbol(&cname)
            .ok_or_else(|| self.not_found(name, None))
    }

    /// The address of `name` in exactly `version`, as `dlvsym` finds it.
    pub fn symbol_versioned(&self, name: &str, version: &str) -> Result<NonNull<c_void>> {
        let cname = self.c_name(name)?;
        let cversion = self.c_name(version)?;
        self.handle
            .symbol_versioned(&cname, &cversion)
            .ok_or_else(|| self.not_found(name, Some(version)))
    }

    /// Every object in the capsule's namespace, in link-map order (the interposer that
    /// heads every capsule namespace first).
    pub fn objects(&self) -> Vec<LoadedObject> {
        self.namespace.objects()
    }

    /// The glibc namespace id (`Lmid_t`); never 0 (the program's own namespace).
    pub fn namespace_id(&self) -> i64 {
        self.namespace.lmid
    }

    /// The library's soname.
    pub fn soname(&self) -> &str {
        &self.soname
    }

    /// Where the library was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The host prefix the capsule was loaded from (canonical).
    pub fn prefix(&self) -> &Path {
        self.namespace.interposer.prefix()
    }

    /// The library's link map (glibc's handle of an object is its link map).
    pub(crate) fn link_map(&self) -> *const crate::elf::LinkMap {
        self.handle.link_map()
    }

    fn c_name(&self, s: &str) -> Result<CString> {
        CString::new(s).map_err(|_| self.not_found(s, None))
    }

    fn not_found(&self, name: &str, version: Option<&str>) -> Error {
        Error::SymbolNotFound {
            symbol: name.into(),
            version: version.map(Into::into),
            library: self.soname.clone(),
            namespace: self.namespace.lmid,
        }
    }
}
