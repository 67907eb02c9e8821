//! Finding a library and its whole dependency closure inside a host tree (the prefix),
//! as glibc's ld.so would find it if that tree were `/`.
//!
//! Search order for a DT_NEEDED name of object O (ld.so's, minus LD_LIBRARY_PATH, which
//! belongs to the program's tree, not the host's):
//! DT_RPATH of O and of the objects that loaded it (only while O has no DT_RUNPATH),
//! DT_RUNPATH of O, the prefix's `etc/ld.so.cache` (else the directories of its
//! `etc/ld.so.conf`), then the default directories. glibc's own libraries are taken from
//! the running system, never from the prefix.

use std::path::{Path, PathBuf};

use crate::error::Result;

/// A host tree, opened once: its root, and its cache or conf directories.
#[derive(Debug)]
pub struct Prefix {
    root: PathBuf,
}

/// Why a library was taken from where it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The caller named a path.
    Explicit,
    /// DT_RPATH of the requesting object or one that loaded it.
    Rpath,
    /// DT_RUNPATH of the requesting object.
    Runpath,
    /// The prefix's `etc/ld.so.cache`.
    Cache,
    /// A directory of the prefix's `etc/ld.so.conf`.
    Conf,
    /// One of the default directories.
    Default,
    /// A glibc library, taken from the running system so that it matches the running ld.so.
    System,
}

/// One object of a closure.
#[derive(Clone, Debug)]
pub struct Object {
    /// DT_SONAME, or the name it was asked for by when it has none.
    pub soname: String,
    /// Where it is on this machine (prefix root joined, symlinks resolved inside the prefix).
    pub path: PathBuf,
    /// Why this file was chosen.
    pub origin: Origin,
    /// Its DT_NEEDED names, in order.
    pub needed: Vec<String>,
    /// The soname of the object that first asked for it (None for the requested library).
    pub needed_by: Option<String>,
}

/// A library and everything it needs, dependencies before the objects that need them;
/// the requested library is last.
#[derive(Clone, Debug)]
pub struct Closure {
    pub objects: Vec<Object>,
}

impl Prefix {
    /// Open a host tree: check it is a readable directory and read its linker configuration.
    pub fn open(root: &Path) -> Result<Prefix> {
        Ok(Prefix {
            root: root.to_path_buf(),
        })
    }

    /// The prefix's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolve `library` (a soname, or a path inside the prefix) and its DT_NEEDED closure.
    pub fn resolve_closure(&self, library: &str) -> Result<Closure> {
        self.resolve_closure_from(library, None, &|_| false)
    }

    /// Resolve `library` as `requester` (a path on this machine of an object already in
    /// the namespace) would by dlopen: its RUNPATH/RPATH and `$ORIGIN` apply. Objects whose
    /// soname `is_loaded` accepts are not resolved again, nor their dependencies.
    pub fn resolve_closure_from(
        &self,
        library: &str,
        requester: Option<&Path>,
        is_loaded: &dyn Fn(&str) -> bool,
    ) -> Result<Closure> {
        let _ = (library, requester, is_loaded);
        unimplemented!("prefix resolution")
    }
}
