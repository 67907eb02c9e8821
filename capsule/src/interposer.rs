//! The namespace's first object (`interpose/interpose.c`, embedded at build time) and its
//! table, which routes the namespace's dl family, its environment overlay and its data-file
//! functions.

use std::ffi::{c_char, c_int, c_long, c_ulong, c_void, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;

use crate::disk_cache;
use crate::dlfcn::{self, Handle, Lmid};
use crate::elf::LinkMap;
use crate::error::{Error, Result};

/// The interposer's bytes, built by build.rs from `interpose/interpose.c`.
const IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/interpose.so"));
/// The same without the data-file wrappers, for the prefix `/`, where there is nothing
/// to map: `open`, `stat`, ... stay libc's own, at no cost.
const IMAGE_ROOT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/interpose-root.so"));
/// The images' hashes, which name their files in the cache (computed by the compiler).
const IMAGE_ID: u64 = disk_cache::fnv1a(IMAGE);
const IMAGE_ROOT_ID: u64 = disk_cache::fnv1a(IMAGE_ROOT);

/// "CPSULSV5", cut to `unsigned long` on 32-bit machines as the C side cuts it.
const TABLE_MAGIC: c_ulong = 0x3556_534c_5553_5043_u64 as c_ulong;

/// Mirror of `struct capsule_table` in interpose.c; the C side checks nothing, so the
/// runtime checks magic and size before writing.
#[repr(C)]
pub(crate) struct Table {
    magic: c_ulong,
    size: c_ulong,
    pub lmid: c_long,
    pub dlopen: Option<extern "C" fn(c_long, *const c_char, c_int, *const c_void) -> *mut c_void>,
    pub dlmopen:
        Option<extern "C" fn(c_long, c_long, *const c_char, c_int, *const c_void) -> *mut c_void>,
    pub dlsym:
        Option<extern "C" fn(c_long, *mut c_void, *const c_char, *const c_void) -> *mut c_void>,
    pub dlvsym: Option<
        extern "C" fn(
            c_long,
            *mut c_void,
            *const c_char,
            *const c_char,
            *const c_void,
        ) -> *mut c_void,
    >,
    pub dlclose: Option<extern "C" fn(c_long, *mut c_void) -> c_int>,
    pub dlerror: Option<extern "C" fn(c_long) -> *mut c_char>,
    // The program's libc.
    pub errno_location: Option<unsafe extern "C" fn() -> *mut c_int>,
    pub getenv: Option<unsafe extern "C" fn(*const c_char) -> *mut c_char>,
    pub secure_getenv: Option<unsafe extern "C" fn(*const c_char) -> *mut c_char>,
    /// The environment overlay (see interpose.c), leaked; null: none.
    pub env_overrides: *const c_char,
    pub secure: c_ulong,
    /// The runtime's activation of the forwarder being loaded (see interpose.c).
    pub forwarder_init: Option<extern "C" fn(c_long)>,
    pub load: Option<extern "C" fn(c_long, *const c_char, *mut c_char, usize) -> *mut c_void>,
    /// The owner's entry that wires a later shim up in its stead (see `shim`), for copies
    /// whose `shim_abi` is the owner's.
    pub shim_abi: c_ulong,
    pub shim_init: Option<extern "C" fn(*const c_void) -> c_int>,
    /// The canonical prefix, NUL-terminated (leaked: it lives as long as the namespace).
    pub prefix: *const c_char,
    /// Host-tree paths whose files are read from the prefix, NUL-separated, ending with
    /// an empty one; null (nothing rewritten) for the prefix `/`. Leaked like `prefix`.
    pub data_dirs: *const c_char,
    pub prefix_len: c_ulong,
    /// Non-zero: the C side prints each rewritten path (`CAPSULE_DEBUG=files`).
    pub trace_files: c_ulong,
    /// Written by the C side: the libc functions its wrappers forward to, in the order
    /// of `libc_file`, NUL-separated, ending with an empty name; `name@VERSION` where
    /// the name may have no default version.
    pub file_function_names: *const c_char,
    pub libc_file: [*mut c_void; FILE_FUNCTIONS_CAPACITY],
}

/// The longest prefix path the interposer's path buffers take (its PATH_CAPACITY), NUL
/// included.
pub(crate) const PREFIX_CAPACITY: usize = 4096;
const FILE_FUNCTIONS_CAPACITY: usize = 48;

/// The interposer loaded at the head of a namespace.
pub(crate) struct Interposer {
    handle: Handle,
    table: *mut Table,
    lmid: Lmid,
}

impl Interposer {
    /// Create a new namespace whose first object is the interposer.
    pub fn load_into_new_namespace(prefix: &Path) -> Result<Interposer> {
        let key = prefix.as_os_str().as_bytes();
        if key.len() >= PREFIX_CAPACITY {
            return Err(Error::BadPrefix {
                prefix: prefix.to_path_buf(),
                reason: format!("the path is longer than {} bytes", PREFIX_CAPACITY - 1),
            });
        }
        let (image, kind, id) = if wraps_data_files(prefix) {
            (IMAGE, "data", IMAGE_ID)
        } else {
            (IMAGE_ROOT, "root", IMAGE_ROOT_ID)
        };
        let handle = match disk_cache::cached(image, kind, id) {
            Ok(path) => match open_new_namespace(&path) {
                Ok(handle) => Some(handle),
                Err(message) => {
                    crate::debug!(
                        Libs,
                        "{}: {message}; loading the interposer from memory",
                        path.display()
                    );
                    None
                }
            },
            Err(why) => {
                crate::debug!(Libs, "interposer not cached: {why}; loading it from memory");
                None
            }
        };
        let handle = match handle {
            Some(handle) => handle,
            None => {
                let (fd, path) = disk_cache::in_memory(c"capsule-interpose", image)?;
                let handle = open_new_namespace(&path).map_err(|message| {
                    dlfcn::load_error(
                        &format!("a capsule for prefix {}", prefix.display()),
                        &path,
                        &message,
                    )
                })?;
                // Kept open for the life of the process (one descriptor per namespace),
                // so that the name in the link map stays readable for debuggers.
                std::mem::forget(fd);
                handle
            }
        };
        let interposer = Interposer::attach(handle).ok_or_else(|| Error::Malformed {
            object: "capsule interposer".into(),
            what:
                "table: capsule_table is missing, or was built from another version of interpose.c"
                    .into(),
        })?;
        let prefix_c = dlfcn::path_cstring(prefix)?;
        interposer.with_table(|t| t.prefix = Box::leak(prefix_c.into_boxed_c_str()).as_ptr());
        Ok(interposer)
    }

    /// The interposer heading the namespace of `handle`, if that object is one of ours
    /// with a table of this runtime's layout.
    pub fn attach(handle: Handle) -> Option<Interposer> {
        let table = handle.symbol(c"capsule_table")?.as_ptr() as *mut Table;
        // SAFETY: capsule_table is a data object of an interposer, at least 16 bytes
        // (magic and size come first in every version of the struct).
        let (magic, size) = unsafe { ((*table).magic, (*table).size) };
        if magic != TABLE_MAGIC || size as usize != std::mem::size_of::<Table>() {
            return None;
        }
        let lmid = dlfcn::lmid_of(handle).ok()?;
        // SAFETY: the table was checked above. A fresh table is not yet published; an
        // existing one already holds this same lmid, so the store changes nothing.
        unsafe { (*table).lmid = lmid };
        Some(Interposer {
            handle,
            table,
            lmid,
        })
    }

    /// Whether the owning runtime can load into this namespace for another copy.
    pub fn has_loader(&self) -> bool {
        // SAFETY: the table lives as long as the process; `load` is written once before
        // the namespace is published.
        unsafe { (*self.table).load.is_some() }
    }

    /// The owner's load entry (see `has_loader`).
    pub fn loader(
        &self,
    ) -> Option<extern "C" fn(c_long, *const c_char, *mut c_char, usize) -> *mut c_void> {
        // SAFETY: as in `has_loader`.
        unsafe { (*self.table).load }
    }

    /// The owner's entry that wires a shim up, if its shim code is this copy's (`abi`).
    pub fn shim_entry(&self, abi: u64) -> Option<extern "C" fn(*const c_void) -> c_int> {
        // SAFETY: as in `has_loader`: written once by the owner before it publishes the
        // namespace, or by the owner's shim under ld.so's lock before any later shim runs.
        let table = unsafe { &*self.table };
        table.shim_init.filter(|_| table.shim_abi == abi as c_ulong)
    }

    /// The canonical prefix this namespace serves.
    pub fn prefix(&self) -> &Path {
        // SAFETY: the table lives as long as the process; `prefix` is written once, to a
        // leaked NUL-terminated string, before the namespace is published.
        let prefix = unsafe { (*self.table).prefix };
        if prefix.is_null() {
            return Path::new("");
        }
        // SAFETY: as above.
        let bytes = unsafe { CStr::from_ptr(prefix) }.to_bytes();
        Path::new(std::ffi::OsStr::from_bytes(bytes))
    }

    pub fn lmid(&self) -> Lmid {
        self.lmid
    }

    /// Fill the table. Only called while the namespace is being set up, before any
    /// other object is loaded into it, so no thread reads the table meanwhile.
    pub fn with_table(&self, fill: impl FnOnce(&mut Table)) {
        // SAFETY: see above; table points at the interposer's checked capsule_table.
        fill(unsafe { &mut *self.table })
    }

    /// Point the table's libc entries at the program's libc (the namespace's libc.so.6 is a
    /// forwarder to it), and the data-file wrappers at its file functions.
    pub fn attach_program_libc(&self) -> Result<()> {
        // SAFETY: getauxval has no preconditions.
        let secure = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
        self.with_table(|t| {
            t.errno_location = Some(libc::__errno_location);
            t.getenv = Some(libc::getenv);
            t.secure_getenv = Some(crate::config::secure_getenv);
            t.secure = c_ulong::from(secure);
        });
        if wraps_data_files(self.prefix()) {
            let libc_map = crate::loaded::program_libc_link_map().ok_or_else(|| Error::Dl {
                operation: "find",
                target: "the program's libc.so.6".into(),
                message: dlfcn::last_dl_error(),
            })?;
            // SAFETY: the program's libc stays loaded for the life of the process.
            let libc_object = unsafe { crate::elf::Object::from_link_map(libc_map) }?;
            self.attach_file_functions(&libc_object);
        }
        Ok(())
    }

    /// Point the data-file wrappers (`open`, `fopen`, `stat`, ...) at the program libc's
    /// own functions, named by the interposer's table.
    fn attach_file_functions(&self, libc_object: &crate::elf::Object<'_>) {
        self.with_table(|t| {
            // SAFETY: the C side points it at its list in its read-only data.
            let names = unsafe { file_function_names(t.file_function_names) };
            for (slot, (name, version)) in t.libc_file.iter_mut().zip(names) {
                debug_assert!(INTERPOSED.contains(&name.to_bytes()), "{name:?}");
                // libc's own hash table answers as dlsym/dlvsym would (the default version,
                // else the named one), at a fraction of their cost.
                let in_libc = |version: Option<&str>| {
                    let symbol = libc_object.lookup(name.to_str().ok()?, version).ok()??;
                    (symbol.kind == crate::elf::SymbolKind::Function)
                        .then(|| NonNull::new(symbol.address as *mut c_void))?
                };
                let version_str = version.as_ref().and_then(|v| v.to_str().ok());
                let found = in_libc(None).or_else(|| version_str.and_then(|v| in_libc(Some(v))));
                *slot = found.map_or(std::ptr::null_mut(), |p| p.as_ptr());
            }
        });
    }

    /// Give code inside the capsule the environment overlay `entries` (`NAME=VALUE` to
    /// set, `NAME` to unset).
    pub fn set_environment_overlay(&self, entries: &[Vec<u8>]) {
        if entries.is_empty() {
            return;
        }
        let mut packed = Vec::new();
        for entry in entries {
            packed.extend_from_slice(entry);
            packed.push(0);
        }
        packed.push(0);
        // Leaked: the C side reads it for the life of the namespace.
        let packed = Box::leak(packed.into_boxed_slice()).as_ptr() as *const c_char;
        self.with_table(|t| t.env_overrides = packed);
    }

    /// Rewrite absolute paths under `dirs` (host-tree paths) into this namespace's
    /// prefix for the code inside; no `dirs`: rewrite nothing. `trace`: the interposer
    /// prints each rewritten path. Fails if the list does not fit the table.
    pub fn map_data_dirs(&self, dirs: &[&str], trace: bool) -> Result<()> {
        if let Some(bad) = dirs.iter().find(|d| d.contains('\0')) {
            return Err(Error::Malformed {
                object: "capsule interposer".into(),
                what: format!("table: the data directory {bad:?} contains a NUL byte"),
            });
        }
        let packed = (!dirs.is_empty()).then(|| {
            let mut packed = Vec::new();
            for dir in dirs {
                packed.extend_from_slice(dir.as_bytes());
                packed.push(0);
            }
            packed.push(0);
            // Leaked: the C side reads it for the life of the namespace.
            Box::leak(packed.into_boxed_slice()).as_ptr() as *const c_char
        });
        let prefix_len = self.prefix().as_os_str().len() as c_ulong;
        self.with_table(|t| {
            t.data_dirs = packed.unwrap_or(std::ptr::null());
            t.prefix_len = prefix_len;
            t.trace_files = c_ulong::from(trace);
        });
        Ok(())
    }

    /// The head of the namespace's link-map list (the interposer itself).
    pub fn link_map(&self) -> *const LinkMap {
        // The interposer is the first object of its namespace.
        self.handle.link_map()
    }

    /// The interposer's own definition of `name`, if it interposes it.
    pub fn own_symbol(&self, name: &CStr) -> Option<*mut c_void> {
        if !is_interposed(name.to_bytes()) {
            return None;
        }
        self.handle.symbol(name).map(|p| p.as_ptr())
    }
}

/// Whether the interposer defines `name` (see [`INTERPOSED`]): asked for every symbol a
/// shim fills its table with, so a sorted copy is searched.
pub(crate) fn is_interposed(name: &[u8]) -> bool {
    static SORTED: std::sync::OnceLock<Vec<&'static [u8]>> = std::sync::OnceLock::new();
    SORTED
        .get_or_init(|| {
            let mut names = INTERPOSED.to_vec();
            names.sort_unstable();
            names
        })
        .binary_search(&name)
        .is_ok()
}

/// Every name the interposer defines for the namespace (besides its table).
pub(crate) const INTERPOSED: &[&[u8]] = &[
    b"dlopen",
    b"dlmopen",
    b"dlsym",
    b"dlvsym",
    b"dlclose",
    b"dlerror",
    b"getenv",
    b"secure_getenv",
    // The environment overlay and the data files (see interpose.c): paths under the host's data directories are
    // rewritten into the prefix.
    b"open",
    b"open64",
    b"openat",
    b"openat64",
    b"__open_2",
    b"__open64_2",
    b"__openat_2",
    b"__openat64_2",
    b"fopen",
    b"fopen64",
    b"opendir",
    b"scandir",
    b"scandir64",
    b"access",
    b"faccessat",
    b"eaccess",
    b"euidaccess",
    b"stat",
    b"stat64",
    b"lstat",
    b"lstat64",
    b"fstatat",
    b"fstatat64",
    b"statx",
    b"__xstat",
    b"__xstat64",
    b"__lxstat",
    b"__lxstat64",
    b"__fxstatat",
    b"__fxstatat64",
    b"realpath",
];

/// The names in the table's `file_function_names`: each `(name, version to ask for when
/// the name has no default version)`.
///
/// # Safety
/// `list` must be null or point to NUL-terminated strings back to back, ended by an empty
/// one, that stay alive.
unsafe fn file_function_names(list: *const c_char) -> Vec<(CString, Option<CString>)> {
    let mut entries = Vec::new();
    let mut at = list;
    while !at.is_null() && entries.len() < FILE_FUNCTIONS_CAPACITY {
        // SAFETY: guaranteed by the caller: `at` starts one of the list's strings.
        let entry = unsafe { CStr::from_ptr(at) }.to_bytes();
        if entry.is_empty() {
            break;
        }
        entries.push(entry);
        // SAFETY: the next string (or the closing empty one) follows this one's NUL.
        at = unsafe { at.add(entry.len() + 1) };
    }
    entries
        .into_iter()
        .filter_map(|entry| {
            let mut parts = entry.splitn(2, |&b| b == b'@');
            let name = CString::new(parts.next()?).ok()?;
            let version = parts.next().and_then(|v| CString::new(v).ok());
            Some((name, version))
        })
        .collect()
}

/// Whether the interposer of a namespace for `prefix` wraps the data-file functions:
/// not for `/`, where the host's files are the program's.
fn wraps_data_files(prefix: &Path) -> bool {
    prefix != Path::new("/")
}

/// `dlmopen(LM_ID_NEWLM)` of the interposer image at `path`; `Err`: dlerror's message.
fn open_new_namespace(path: &Path) -> std::result::Result<Handle, String> {
    let cpath = dlfcn::path_cstring(path).map_err(|e| e.to_string())?;
    // SAFETY: cpath is NUL-terminated. The interposer has no dependencies and no
    // constructors, so nothing runs before we fill its table.
    let raw = unsafe { libc::dlmopen(libc::LM_ID_NEWLM, cpath.as_ptr(), libc::RTLD_NOW) };
    std::ptr::NonNull::new(raw)
        .map(Handle)
        .ok_or_else(dlfcn::last_dl_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lookup `attach_file_functions` makes in libc's own hash table finds what
    /// dlsym finds, for every name the interposer wraps that libc defines.
    #[test]
    fn libc_hash_lookup_agrees_with_dlsym() {
        // SAFETY: NOLOAD only finds the already loaded libc; the handle is dropped below.
        let raw =
            unsafe { libc::dlopen(c"libc.so.6".as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
        let handle = Handle(NonNull::new(raw).expect("libc.so.6 is loaded"));
        // SAFETY: libc stays loaded for the whole test process.
        let object = unsafe { crate::elf::Object::from_link_map(handle.link_map()) }.unwrap();
        let mut compared = 0;
        for name in INTERPOSED {
            let name = std::str::from_utf8(name).unwrap();
            let Some(found) = object.lookup(name, None).unwrap() else {
                continue;
            };
            if found.kind != crate::elf::SymbolKind::Function {
                continue;
            }
            let wanted = handle
                .symbol(&CString::new(name).unwrap())
                .map(|p| p.as_ptr() as usize);
            assert_eq!(Some(found.address), wanted, "{name}");
            compared += 1;
        }
        assert!(compared >= 20, "only {compared} names compared");
        // SAFETY: drops the reference the NOLOAD dlopen took.
        unsafe { libc::dlclose(raw) };
    }
}
