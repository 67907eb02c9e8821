//! glibc's dl interface as the runtime uses it: handles, namespace ids and errors. A leaf:
//! it imports nothing of the runtime but the ELF views' link map and the error type.

use std::ffi::{c_void, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use crate::elf::LinkMap;
use crate::error::{Error, Result};

/// glibc's `Lmid_t`.
pub(crate) type Lmid = libc::Lmid_t;

/// A namespace id as the public API gives it, whatever the width of `long`.
#[allow(clippy::useless_conversion)] // i32 -> i64 on 32-bit machines
pub(crate) fn lmid_number(lmid: Lmid) -> i64 {
    i64::from(lmid)
}

/// A `dlopen` handle (glibc's is the object's link map).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Handle(pub NonNull<c_void>);

// SAFETY: a dlopen handle is an opaque token that glibc accepts from any thread.
unsafe impl Send for Handle {}
// SAFETY: as above.
unsafe impl Sync for Handle {}

impl Handle {
    pub fn as_ptr(self) -> *mut c_void {
        self.0.as_ptr()
    }

    pub fn as_usize(self) -> usize {
        self.0.as_ptr() as usize
    }

    /// The object's link map: glibc's `dlopen` handle is a pointer to it.
    pub fn link_map(self) -> *const LinkMap {
        self.as_ptr() as *const LinkMap
    }

    /// The path the object was loaded from (its `l_name`), for a handle the caller holds.
    pub fn path(self) -> PathBuf {
        // SAFETY: glibc's handle is the object's live link map (the caller holds a
        // reference).
        unsafe { (*self.link_map()).path() }
    }

    /// `dlsym` on this handle.
    pub fn symbol(self, name: &CStr) -> Option<NonNull<c_void>> {
        // SAFETY: the handle came from dlmopen and its object is never unloaded while a
        // Capsule refers to it; name is NUL-terminated.
        NonNull::new(unsafe { libc::dlsym(self.as_ptr(), name.as_ptr()) })
    }

    /// `dlvsym` on this handle.
    pub fn symbol_versioned(self, name: &CStr, version: &CStr) -> Option<NonNull<c_void>> {
        // SAFETY: as in `symbol`.
        NonNull::new(unsafe { libc::dlvsym(self.as_ptr(), name.as_ptr(), version.as_ptr()) })
    }
}

/// The namespace id of `handle`.
pub(crate) fn lmid_of(handle: Handle) -> Result<Lmid> {
    let mut lmid: Lmid = 0;
    // SAFETY: RTLD_DI_LMID writes one Lmid_t; handle is live.
    let rc = unsafe {
        libc::dlinfo(
            handle.as_ptr(),
            libc::RTLD_DI_LMID,
            &mut lmid as *mut _ as *mut c_void,
        )
    };
    if rc != 0 {
        return Err(Error::Dl {
            operation: "dlinfo(RTLD_DI_LMID) of",
            target: format!("{handle:?}"),
            message: last_dl_error(),
        });
    }
    Ok(lmid)
}

/// The message of the calling thread's last failed dl call in the program's libc.
///
/// dlerror's state is per thread and per libc: this reads the program's libc, which is
/// where the runtime's own dlmopen/dlsym calls report.
pub(crate) fn last_dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string valid until the next dl
    // call on this thread; we copy it at once.
    let msg = unsafe { libc::dlerror() };
    if msg.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: see above.
        unsafe { CStr::from_ptr(msg) }
            .to_string_lossy()
            .into_owned()
    }
}

/// Turn a failed dlmopen's message into the error a user can act on.
pub(crate) fn load_error(library: &str, path: &Path, message: &str) -> Error {
    if message.contains("no more namespaces available") {
        Error::NamespacesExhausted {
            library: library.into(),
            message: message.into(),
        }
    } else if message.contains("static TLS") {
        Error::StaticTlsExhausted {
            library: library.into(),
            message: message.into(),
        }
    } else {
        Error::Dl {
            operation: "dlmopen",
            target: format!("{library} ({})", path.display()),
            message: message.into(),
        }
    }
}

pub(crate) fn path_cstring(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::BadPath {
        path: path.to_path_buf(),
        prefix: PathBuf::from("/"),
        reason: "the path contains a NUL byte".into(),
    })
}
