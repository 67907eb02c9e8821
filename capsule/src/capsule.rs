//! The public face of the runtime: a host library loaded into a capsule.

use std::ffi::{c_void, CString};
use std::marker::PhantomData;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use crate::dlfcn::Handle;
use crate::error::{Error, Result};
use crate::namespace::{self, Namespace};

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
    /// The library once more, through libloading, which looks symbols up (`dlsym`, with
    /// its `dlerror` handling): the load's own handle, never closed (a capsule is never
    /// unloaded), so dropping the capsule leaves the library loaded.
    library: std::mem::ManuallyDrop<libloading::os::unix::Library>,
}

/// A symbol of a capsule, typed: a function pointer or a pointer to data, valid while the
/// capsule it came from is borrowed (libloading's `Symbol<'lib, T>`). Derefs to `T`.
pub struct Symbol<'lib, T> {
    pointer: NonNull<c_void>,
    capsule: PhantomData<&'lib T>,
}

impl<T> Symbol<'_, T> {
    /// The symbol's address.
    pub fn as_ptr(&self) -> *mut c_void {
        self.pointer.as_ptr()
    }
}

impl<T> Deref for Symbol<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `Capsule::get` checked that T is pointer-sized, and its caller promised
        // that T is the symbol's type (a function pointer or a raw pointer), whose value is
        // the address itself, as libloading's Symbol reads it.
        unsafe { &*(&self.pointer as *const NonNull<c_void> as *const T) }
    }
}

impl<T> std::fmt::Debug for Symbol<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Symbol({:p})", self.pointer)
    }
}

// SAFETY: the symbol is an address in a library that stays loaded while it is borrowed;
// sending or sharing it is as safe as sending or sharing a T.
unsafe impl<T: Send> Send for Symbol<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Symbol<'_, T> {}

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
        let namespace = namespace::for_prefix(prefix, crate::dl::route_to_runtime)?;
        let loaded = namespace.load_library(library)?;
        // SAFETY: the load's handle, from a successful dlmopen; the Library never closes it
        // (ManuallyDrop), as nothing else does.
        let library = std::mem::ManuallyDrop::new(unsafe {
            libloading::os::unix::Library::from_raw(loaded.handle.as_ptr())
        });
        Ok(Capsule {
            soname: loaded.soname,
            path: loaded.path,
            namespace,
            handle: loaded.handle,
            library,
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
        // dlsym itself, not libloading's `get` (which reads dlerror to report a miss and so
        // clears it): a miss leaves this thread's dlerror set, as the real library's would
        // (the shims' dlsym wrapper answers a program's dlsym with it).
        self.handle
            .symbol(&cname)
            .ok_or_else(|| self.not_found(name, None))
    }

    /// [`Capsule::symbol`], typed, on libloading's conventions: the symbol borrows the
    /// capsule and derefs to `T`.
    ///
    /// ```no_run
    /// # fn main() -> capsule::Result<()> {
    /// let z = capsule::Capsule::load("libz.so.1", std::path::Path::new("/"))?;
    /// // SAFETY: zlibVersion is `const char *zlibVersion(void)`.
    /// let version = unsafe { z.get::<extern "C" fn() -> *const std::ffi::c_char>("zlibVersion")? };
    /// let _ = version();
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Safety
    /// `T` must be the symbol's type: an `extern "C"` function pointer of its signature, or
    /// a raw pointer to its data. A wrong `T` is undefined behaviour when used, as with
    /// libloading's `Library::get`. (A `T` that is not pointer-sized fails to compile.)
    pub unsafe fn get<T>(&self, name: &str) -> Result<Symbol<'_, T>> {
        const {
            assert!(
                std::mem::size_of::<T>() == std::mem::size_of::<*mut c_void>(),
                "Capsule::get: T must be a function pointer or a raw pointer"
            )
        };
        let cname = self.c_name(name)?;
        let pointer = match self.namespace.interposer.own_symbol(&cname) {
            Some(own) => NonNull::new(own),
            // libloading's lookup (it reads dlerror to tell a miss, and so clears it).
            // SAFETY: looked up as a plain address, which is what dlsym returns.
            None => unsafe {
                self.library
                    .get::<*mut c_void>(cname.as_bytes_with_nul())
                    .ok()
                    .and_then(|symbol| NonNull::new(symbol.into_raw()))
            },
        };
        Ok(Symbol {
            pointer: pointer.ok_or_else(|| self.not_found(name, None))?,
            capsule: PhantomData,
        })
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
        crate::dlfcn::lmid_number(self.namespace.lmid)
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

    /// The namespace the capsule is loaded in.
    pub(crate) fn namespace(&self) -> &'static Namespace {
        self.namespace
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
            namespace: crate::dlfcn::lmid_number(self.namespace.lmid),
        }
    }
}
