//! The dlopen family inside a capsule.
//!
//! Code in the namespace calls the interposer's `dlopen`, `dlsym`, ... which land here
//! with the namespace id and the caller's address. Names are resolved inside the prefix
//! with the same rules as the capsule's own closure; objects land in the same namespace,
//! with forwarders for the libraries shared with the program (see `sharing`).
//!
//! `RTLD_GLOBAL` cannot be passed on (glibc rejects it for dlmopen namespaces, and crashes
//! when code inside one asks for it: sourceware bug 18684), so it is emulated: the object
//! joins the list that `dlsym(RTLD_DEFAULT)` searches inside the capsule.
//! `RTLD_DEEPBIND` is dropped: the namespace's global scope holds only the interposer, so
//! the only symbols whose lookup order DEEPBIND would change are the interposer's (the dl
//! family, the environment overlay, the data-file functions), which must stay the
//! interposer's.
//!
//! `dlopen(NULL)` inside a capsule returns a handle for the capsule's global scope: `dlsym`
//! on it searches what `dlsym(RTLD_DEFAULT)` searches (like `dlopen(NULL)` in a program).

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_long, c_void, CStr, CString};
use std::path::{Path, PathBuf};

use crate::dlfcn::Handle;
use crate::interposer::Interposer;
use crate::namespace::{self, Namespace};

/// The handle `dlopen(NULL)` returns inside a capsule.
static GLOBAL_SCOPE: u8 = 0;

fn global_scope_handle() -> *mut c_void {
    &GLOBAL_SCOPE as *const u8 as *mut c_void
}

/// Point the interposer's dl entries at this module.
pub(crate) fn route_to_runtime(interposer: &Interposer) {
    interposer.with_table(|t| {
        t.dlopen = Some(capsule_dlopen);
        t.dlmopen = Some(capsule_dlmopen);
        t.dlsym = Some(capsule_dlsym);
        t.dlvsym = Some(capsule_dlvsym);
        t.dlclose = Some(capsule_dlclose);
        t.dlerror = Some(capsule_dlerror);
    });
}

thread_local! {
    /// The error the next `dlerror` inside a capsule reports, and the string it returned
    /// last (kept alive until the next call, as glibc's is).
    static ERROR: RefCell<(Option<CString>, Option<CString>)> = const { RefCell::new((None, None)) };
}

// Libraries' destructors call dlclose and dlerror from `exit`, after this thread's
// thread-locals are gone: then there is no error state to keep, and `dlerror` has nothing
// to report. A panic here would abort the process (these are `extern "C"` functions).

fn set_error(message: String) {
    crate::debug!(Dlopen, "{}", message.trim_start_matches("capsule: "));
    set_error_quietly(message);
}

/// Set the error without a debug line, where the caller logged the event already.
fn set_error_quietly(message: String) {
    let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
    let _ = ERROR.try_with(|e| e.borrow_mut().0 = Some(message));
}

fn clear_error() {
    let _ = ERROR.try_with(|e| e.borrow_mut().0 = None);
}

extern "C" fn capsule_dlerror(_lmid: c_long) -> *mut c_char {
    ERROR
        .try_with(|e| {
            let mut e = e.borrow_mut();
            e.1 = e.0.take();
            e.1.as_ref()
                .map_or(std::ptr::null_mut(), |s| s.as_ptr() as *mut c_char)
        })
        .unwrap_or(std::ptr::null_mut())
}

extern "C" fn capsule_dlopen(
    lmid: c_long,
    file: *const c_char,
    mode: c_int,
    caller: *const c_void,
) -> *mut c_void {
    let Some(ns) = namespace::by_lmid(lmid) else {
        set_error(format!("capsule: dlopen from unknown namespace {lmid}"));
        return std::ptr::null_mut();
    };
    if file.is_null() {
        clear_error();
        crate::debug!(
            Dlopen,
            "dlopen(NULL) in namespace {lmid}: the capsule's global scope"
        );
        return global_scope_handle();
    }
    // SAFETY: a non-NULL `file` from dlopen's caller is a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(file) }
        .to_string_lossy()
        .into_owned();
    match open_in_capsule(ns, &name, mode, caller) {
        Ok(handle) => {
            clear_error();
            handle.as_ptr()
        }
        Err(message) => {
            set_error(message);
            std::ptr::null_mut()
        }
    }
}

extern "C" fn capsule_dlmopen(
    lmid: c_long,
    target: c_long,
    file: *const c_char,
    mode: c_int,
    caller: *const c_void,
) -> *mut c_void {
    // Inside a capsule, its own namespace plays the base namespace's part.
    if target == libc::LM_ID_BASE || target == lmid {
        return capsule_dlopen(lmid, file, mode, caller);
    }
    set_error(format!(
        "capsule: dlmopen into namespace {target} from inside capsule namespace {lmid} is not supported; use dlopen"
    ));
    std::ptr::null_mut()
}

/// dlopen `name` for code at `caller` in namespace `ns`.
fn open_in_capsule(
    ns: &'static Namespace,
    name: &str,
    mode: c_int,
    caller: *const c_void,
) -> Result<Handle, String> {
    crate::config::phase_start();
    let requester = caller_object(caller);
    crate::phase!("dlopen {name}: caller identified");
    let flags = describe_mode(mode);
    let from = requester
        .as_ref()
        .map_or("?".into(), |p| p.display().to_string());
    let handle = if mode & libc::RTLD_NOLOAD != 0 {
        open_noload(ns, name, mode)?
    } else if name.contains('/') && !name.starts_with('/') {
        // ld.so takes a relative path with a slash relative to the working directory.
        ns.open(Path::new(name), mode, name)
            .map_err(|e| e.to_string())?
    } else if name.starts_with('/') {
        open_absolute(ns, name, requester.as_deref(), mode)?
    } else {
        open_resolved(ns, name, requester.as_deref(), mode)?
    };
    if mode & libc::RTLD_GLOBAL != 0 {
        ns.add_global(handle);
    }
    crate::phase!("dlopen {name}: done");
    crate::debug!(
        Dlopen,
        "dlopen(\"{name}\", {flags}) from {from} -> namespace {}{}",
        ns.lmid,
        if mode & libc::RTLD_GLOBAL != 0 {
            " (RTLD_GLOBAL emulated: visible to dlsym(RTLD_DEFAULT) in the capsule)"
        } else {
            ""
        }
    );
    Ok(handle)
}

/// Resolve `name` inside the prefix, load what the namespace lacks, and return the handle
/// of the object itself holding exactly one reference, as a plain dlopen would.
fn open_resolved(
    ns: &'static Namespace,
    name: &str,
    requester: Option<&Path>,
    mode: c_int,
) -> Result<Handle, String> {
    let Some(owned) = ns.owned() else {
        return Err(format!(
            "capsule: namespace {} is not owned by this runtime",
            ns.lmid
        ));
    };
    // Already in the namespace (glibc matches sonames as ld.so does): another reference.
    if !name.contains('/') {
        if let Some(handle) = find_loaded(ns, name, mode) {
            return Ok(handle);
        }
    }
    // Not loaded a moment ago: open the closure by path. A dependency the namespace
    // already holds is not resolved again, nor are its own dependencies: the NOLOAD open
    // that finds it also takes a reference (one step, under ld.so's lock), so no other
    // thread's dlclose can unload it before the objects that need it are loaded. Objects
    // another thread loads meanwhile are matched by ld.so by name or file identity.
    let held: RefCell<Vec<(String, Handle)>> = RefCell::new(Vec::new());
    let is_loaded = |soname: &str| {
        if soname.contains('/') {
            return false;
        }
        if held.borrow().iter().any(|(s, _)| s == soname) {
            return true;
        }
        match find_loaded(ns, soname, libc::RTLD_LAZY | libc::RTLD_LOCAL) {
            Some(handle) => {
                held.borrow_mut().push((soname.to_string(), handle));
                true
            }
            None => false,
        }
    };
    let resolved = owned
        .prefix
        .resolve_closure_from(name, requester, &is_loaded);
    crate::phase!(
        "dlopen {name}: closure resolved ({} objects to load)",
        resolved.as_ref().map_or(0, |c| c.objects.len())
    );
    let held: Vec<Handle> = held.into_inner().into_iter().map(|(_, h)| h).collect();
    let result = resolved
        .map_err(|e| e.to_string())
        .and_then(|closure| open_closure(ns, name, &closure, mode));
    close_all(&held);
    result
}

/// Open `closure` (resolved for `name`) by path, dependencies first.
fn open_closure(
    ns: &'static Namespace,
    name: &str,
    closure: &crate::prefix::Closure,
    mode: c_int,
) -> Result<Handle, String> {
    if closure.objects.is_empty() {
        // Another thread loaded the library itself meanwhile: one more reference to it.
        return open_noload(ns, name, mode)
            .map_err(|_| format!("capsule: {name}: the resolver returned an empty closure"));
    }
    let deps_mode = (mode & !libc::RTLD_NODELETE) | libc::RTLD_LOCAL;
    let (handles, target) = ns
        .load_closure(closure, deps_mode, mode)
        .map_err(|e| e.to_string())?;
    // The object now holds its dependencies; drop the references taken to load them first.
    close_all(&handles);
    target.ok_or_else(|| format!("capsule: {name}: nothing to load (the dynamic linker itself)"))
}

/// The object `name` names if the namespace holds it (a reference taken), else dlmopen's
/// message, as a `RTLD_NOLOAD` dlopen reports it.
///
/// A library shared with the program is loaded as far as the capsule is concerned when
/// the program has loaded it (its copy is the capsule's: libglvnd asks whether
/// `libX11.so.6` is loaded to tell an X11 `Display*`), so its forwarder is put in then.
fn open_noload(ns: &'static Namespace, name: &str, mode: c_int) -> Result<Handle, String> {
    if let Some(handle) = find_loaded(ns, name, mode) {
        return Ok(handle);
    }
    if !name.contains('/') && ns.share_if_program_has(name).map_err(|e| e.to_string())? {
        if let Some(handle) = find_loaded(ns, name, mode) {
            return Ok(handle);
        }
    }
    let path = noload_path(ns, name);
    ns.open(&path, mode | libc::RTLD_NOLOAD, name)
        .map_err(|e| e.to_string())
}

/// [`open_noload`] where a miss is an answer, not an error (no message is built).
fn find_loaded(ns: &'static Namespace, name: &str, mode: c_int) -> Option<Handle> {
    if !name.contains('/') && !ns.may_hold(name) {
        return None;
    }
    ns.find_loaded(&noload_path(ns, name), mode)
}

/// What ld.so matches a NOLOAD open of `name` against: a soname as is, an absolute path
/// as the file of the host tree it names.
fn noload_path(ns: &Namespace, name: &str) -> PathBuf {
    if name.starts_with('/') {
        let root = ns.interposer.prefix();
        root.join(path_in_host_tree(root, name).trim_start_matches('/'))
    } else {
        PathBuf::from(name)
    }
}

// ---- Absolute paths -------------------------------------------------------------------
//
// Code inside the capsule is the host's: an absolute path it opens (Mesa's built-in
// `/usr/lib/x86_64-linux-gnu/dri/swrast_dri.so`, a Vulkan manifest's `library_path`, a
// `LIBGL_DRIVERS_PATH` entry) names a file of the host tree, so it is looked up inside the
// prefix, symlinks followed there, and its dependencies resolved as for a soname. A path
// that already lies under the prefix (`/run/host/usr/lib/...`, built from a manifest's
// directory) is taken as the host-tree path it names.
//
// When the prefix lacks the file, the program's file is used only outside the host's
// library directories (a game passing its own plugin by path): under `/lib`, `/usr/lib`,
// `/lib64` or `/usr/lib64` a missing file means the host has no such driver, and the
// runtime's copy would mix two builds of one stack, so that is an error naming the path.

/// dlopen an absolute path for code inside the capsule (see above).
fn open_absolute(
    ns: &'static Namespace,
    name: &str,
    requester: Option<&Path>,
    mode: c_int,
) -> Result<Handle, String> {
    let root = ns.interposer.prefix().to_path_buf();
    let inside = path_in_host_tree(&root, name);
    let file_name = Path::new(inside).file_name().unwrap_or_default();
    if crate::prefix::glibc::is_glibc(&file_name.to_string_lossy()) {
        // glibc's own libraries come from the running system, whatever path names them.
        return open_resolved(ns, inside, requester, mode);
    }
    let in_prefix = crate::prefix::fs::resolve(&root, Path::new(inside))
        .map_err(|e| e.to_string())?
        .map(|real| crate::prefix::fs::host_path(&root, &real));
    if let Some(file) = in_prefix {
        crate::debug!(
            Dlopen,
            "dlopen path {name} -> {} (mapped into prefix {})",
            file.display(),
            root.display()
        );
        return open_resolved(ns, inside, requester, mode);
    }
    if root != Path::new("/") && !in_host_library_dir(inside) && Path::new(name).is_file() {
        crate::debug!(
            Dlopen,
            "dlopen path {name}: not in prefix {}, outside the host's library directories: taking the program's file",
            root.display()
        );
        return ns
            .open(Path::new(name), mode, name)
            .map_err(|e| e.to_string());
    }
    Err(format!(
        "capsule: {name} not found in prefix {} (looked for {}); a path under the host's library directories is never taken from the program's tree: install it in the host tree or fix the prefix",
        root.display(),
        crate::prefix::fs::host_path(&root, Path::new(inside)).display()
    ))
}

/// The host-tree path an absolute `name` stands for: itself, or, when it already lies
/// under the prefix `root` (other than `/`), the part after it.
fn path_in_host_tree<'a>(root: &Path, name: &'a str) -> &'a str {
    if root == Path::new("/") {
        return name;
    }
    let root = root.to_string_lossy();
    match name.strip_prefix(root.as_ref()) {
        Some(rest) if rest.starts_with('/') => rest,
        _ => name,
    }
}

/// Whether a host-tree path lies under one of ld.so's library directories.
fn in_host_library_dir(inside: &str) -> bool {
    ["/lib/", "/usr/lib/", "/lib64/", "/usr/lib64/"]
        .iter()
        .any(|dir| inside.starts_with(dir))
}

fn close_all(handles: &[Handle]) {
    for h in handles {
        // SAFETY: each handle came from our own dlmopen and is closed exactly once.
        unsafe { libc::dlclose(h.as_ptr()) };
    }
}

extern "C" fn capsule_dlsym(
    lmid: c_long,
    handle: *mut c_void,
    name: *const c_char,
    caller: *const c_void,
) -> *mut c_void {
    lookup(lmid, handle, name, None, caller)
}

extern "C" fn capsule_dlvsym(
    lmid: c_long,
    handle: *mut c_void,
    name: *const c_char,
    version: *const c_char,
    caller: *const c_void,
) -> *mut c_void {
    if version.is_null() {
        set_error("capsule: dlvsym with a NULL version".into());
        return std::ptr::null_mut();
    }
    // SAFETY: a non-NULL version from dlvsym's caller is a NUL-terminated string.
    lookup(
        lmid,
        handle,
        name,
        Some(unsafe { CStr::from_ptr(version) }),
        caller,
    )
}

fn lookup(
    lmid: c_long,
    handle: *mut c_void,
    name: *const c_char,
    version: Option<&CStr>,
    caller: *const c_void,
) -> *mut c_void {
    let Some(ns) = namespace::by_lmid(lmid) else {
        set_error(format!("capsule: dlsym from unknown namespace {lmid}"));
        return std::ptr::null_mut();
    };
    if name.is_null() {
        set_error("capsule: dlsym with a NULL name".into());
        return std::ptr::null_mut();
    }
    // SAFETY: a non-NULL name from dlsym's caller is a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(name) };
    // The interposer's functions (the dl family, ...) answer whichever object is asked.
    if let Some(own) = ns.interposer.own_symbol(name) {
        clear_error();
        return own;
    }
    let find = |h: *mut c_void| find_in(h, name, version);
    let found = if handle.is_null() || handle == global_scope_handle() {
        ns.global_handles()
            .into_iter()
            .find_map(|h| find(h as *mut c_void))
    } else if handle == libc::RTLD_NEXT {
        next_after(caller).into_iter().find_map(find)
    } else {
        find(handle)
    };
    if crate::config::debug_enabled(crate::config::Topic::Dlopen) {
        log_lookup(lmid, handle, name, version, caller, found);
    }
    match found {
        Some(p) => {
            clear_error();
            p
        }
        None => {
            let version = version.map_or(String::new(), |v| format!("@{}", v.to_string_lossy()));
            // `log_lookup` said it already (a miss is often a probe, not a failure).
            set_error_quietly(format!(
                "capsule: undefined symbol {}{version} in capsule namespace {lmid}",
                name.to_string_lossy()
            ));
            std::ptr::null_mut()
        }
    }
}

/// `CAPSULE_DEBUG=dlopen`: one line per dlsym inside the capsule, with where it went.
fn log_lookup(
    lmid: c_long,
    handle: *mut c_void,
    name: &CStr,
    version: Option<&CStr>,
    caller: *const c_void,
    found: Option<*mut c_void>,
) {
    let scope = if handle.is_null() {
        "RTLD_DEFAULT".to_string()
    } else if handle == libc::RTLD_NEXT {
        "RTLD_NEXT".to_string()
    } else if handle == global_scope_handle() {
        "dlopen(NULL)".to_string()
    } else {
        // SAFETY: a dlopen handle is its object's link map (glibc), whose l_name is a
        // NUL-terminated string; the lookup just made with it relied on that already.
        let name = unsafe { (*(handle as *const crate::elf::LinkMap)).name() };
        let name = name.to_string_lossy();
        name.rsplit('/').next().unwrap_or(&name).to_string()
    };
    let version = version.map_or(String::new(), |v| format!("@{}", v.to_string_lossy()));
    let from = object_name(caller).unwrap_or_else(|| "?".into());
    let went = found.map_or("not found".into(), |p| {
        format!("{p:p} in {}", object_name(p).unwrap_or_else(|| "?".into()))
    });
    crate::debug!(
        Dlopen,
        "dlsym({scope}, \"{}{version}\") from {from} in namespace {lmid} -> {went}",
        name.to_string_lossy()
    );
}

/// The file name of the object holding `addr` (a handle is its object's link map).
fn object_name(addr: *const c_void) -> Option<String> {
    let map = crate::linkmap::containing(addr)?;
    // SAFETY: the link map of a live object (the one holding `addr`).
    let name = unsafe { (*map).name() }.to_string_lossy();
    Some(name.rsplit('/').next().unwrap_or(&name).to_string())
}

fn find_in(handle: *mut c_void, name: &CStr, version: Option<&CStr>) -> Option<*mut c_void> {
    // SAFETY: handle is a live dlopen handle (a link map of the namespace) and the
    // strings are NUL-terminated. A NULL result just means "not here".
    let p = unsafe {
        match version {
            Some(v) => libc::dlvsym(handle, name.as_ptr(), v.as_ptr()),
            None => libc::dlsym(handle, name.as_ptr()),
        }
    };
    // A forwarder's stub stands for a function the program's copy lacks: not found.
    (!p.is_null() && !crate::forwarder::is_stub(p as usize)).then_some(p)
}

/// The objects after the caller's in its namespace's link map (what RTLD_NEXT searches).
fn next_after(caller: *const c_void) -> Vec<*mut c_void> {
    let Some(map) = crate::linkmap::containing(caller) else {
        return Vec::new();
    };
    // SAFETY: the caller's link map is live (the caller is running code in it).
    let all = unsafe { crate::linkmap::namespace_of(map, |m| m) };
    all.into_iter()
        .skip_while(|&m| m != map)
        .skip(1)
        .map(|m| m as *mut c_void)
        .collect()
}

extern "C" fn capsule_dlclose(_lmid: c_long, handle: *mut c_void) -> c_int {
    if handle == global_scope_handle() {
        clear_error();
        return 0;
    }
    let Some(ns) = namespace::by_lmid(_lmid) else {
        set_error(format!("capsule: dlclose from unknown namespace {_lmid}"));
        return -1;
    };
    ns.remove_global(handle as usize);
    // SAFETY: the handle came from the capsule's dlopen (glibc checks it is valid).
    let rc = unsafe { libc::dlclose(handle) };
    if rc != 0 {
        set_error(crate::dlfcn::last_dl_error());
    } else {
        clear_error();
    }
    rc
}

/// The file of the object that contains `addr`, for its RUNPATH, RPATH and `$ORIGIN`.
fn caller_object(addr: *const c_void) -> Option<PathBuf> {
    let map = crate::linkmap::containing(addr)?;
    // SAFETY: the link map of a live object (the one holding `addr`).
    let path = unsafe { (*map).path() };
    path.is_absolute().then_some(path)
}

fn describe_mode(mode: c_int) -> String {
    let mut words = vec![if mode & libc::RTLD_NOW != 0 {
        "RTLD_NOW"
    } else {
        "RTLD_LAZY"
    }];
    for (bit, word) in [
        (libc::RTLD_GLOBAL, "RTLD_GLOBAL"),
        (libc::RTLD_NOLOAD, "RTLD_NOLOAD"),
        (libc::RTLD_NODELETE, "RTLD_NODELETE"),
        (libc::RTLD_DEEPBIND, "RTLD_DEEPBIND (dropped)"),
    ] {
        if mode & bit != 0 {
            words.push(word);
        }
    }
    words.join("|")
}

#[cfg(test)]
mod absolute_path_tests {
    use super::*;

    #[test]
    fn a_path_under_the_prefix_names_the_host_tree_path() {
        let root = Path::new("/run/host");
        assert_eq!(
            path_in_host_tree(root, "/run/host/usr/lib/x.so"),
            "/usr/lib/x.so"
        );
        assert_eq!(path_in_host_tree(root, "/usr/lib/x.so"), "/usr/lib/x.so");
        // A sibling whose name merely starts like the prefix is not under it.
        assert_eq!(
            path_in_host_tree(root, "/run/hostile/x.so"),
            "/run/hostile/x.so"
        );
        assert_eq!(path_in_host_tree(Path::new("/"), "/usr/x.so"), "/usr/x.so");
    }

    #[test]
    fn library_directories_are_the_hosts() {
        assert!(in_host_library_dir(
            "/usr/lib/x86_64-linux-gnu/dri/swrast_dri.so"
        ));
        assert!(in_host_library_dir("/lib64/libfoo.so"));
        assert!(!in_host_library_dir("/opt/game/plugin.so"));
        assert!(!in_host_library_dir("/usr/library/x.so"));
    }
}
