//! Which libraries a capsule shares with the program instead of loading its own copy,
//! the program's copies, and the check that a program's copy is new enough for the host.
//!
//! Shared into every capsule:
//! - **glibc's libraries** (libc, libm, libpthread, libdl, librt, ...: [`GLIBC_SHARED`]),
//!   always: per-process state (malloc, errno, stdio buffers, pthread keys, atfork
//!   handlers, the environment, the single-threaded flag) must exist once, and a second
//!   libc in a namespace splits all of it in two.
//! - **the window-system client libraries** ([`WINDOW_SYSTEM`]), by default: the program
//!   hands their objects (`Display*`, `xcb_connection_t*`, `wl_display*`) to the driver,
//!   which must handle them with the same code and globals (extension registries, the
//!   connection's locks) that made them.
//!
//! `CAPSULE_SHARE` adds sonames (`libfoo.so.1`) and removes defaults (`-libX11.so.6`),
//! separated by commas, colons or spaces; [`share`] and [`unshare`] do the same from Rust.
//! glibc's libraries cannot be removed.
//!
//! A shared library is the program's copy: the one it has loaded, else the one its own
//! tree gives (`dlopen` by soname in the program's namespace, as the program would load
//! it). If its tree has none, the capsule keeps the host's copy private.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::marker::PhantomData;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::dlfcn::Handle;
use crate::elf::{LinkMap, Object};
use crate::elffile::{Exports, Import, Reader, Symbols};
use crate::error::{Error, Result, SharedCopies};
use crate::machine::Machine;

/// glibc's libraries, which a capsule always shares (ld.so, one of them, is shared by
/// glibc itself).
pub const GLIBC_SHARED: &[&str] = crate::prefix::glibc::GLIBC_SONAMES;

/// The window-system client libraries shared by default, and why each is.
pub const WINDOW_SYSTEM: &[(&str, &str)] = &[
    ("libX11.so.6", "Display* crosses the border (GLX, EGL on X11, Vulkan's xlib WSI)"),
    ("libX11-xcb.so.1", "turns the program's Display* into its xcb connection"),
    ("libxcb.so.1", "xcb_connection_t* crosses the border (DRI3, Vulkan's xcb WSI)"),
    ("libxcb-*", "extensions of the program's xcb connection (dri2, dri3, glx, present, sync, xfixes, randr, shm, ...): their state lives in it"),
    ("libXext.so.6", "extension records of the program's Display*"),
    ("libXau.so.6", "libxcb's own dependency (authorisation)"),
    ("libXdmcp.so.6", "libxcb's own dependency"),
    ("libXfixes.so.3", "extension of the program's Display*"),
    ("libXxf86vm.so.1", "extension of the program's Display* (GLX)"),
    ("libXrandr.so.2", "extension of the program's Display* (Vulkan's display WSI)"),
    ("libXrender.so.1", "extension of the program's Display*"),
    ("libxshmfence.so.1", "fences shared with the X server over the program's connection"),
    ("libwayland-client.so.0", "wl_display*, wl_surface* cross the border (EGL and Vulkan on Wayland)"),
    ("libwayland-cursor.so.0", "works on the program's wl_display"),
    ("libwayland-egl.so.1", "wl_egl_window* crosses the border"),
];

/// Changes made through [`share`] and [`unshare`]: (soname, shared).
static CHANGES: Mutex<Vec<(String, bool)>> = Mutex::new(Vec::new());

/// Share `soname` with the program in capsules loaded from now on.
pub fn share(soname: &str) -> Result<()> {
    check_soname("capsule::sharing::share", soname)?;
    CHANGES.lock().push((soname.to_string(), true));
    Ok(())
}

/// Keep `soname` private to capsules loaded from now on (the host's copy is loaded).
/// glibc's libraries are always shared: an error.
pub fn unshare(soname: &str) -> Result<()> {
    check_soname("capsule::sharing::unshare", soname)?;
    if crate::prefix::glibc::is_glibc(soname) {
        return Err(Error::BadVariable {
            variable: "capsule::sharing::unshare",
            value: soname.into(),
            reason: "glibc's libraries are always shared: one libc per process".into(),
        });
    }
    CHANGES.lock().push((soname.to_string(), false));
    Ok(())
}

fn check_soname(variable: &'static str, soname: &str) -> Result<()> {
    if soname.is_empty() || soname.contains(['/', ',', ':', ' ', '\0']) {
        return Err(Error::BadVariable {
            variable,
            value: soname.into(),
            reason: "not a soname (like libX11.so.6)".into(),
        });
    }
    Ok(())
}

/// `CAPSULE_SHARE`, parsed once: (soname, shared) in order.
fn environment() -> Result<&'static [(String, bool)]> {
    static PARSED: OnceLock<std::result::Result<Vec<(String, bool)>, String>> = OnceLock::new();
    let parsed = PARSED.get_or_init(|| {
        let Some(value) = crate::config::secure_var("CAPSULE_SHARE") else {
            return Ok(Vec::new());
        };
        parse(&value.to_string_lossy())
    });
    parsed.as_deref().map_err(|reason| Error::BadVariable {
        variable: "CAPSULE_SHARE",
        value: crate::config::secure_var("CAPSULE_SHARE")
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default(),
        reason: reason.clone(),
    })
}

/// `CAPSULE_SHARE`'s syntax: sonames to share, `-soname` to keep private.
fn parse(value: &str) -> std::result::Result<Vec<(String, bool)>, String> {
    let mut out = Vec::new();
    for word in value
        .split([',', ':', ' ', '\t', '\n'])
        .filter(|w| !w.is_empty())
    {
        let (soname, shared) = match word.strip_prefix('-') {
            Some(rest) => (rest, false),
            None => (word, true),
        };
        if soname.is_empty() || soname.contains('/') || !soname.contains(".so") {
            return Err(format!(
                "{word:?} is not a soname (like libX11.so.6, or -libX11.so.6 to keep it private); separate entries with commas"
            ));
        }
        if !shared && crate::prefix::glibc::is_glibc(soname) {
            return Err(format!(
                "{soname} cannot be kept private: glibc's libraries are always shared (one libc per process)"
            ));
        }
        out.push((soname.to_string(), shared));
    }
    Ok(out)
}

/// Whether capsules share `soname` with the program.
pub fn is_shared(soname: &str) -> Result<bool> {
    if crate::prefix::glibc::is_glibc(soname) {
        return Ok(true);
    }
    let mut shared = WINDOW_SYSTEM
        .iter()
        .any(|(pattern, _)| match pattern.strip_suffix('*') {
            Some(stem) => soname.starts_with(stem),
            None => *pattern == soname,
        });
    for (name, on) in environment()?.iter().chain(CHANGES.lock().iter()) {
        if name == soname {
            shared = *on;
        }
    }
    Ok(shared)
}

/// The program's copy of a shared library: loaded in the program's namespace, never
/// unloaded (the capsule binds to it).
pub(crate) struct ProgramCopy {
    pub handle: Handle,
    pub path: PathBuf,
}

/// The program's copy of `soname`: the one it has loaded, else one loaded now from its
/// tree; `None` if its tree has none.
pub(crate) fn program_copy(soname: &str) -> Option<ProgramCopy> {
    if soname == "libc.so.6" {
        // Always loaded, never unloaded, and found without a dlopen.
        let map = crate::loaded::program_libc_link_map()?;
        let handle = Handle(NonNull::new(map as *mut std::ffi::c_void)?);
        return Some(ProgramCopy {
            path: handle.path(),
            handle,
        });
    }
    let name = CString::new(soname).ok()?;
    // SAFETY: name is NUL-terminated. Called from the runtime, which lives in the
    // program's namespace, so dlopen searches (and loads into) the program's; an object
    // already loaded is returned as it is (RTLD_LOCAL does not demote a global one).
    let raw = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) };
    let handle = Handle(NonNull::new(raw)?);
    Some(ProgramCopy {
        path: handle.path(),
        handle,
    })
}

/// The objects before a program copy in the program's namespace (its global scope in load
/// order: the executable, preloads, libraries), whose definitions win over the copy's;
/// the vDSO left out (it is not in the scope).
pub(crate) struct Scope<'a> {
    /// Each object's view; `None` for one that cannot be read.
    views: Vec<Option<Arc<Object<'static>>>>,
    lifetime: PhantomData<&'a ()>,
}

/// Views of the program's objects made for earlier scopes and shims, by link map. Every forwarder
/// a load shares needs the twenty-odd objects before its copy, and making a view costs
/// more than checking that a kept one still describes its object (`Object::describes`:
/// the same program headers where it was loaded, the same dynamic section), which is done
/// at every use, so a view outlives neither an unloaded object nor its link map's reuse.
static VIEWS: Mutex<Vec<(usize, Arc<Object<'static>>)>> = Mutex::new(Vec::new());

impl<'a> Scope<'a> {
    /// The scope before `target`, a program copy's link map.
    ///
    /// # Safety
    /// The caller holds ld.so's lock (a forwarder's constructor runs under it), so no
    /// object of the chain is unloaded meanwhile; the views must not outlive that.
    pub unsafe fn before(target: *const LinkMap) -> Scope<'a> {
        // SAFETY: forwarded from this function's contract.
        let maps = unsafe { maps_before(target) };
        // SAFETY: live link maps, under ld.so's lock (see above).
        let views = unsafe { views_of(&maps) }
            .into_iter()
            .map(Result::ok)
            .collect();
        Scope {
            views,
            lifetime: PhantomData,
        }
    }

    /// How many objects the scope holds.
    pub fn len(&self) -> usize {
        self.views.len()
    }

    /// Object `i`'s view (None if it cannot be read).
    pub fn object(&self, i: usize) -> Option<&Object<'a>> {
        self.views.get(i)?.as_deref()
    }
}

/// The link maps of the objects before `target` (a program copy's) in the program's
/// namespace, the vDSO left out.
///
/// # Safety
/// As [`Scope::before`].
pub(crate) unsafe fn maps_before(target: *const LinkMap) -> Vec<*const LinkMap> {
    let mut maps = Vec::new();
    // SAFETY: the base namespace's link maps, stable under ld.so's lock (contract).
    unsafe {
        let mut map = crate::linkmap::base_namespace_head();
        while !map.is_null() && map != target {
            let name = (*map).name().to_bytes();
            if !is_vdso(name) {
                maps.push(map);
            }
            map = (*map).l_next;
        }
        if map.is_null() {
            // Not in the chain (cannot happen for a program copy): nothing is known to
            // come before it.
            maps.clear();
        }
    }
    maps
}

/// Whether the object named `name` (its `l_name`) is the vDSO, which is not in the
/// program's scope: both scope walks ([`maps_before`], [`copy_identity`]) leave it out,
/// so that they count places alike.
fn is_vdso(name: &[u8]) -> bool {
    name.starts_with(b"linux-vdso") || name.starts_with(b"linux-gate")
}

/// What names a program copy's forwarder besides its files: the copy's own GNU build ID,
/// and the objects before it, which a forwarder that remembers its activation is made for.
#[derive(Default)]
pub(crate) struct CopyIdentity {
    /// The copy's build ID; None if it has none.
    pub build_id: Option<Vec<u8>>,
    /// Each earlier object's build ID, in scope order (the vDSO left out, as
    /// [`maps_before`] does), with its length; None if one has none (then nothing is
    /// remembered), or the scope is longer than a remembered entry can point into.
    pub scope: Option<Vec<u8>>,
}

/// The [`CopyIdentity`] of the copy whose link map is `target`, read from the objects'
/// note segments (no view, no file) inside `dl_iterate_phdr`, which visits the program's
/// objects in link-map order and holds the loader's list lock: none is unloaded meanwhile.
/// Empty if `target` is not in the program's namespace.
pub(crate) fn copy_identity(target: *const LinkMap) -> CopyIdentity {
    // SAFETY: a program copy's link map: never unloaded.
    let (bias, dynamic) = unsafe { ((*target).l_addr, (*target).l_ld as usize) };
    let mut scope = Some(Vec::new());
    let mut objects = 0;
    let build_id = crate::iterate_phdr::first(|info| {
        if info.dlpi_phdr.is_null() {
            return None;
        }
        // SAFETY: glibc passes a valid `info` whose dlpi_phdr points to dlpi_phnum program
        // headers; the object stays mapped while the callback runs (see above).
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let at = info.dlpi_addr as usize;
        // SAFETY: the object is loaded at `at` with these headers, mapped meanwhile.
        let id = || unsafe { crate::elf::build_id_at(at, phdrs) };
        if at == bias && crate::elf::dynamic_address(at, phdrs) == Some(dynamic) {
            return Some(id().map(<[u8]>::to_vec));
        }
        let name = if info.dlpi_name.is_null() {
            &[][..]
        } else {
            // SAFETY: a NUL-terminated name of glibc's, valid during the callback.
            unsafe { std::ffi::CStr::from_ptr(info.dlpi_name) }.to_bytes()
        };
        if is_vdso(name) {
            return None;
        }
        objects += 1;
        let entry = (objects <= crate::forwarder::MAX_REMEMBERED_SCOPE)
            .then(id)
            .flatten()
            .and_then(|id| Some((u8::try_from(id.len()).ok()?, id)));
        match (entry, scope.as_mut()) {
            (Some((len, id)), Some(key)) => {
                key.push(len);
                key.extend_from_slice(id);
            }
            _ => scope = None,
        }
        None
    });
    match build_id {
        Some(build_id) => CopyIdentity { build_id, scope },
        None => CopyIdentity::default(),
    }
}

/// Views of the objects `maps` describe: those of the program's namespace kept between
/// calls (see VIEWS), the others made now.
///
/// # Safety
/// `maps` are live link maps whose objects stay loaded while the views are used (a kept
/// view is checked against its object at every call, not between).
pub(crate) unsafe fn views_of(maps: &[*const LinkMap]) -> Vec<Result<Arc<Object<'static>>>> {
    // SAFETY: forwarded from this function's contract.
    let headers = unsafe { crate::elf::program_headers_of(maps) };
    let mut kept = VIEWS.lock();
    maps.iter()
        .zip(headers)
        .map(|(&map, phdrs)| {
            let Some(phdrs) = phdrs else {
                // Another namespace's object (dl_iterate_phdr lists the caller's alone).
                // SAFETY: forwarded from this function's contract.
                return unsafe { Object::from_link_map(map) }.map(Arc::new);
            };
            // SAFETY: a live link map (contract).
            let (bias, dynamic) = unsafe { ((*map).l_addr, (*map).l_ld as usize) };
            let at = kept.iter().position(|(m, _)| *m == map as usize);
            if let Some(at) = at {
                if kept[at].1.describes(bias, dynamic, phdrs) {
                    return Ok(kept[at].1.clone());
                }
                kept.swap_remove(at);
            }
            // SAFETY: a live link map and its own program headers. The view is kept past
            // this call, but used again only while it describes the object (see VIEWS).
            let view = Arc::new(unsafe { Object::from_link_map_headers(map, phdrs) }?);
            kept.push((map as usize, view.clone()));
            Ok(view)
        })
        .collect()
}

/// Whether `a` and `b` name the same file.
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    // The usual case (the program's tree is the host's): no need to ask the file system.
    if a == b {
        return true;
    }
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The dynamic symbols of a library file of the host tree (one the capsule loads, or the
/// host's copy of one it shares), read with the one reader of files.
pub(crate) fn host_symbols(path: &Path) -> Result<Symbols> {
    Reader::open(path)
        .and_then(|r| r.expect(Machine::NATIVE))
        .and_then(Reader::symbols)
        .map_err(bad_elf(path))
}

/// A reason of `elffile`'s, as the error naming the file.
pub(crate) fn bad_elf(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |reason| Error::BadElf {
        path: path.to_path_buf(),
        reason,
    }
}

/// What a host object needs from a shared library whose program copy differs from the
/// host's: refused if ld.so would refuse it (a missing version, a missing data symbol);
/// the missing functions it calls are returned (they are stubs in the forwarder). The
/// needer and the host's copy are files, read by `elffile`; the program's copy is loaded,
/// and viewed in place.
pub(crate) fn check_skew(
    needer: (&str, &Path, &Symbols),
    shared: &str,
    program: &Object<'_>,
    program_path: &Path,
    host: &Exports<'_>,
    host_path: &Path,
) -> Result<Vec<String>> {
    let (library, path, symbols) = needer;
    let refuse = |what: String| Error::SharedTooOld {
        library: library.into(),
        path: path.into(),
        what,
        copies: Box::new(SharedCopies {
            soname: shared.into(),
            program: program_path.into(),
            host: host_path.into(),
        }),
    };
    for (from, versions) in &symbols.verneed {
        for version in versions {
            if from == shared && !version.weak && program.version_index(&version.name)?.is_none() {
                return Err(refuse(format!("version {}", version.name)));
            }
        }
    }
    let mut stubbed = BTreeSet::new();
    for Import {
        name,
        version,
        file,
        weak,
    } in symbols.imports().map_err(bad_elf(path))?
    {
        if weak || file.is_some_and(|f| f != shared) {
            continue;
        }
        // An unversioned import is the shared library's if the host's copy defines it.
        let Some(definition) = host.lookup(name, version) else {
            continue;
        };
        if program.lookup(name, version)?.is_some() {
            continue;
        }
        if definition.is_function() {
            stubbed.insert(name.to_string());
        } else {
            return Err(refuse(format!("the data symbol {name}")));
        }
    }
    Ok(stubbed.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libcs_identity_is_its_build_id_and_the_scope_before_it() {
        let libc = crate::loaded::program_libc_link_map().expect("libc's link map");
        let identity = copy_identity(libc);
        // SAFETY: libc is never unloaded.
        let view = unsafe { Object::from_link_map(libc) }.expect("a view of libc");
        let id = identity.build_id.expect("Debian's libc has a build ID");
        let file = std::fs::read(view.name()).expect("read libc's file");
        assert!(
            id.len() >= 16 && file.windows(id.len()).any(|w| *w == id[..]),
            "libc's build ID {id:02x?} is not in its file"
        );
        // The test program (and whatever comes before libc), each ID with its length.
        let scope = identity
            .scope
            .expect("every object before libc has a build ID");
        // SAFETY: as above.
        let before = unsafe { maps_before(libc) }.len();
        let (mut at, mut ids) = (0, 0);
        while at < scope.len() {
            at += 1 + usize::from(scope[at]);
            ids += 1;
        }
        assert_eq!((at, ids), (scope.len(), before), "{scope:02x?}");
    }

    #[test]
    fn share_variable_adds_and_removes() {
        assert_eq!(
            parse("libfoo.so.1, -libX11.so.6:libbar.so.2").unwrap(),
            [
                ("libfoo.so.1".to_string(), true),
                ("libX11.so.6".to_string(), false),
                ("libbar.so.2".to_string(), true)
            ]
        );
        assert!(parse("-libc.so.6").unwrap_err().contains("always shared"));
        assert!(parse("/usr/lib/libfoo.so.1")
            .unwrap_err()
            .contains("not a soname"));
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn defaults_cover_glibc_and_the_window_system() {
        for soname in [
            "libc.so.6",
            "libm.so.6",
            "libX11.so.6",
            "libxcb.so.1",
            "libxcb-dri3.so.0",
            "libwayland-client.so.0",
        ] {
            assert!(is_shared(soname).unwrap(), "{soname}");
        }
        for soname in [
            "libstdc++.so.6",
            "libLLVM-15.so.1",
            "libz.so.1",
            "libdrm.so.2",
        ] {
            assert!(!is_shared(soname).unwrap(), "{soname}");
        }
    }
}
